/**
 * Logs go to stderr, one line each; stdout carries records only. `debug` lines show only under
 * `--debug`.
 */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  debug(message: string): void;
}

/** A logger writing `<level>: <message>` lines to stderr. */
export function stderrLogger(options: { debug?: boolean } = {}): Logger {
  const encoder = new TextEncoder();
  const write = (line: string) => Deno.stderr.writeSync(encoder.encode(line + "\n"));
  return {
    info: (m) => write(m),
    warn: (m) => write(`warning: ${m}`),
    debug: (m) => options.debug && write(`debug: ${m}`),
  };
}

/**
 * Text from outside (a receiver's answer, a recording's line) fit for one log line: control
 * characters shown escaped (`\n`, `\u001b`), so it can neither forge log lines nor drive the
 * terminal.
 */
export function printable(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f-\u009f]/g,
    (c) => c === "\n" ? "\\n" : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

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

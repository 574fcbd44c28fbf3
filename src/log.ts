/**
 * Logs go to stderr, one line each; stdout carries records only. `debug` lines show only under
 * `--debug`.
 */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  debug(message: string): void;
}

/** The most lines held while a screen is drawn; older ones are counted, not kept. */
const HOLD_LIMIT = 1000;

/** Lines held instead of written (see {@linkcode holdLogLines}). */
let held: { lines: string[]; dropped: number; onLine?: (line: string) => void } | undefined;

/**
 * Holds stderr log lines instead of writing them, while a screen is drawn on the terminal
 * (the `top` output): a line written there would scroll or tear the frame. `onLine` sees each
 * one as it comes (to show the latest on the screen). The returned release writes what was
 * held, in order, and lets lines through again; calling it again does nothing.
 */
export function holdLogLines(onLine?: (line: string) => void): () => void {
  const mine = { lines: [] as string[], dropped: 0, onLine };
  held = mine;
  return () => {
    if (held !== mine) return;
    held = undefined;
    if (mine.dropped) writeLine(`(${mine.dropped} earlier log lines were not kept)`);
    for (const line of mine.lines) writeLine(line);
  };
}

const encoder = new TextEncoder();
function writeLine(line: string): void {
  if (!held) {
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
    return;
  }
  held.lines.push(line);
  if (held.lines.length > HOLD_LIMIT) {
    held.lines.shift();
    held.dropped++;
  }
  held.onLine?.(line);
}

/** A logger writing `<level>: <message>` lines to stderr (held while a screen is drawn). */
export function stderrLogger(options: { debug?: boolean } = {}): Logger {
  const write = writeLine;
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

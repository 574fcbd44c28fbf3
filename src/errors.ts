/**
 * Errors a user can meet. The CLI prints `message` as one line (no stack unless `--debug`) and
 * exits with `exitCode`: 2 for bad input (flags, pipeline), 1 for a runtime failure.
 */

/** A failure with a message meant for the user and the exit code it ends with. */
export class UserError extends Error {
  override name = "UserError";
  readonly exitCode: 1 | 2;
  constructor(message: string, exitCode: 1 | 2 = 1, options?: ErrorOptions) {
    super(message, options);
    this.exitCode = exitCode;
  }
}

/** Where in a pipeline file something is: 1-based line and column, and the key path. */
export interface SourcePosition {
  file: string;
  line: number;
  column: number;
}

/**
 * One problem in a pipeline file, printed as `file:line:column: path: message`.
 *
 * @example
 * ```ts
 * new ConfigError({ file: "pipeline.yaml", line: 4, column: 20 }, "probes.bash.max_cmd_bytes", "must be ...");
 * ```
 */
export class ConfigError extends Error {
  override name = "ConfigError";
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** Key path, e.g. `outputs.console.format`; empty for the whole file. */
  readonly path: string;
  readonly reason: string;

  constructor(at: SourcePosition, path: string, reason: string) {
    super(`${at.file}:${at.line}:${at.column}: ${path ? `${path}: ` : ""}${reason}`);
    this.file = at.file;
    this.line = at.line;
    this.column = at.column;
    this.path = path;
    this.reason = reason;
  }
}

/** Every problem found in a pipeline file at once (validation never stops at the first). */
export class ConfigErrors extends UserError {
  override name = "ConfigErrors";
  readonly errors: readonly ConfigError[];
  constructor(errors: readonly ConfigError[]) {
    super(errors.map((e) => e.message).join("\n"), 2);
    this.errors = errors;
  }
}

/**
 * Says why a file could not be read: missing, or outside what `--allow-read` grants (the
 * default `deno task run` grants the project folder, /etc/passwd and /bin/bash).
 */
export function whyUnreadable(path: string, e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "no such file";
  if (e instanceof Deno.errors.NotCapable) {
    return `this process does not hold --allow-read=${path}: add it, or move the file into ` +
      "the project folder (deno task run may read it; deno.json `permissions`)";
  }
  return e instanceof Error ? e.message : String(e);
}

/**
 * An error that says in one line what failed and how to fix it (ffi/errors.ts: `LibbpfError`
 * adds the verifier's reason). Matched by shape, so this module, which every stage imports,
 * does not import the kernel layer.
 */
export interface SelfDescribing {
  describe(): string;
}

function isSelfDescribing(e: unknown): e is SelfDescribing {
  return e instanceof Error && typeof (e as Partial<SelfDescribing>).describe === "function";
}

/** One line for an error: what failed and, where known, how to fix it. */
export function describeError(e: unknown): string {
  if (e instanceof UserError) return e.message;
  if (isSelfDescribing(e)) return e.describe();
  if (e instanceof Error) return `${e.name}: ${e.message} (run with --debug for the stack)`;
  return String(e);
}

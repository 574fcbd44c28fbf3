import { LibbpfError, LibraryMissingError } from "../ffi/errors.ts";

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

/** One line for an error: what failed and, where known, how to fix it. */
export function describeError(e: unknown): string {
  if (e instanceof UserError || e instanceof LibraryMissingError) return e.message;
  if (e instanceof LibbpfError) {
    const hint = e.errno === 1 ? " (needs root, or CAP_BPF and CAP_PERFMON)" : "";
    const why = verifierReason(e.log) ??
      e.log.filter((l) => !l.startsWith("libbpf: prog") || l.includes("failed")).at(-1);
    return `${e.message}${hint}${why ? ` [${why.replace(/^libbpf: /, "libbpf: ")}]` : ""}`;
  }
  if (e instanceof Error) return `${e.name}: ${e.message} (run with --debug for the stack)`;
  return String(e);
}

/** The verifier's own reason from a load log: the last line before its statistics. */
function verifierReason(log: readonly string[]): string | undefined {
  const end = log.findIndex((l) => l.includes("-- END PROG LOAD LOG --"));
  if (end < 0) return undefined;
  for (let i = end - 1; i >= 0 && !log[i].includes("-- BEGIN PROG LOAD LOG --"); i--) {
    const line = log[i].trim();
    if (line && !/^processed \d+ insns/.test(line) && !line.startsWith("verification time")) {
      return `verifier: ${line}`;
    }
  }
  return undefined;
}

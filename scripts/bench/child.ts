/**
 * Child processes for the benchmarks: output read as it comes (a full pipe would block the
 * child and skew what is measured), waits with a deadline, and nothing left running on failure.
 */
import { ROOT } from "../../test/_run_command.ts";

const START_TIMEOUT_MS = 60_000;

/** A child process whose output is read as it comes, so it never blocks on a full pipe. */
export class Child implements AsyncDisposable {
  stdout = "";
  stderr = "";
  readonly #child: Deno.ChildProcess;
  readonly #pumps: Promise<void>[];
  readonly #status: Promise<Deno.CommandStatus>;
  #exited = false;

  /**
   * `discardStdout` sends stdout to /dev/null; `stdin: "piped"` keeps a pipe to close later;
   * `cwd` is this checkout's root unless given.
   */
  constructor(
    command: string,
    args: string[],
    options: { discardStdout?: boolean; stdin?: "null" | "piped"; cwd?: string } = {},
  ) {
    this.#child = new Deno.Command(command, {
      args,
      cwd: options.cwd ?? ROOT,
      stdin: options.stdin ?? "null",
      stdout: options.discardStdout ? "null" : "piped",
      stderr: "piped",
    }).spawn();
    this.#status = this.#child.status.then((status) => {
      this.#exited = true;
      return status;
    });
    this.#pumps = [pump(this.#child.stderr, (text) => this.stderr += text)];
    if (!options.discardStdout) {
      this.#pumps.push(pump(this.#child.stdout, (text) => this.stdout += text));
    }
  }

  get pid(): number {
    return this.#child.pid;
  }

  get exited(): boolean {
    return this.#exited;
  }

  /** Closes the child's stdin (started with `stdin: "piped"`): the usual "you may stop now". */
  async closeStdin(): Promise<void> {
    await this.#child.stdin.close().catch(() => {});
  }

  /** Waits until `predicate` holds; throws if the process exits first or after `timeoutMs`. */
  async waitFor(what: string, predicate: () => boolean, timeoutMs = START_TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (this.#exited) {
        const status = await this.finished();
        throw new StartError(what, `it exited with code ${status.code}`, this.stderr);
      }
      if (Date.now() > deadline) throw new StartError(what, "timed out", this.stderr);
      await sleep(20);
    }
  }

  /** Resolves once the process has exited and all its output is read. */
  async finished(): Promise<Deno.CommandStatus> {
    const status = await this.#status;
    await Promise.all(this.#pumps);
    return status;
  }

  /** Sends `signal` (unless it already exited) and waits as `finished()` does. */
  stop(signal: Deno.Signal): Promise<Deno.CommandStatus> {
    if (!this.#exited) {
      try {
        this.#child.kill(signal);
      } catch { /* exited meanwhile */ }
    }
    return this.finished();
  }

  /** Leaves nothing running when a run fails half way. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop("SIGKILL");
  }
}

/** A child that did not get ready; `stderr` is its output, exactly. */
export class StartError extends Error {
  constructor(readonly what: string, readonly why: string, readonly stderr: string) {
    super(`${what}: ${why}`);
  }
}

async function pump(stream: ReadableStream<Uint8Array>, onText: (text: string) => void) {
  for await (const text of stream.pipeThrough(new TextDecoderStream())) onText(text);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs a command to its end; its stdout, or an error with its stderr. */
export async function output(command: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`${command} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** Fails with an install hint unless `command args` runs. */
export async function requireTool(command: string, args: string[], hint: string): Promise<void> {
  try {
    const out = await new Deno.Command(command, { args, stdout: "null", stderr: "null" }).output();
    if (out.success) return;
  } catch { /* not found */ }
  throw new Error(`${command} is needed: ${hint}`);
}

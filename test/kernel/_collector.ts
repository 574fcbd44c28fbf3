/**
 * Runs the real collector (`deno task run`'s command line, from deno.json) as a child
 * process, the way a user does, and collects what it writes.
 */
import { explainedCommand, ROOT, runTaskArgs } from "../_run_command.ts";
export { tempPipeline } from "../_run_command.ts";

/** A command line that starts the collector, instead of `deno task run`'s. */
export interface Launch {
  command: string;
  args: string[];
  /** Default: the repository root. */
  cwd?: string;
}

/** A running collector: its stdout lines and stderr text so far. */
export class Collector implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  stdout = "";
  stderr = "";
  readonly #done: Promise<Deno.CommandStatus>;
  readonly #pumps: Promise<void>[];

  /**
   * `extraFlags` are Deno flags added to `deno task run`'s (e.g. `--allow-write=FILE`);
   * `denoArgs` replaces that command line altogether (see {@linkcode Collector.explained}).
   * A {@linkcode Launch} instead of `args` starts another command line (e.g. through setpriv).
   */
  constructor(args: string[] | Launch, extraFlags: string[] = [], denoArgs?: string[]) {
    let launch: Launch;
    if (Array.isArray(args)) {
      const command = denoArgs ?? runTaskArgs();
      command.splice(command.length - 1, 0, ...extraFlags); // before src/main.ts
      launch = { command: Deno.execPath(), args: [...command, ...args] };
    } else {
      launch = args;
    }
    this.#child = new Deno.Command(launch.command, {
      args: launch.args,
      cwd: launch.cwd ?? ROOT,
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    const pump = async (stream: ReadableStream<Uint8Array>, into: "stdout" | "stderr") => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) this[into] += chunk;
    };
    this.#pumps = [pump(this.#child.stdout, "stdout"), pump(this.#child.stderr, "stderr")];
    this.#done = this.#child.status;
  }

  /**
   * Starts the collector on `pipeline` with exactly the `deno run` command its `--explain`
   * prints (no more permissions than that), and waits until it is collecting.
   */
  static async explained(pipeline: string, args: string[] = []): Promise<Collector> {
    const words = await explainedCommand(pipeline);
    const collector = new Collector(
      [...words.slice(words.indexOf("--pipeline")), ...args],
      [],
      ["run", "--quiet", "--no-prompt", ...words.slice(2, words.indexOf("--pipeline"))],
    );
    await collector.attached();
    return collector;
  }

  /** Waits until `predicate` holds (checked every 50 ms), or throws after `timeoutMs`. */
  async waitFor(what: string, predicate: () => boolean, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for ${what}\nstderr:\n${this.stderr}\nstdout:\n${this.stdout}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Waits until the collector says it is collecting (probes attached). */
  attached(): Promise<void> {
    return this.waitFor("the collector to attach", () => this.stderr.includes("collecting with"));
  }

  /** The started process's pid (the collector's own when the launcher execs it). */
  get pid(): number {
    return this.#child.pid;
  }

  /** Sends `signal` and returns at once (e.g. SIGHUP to reload). */
  signal(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  /** Resolves with the exit status once the collector has exited by itself and all output is read. */
  async exited(): Promise<Deno.CommandStatus> {
    const status = await this.#done;
    await Promise.all(this.#pumps);
    return status;
  }

  /** Sends `signal` and resolves with the exit status once all output is read. */
  async stop(signal: Deno.Signal = "SIGINT"): Promise<Deno.CommandStatus> {
    try {
      this.#child.kill(signal);
    } catch { /* already exited */ }
    const status = await this.#done;
    await Promise.all(this.#pumps);
    return status;
  }

  /** Kills it if it still runs: a failed test leaves no collector behind. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop("SIGKILL");
  }

  /** Parsed JSON lines from stdout. */
  records(): {
    measurement: string;
    tags: Record<string, string>;
    fields: Record<string, unknown>;
    time: number;
  }[] {
    return this.stdout.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
  }
}

/**
 * The collector as a user runs it (`deno task run`'s command line, as root) with a pipeline the
 * benchmark writes: started, waited for until it says it is attached, stopped with SIGINT, and
 * its stderr read for the attach time and the counters of its exit summary.
 */
import { ROOT, runTaskArgs } from "../../test/_run_command.ts";
import { Child, StartError } from "./child.ts";
import type { Tree } from "./tree.ts";

/** The counters of the collector's exit summary (`name{stage=x}=n ...`). */
export class Summary {
  readonly #values = new Map<string, number>();

  constructor(stderr: string) {
    const line = stderr.match(/^summary: (.*)$/m)?.[1] ?? "";
    for (const [, name, stage, value] of line.matchAll(/(\w+)\{stage=([^}]*)\}=(\d+)/g)) {
      this.#values.set(`${name}/${stage}`, Number(value));
    }
  }

  /** One stage's counter, or the sum over every stage when `stage` is left out. */
  get(name: string, stage?: string): number {
    if (stage !== undefined) return this.#values.get(`${name}/${stage}`) ?? 0;
    let total = 0;
    for (const [key, value] of this.#values) if (key.startsWith(`${name}/`)) total += value;
    return total;
  }
}

/** Counters that mean an event the kernel saw never reached the collector whole. */
export const LOSS_COUNTERS = ["ring_lost", "sockets_full", "flows_full", "decode_errors"];

/** A running collector. */
export class Collector implements AsyncDisposable {
  readonly child: Child;
  /** What the collector says attaching took ("(N ms to attach)"). */
  attachMs = NaN;
  /** The same per probe ("attached bash: ... (N ms)"). */
  probeAttachMs: { [probe: string]: number } = {};

  /** Collectors started and not yet stopped: what `stopAll` ends. */
  static readonly #running = new Set<Collector>();

  private constructor(child: Child) {
    this.child = child;
    Collector.#running.add(this);
    void child.finished().then(async () => {
      Collector.#running.delete(this);
      // What --perf-basic-prof wrote for perf (perf_profile.ts), if it ran with it.
      await Deno.remove(`/tmp/perf-${child.pid}.map`).catch(() => {});
    });
  }

  /** Kills every collector still running (the benchmark was interrupted). */
  static async stopAll(): Promise<void> {
    await Promise.all([...Collector.#running].map((c) => c.child.stop("SIGKILL")));
  }

  /**
   * Starts the collector of `tree` (this checkout if none) and waits for its "collecting with"
   * line; `stdout` piped or not, `denoFlags` added to `deno run`'s (e.g. --cpu-prof); fails
   * unless every one of `expectProbes` attached. `pipeline` must be where that tree's collector
   * may read it (`tree.pipeline()`).
   */
  static async start(
    pipeline: string,
    options: {
      readStdout?: boolean;
      denoFlags?: string[];
      expectProbes?: string[];
      tree?: Tree;
    } = {},
  ): Promise<Collector> {
    const [run, ...rest] = options.tree?.runArgs() ?? runTaskArgs();
    const args = [run, ...options.denoFlags ?? [], ...rest, "--pipeline", pipeline];
    const child = new Child(Deno.execPath(), args, {
      discardStdout: !options.readStdout,
      cwd: options.tree?.root ?? ROOT,
    });
    const collector = new Collector(child);
    try {
      await child.waitFor("the collector", () => child.stderr.includes("collecting with"));
    } catch (e) {
      await child.stop("SIGKILL");
      throw e;
    }
    // A probe that could not load is only a warning to the collector; here it is a bad run.
    const missing = (options.expectProbes ?? []).filter((p) =>
      !child.stderr.includes(`attached ${p}:`)
    );
    if (missing.length) {
      await child.stop("SIGKILL");
      throw new StartError("the collector", `${missing.join(", ")} not attached`, child.stderr);
    }
    collector.attachMs = Number(child.stderr.match(/\((\d+) ms to attach\)/)?.[1]);
    for (const [, probe, ms] of child.stderr.matchAll(/^attached (\S+): .*\((\d+) ms\)$/gm)) {
      collector.probeAttachMs[probe] = Number(ms);
    }
    return collector;
  }

  get pid(): number {
    return this.child.pid;
  }

  /** SIGINT, as a user stops it; its summary, or an error with its stderr if it failed. */
  async stop(): Promise<Summary> {
    const status = await this.child.stop("SIGINT");
    if (!status.success) {
      throw new Error(`the collector exited with code ${status.code}:\n${this.child.stderr}`);
    }
    return new Summary(this.child.stderr);
  }

  /** Warnings it logged (events lost, probes disabled), one per line. */
  warnings(): string[] {
    return this.child.stderr.split("\n").filter((line) => /warn|lost|disabled/i.test(line));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.child.stop("SIGKILL");
  }
}

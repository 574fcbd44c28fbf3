/**
 * Runs a checked pipeline. Stages are built downstream first (outputs, then windows and
 * transforms, probes last), so the first record a probe emits has somewhere to go. Each probe
 * loads on its own: one that fails is disabled with a warning saying why, unless it is
 * `required: true`. On stop, stages are flushed and closed in graph order (probes first), so
 * what a probe drains flows through every stage before the outputs close: nothing collected is
 * lost.
 *
 * The parts: runner.ts feeds one stage (queue, counters, its context); generation.ts builds,
 * wires and closes a generation of stages; reload.ts moves to the next file's graph.
 */
import { UserError } from "../errors.ts";
import type { Record } from "../record.ts";
import type { ManualClock } from "./clock.ts";
import { type Builder, buildGeneration, closeAll, type RunOptions, wire } from "./generation.ts";
import { watchLosses } from "./loss_watch.ts";
import type { Pipeline } from "./pipeline.ts";
import { reloadGeneration, type ReloadReport } from "./reload.ts";
import type { Runner, RuntimeEnv } from "./runner.ts";
import { SharedMaps } from "./shared_maps.ts";
import { ShownText } from "./shown.ts";
import { trimCHeap } from "../../ffi/malloc_trim.ts";

export type { ReloadReport, RunOptions, RuntimeEnv };
export type { Tap } from "./runner.ts";

/** A started pipeline. */
export interface RunningPipeline {
  /** Probes that failed to start and were disabled, with why. */
  readonly disabled: readonly { name: string; why: string }[];
  /**
   * With `probes: "injected"`: emits `record` as if probe `probe` had produced it (with
   * `side`, as if it had sent it with `ctx.emitSide`).
   */
  inject(probe: string, record: Record, side?: boolean): void;
  /** Whether some stage is waiting on a slow push; feeders should then await {@linkcode idle}. */
  readonly busy: boolean;
  /** Resolves once no stage holds queued records. */
  idle(): Promise<void>;
  /**
   * Moves to `next` atomically: builds its new and changed stages first (on failure nothing
   * changes and this throws), then rewires in one step, then flushes and closes the stages
   * `next` no longer has. Unchanged stages (same type and settings) keep running and keep
   * their state: probes stay attached, windows keep their sums.
   */
  reload(next: Pipeline): Promise<ReloadReport>;
  /** Flushes and closes every stage in graph order. */
  stop(): Promise<void>;
}

/** Builds and starts every stage; on a fatal failure, stops what already started and rethrows. */
export async function startPipeline(
  pipeline: Pipeline,
  runtime: RuntimeEnv,
  options: RunOptions = {},
): Promise<RunningPipeline> {
  // Every line a stage logs shows ${VAR}s as written and no password (shown.ts).
  const shown = ShownText.of(pipeline);
  const env = {
    ...runtime,
    log: shown.logger(runtime.log),
    sharedMaps: runtime.sharedMaps ?? new SharedMaps(), // one registry for every generation
  };
  let runners = new Map<string, Runner>(); // the live generation, by name
  const builder: Builder = {
    env,
    options,
    disabled: [],
    sampleQueues: () => {
      for (const r of runners.values()) r.sampleQueue();
    },
  };
  const { disabled } = builder;

  const first = await buildGeneration(builder, pipeline.stages, pipeline.stages, new Map());
  runners = new Map(first.map((r) => [r.node.name, r]));
  wire(runners);
  if (!first.some((r) => r.node.kind === "probe")) {
    await closeAll(env, first, "shutdown");
    throw new UserError(
      `no probe could start (${disabled.map((d) => d.name).join(", ")}): nothing to collect`,
    );
  }
  const losses = watchLosses(env.counters, env.log, env.clock);
  // More is freed later (ArrayBuffers are malloc'd: the GC frees the first polls' buffers) and
  // glibc keeps it resident until trimmed: 3.4 MiB 8 s after start. The first trim took 6 ms,
  // later ones 0.1-0.8 ms.
  const trimmer = options.probes === "injected" ? undefined : setInterval(trimCHeap, 10_000);
  if (trimmer !== undefined) Deno.unrefTimer(trimmer);

  return {
    disabled,
    inject(probe, record, side = false) {
      const runner = runners.get(probe);
      if (!runner || runner.node.kind !== "probe") throw new Error(`no probe named ${probe}`);
      if (side) runner.emitSide(record);
      else runner.emit(record);
    },
    get busy() {
      for (const r of runners.values()) if (r.busy) return true;
      return false;
    },
    async idle() {
      for (const r of runners.values()) await r.idle();
    },
    async reload(next) {
      shown.add(next);
      return await reloadGeneration(builder, runners, next, (live) => runners = live);
    },
    async stop() {
      const all = [...runners.values()];
      runners = new Map();
      await closeAll(env, all, "shutdown");
      for (const r of all) r.sampleQueue(); // the exit summary shows what was left
      losses.stop();
      clearInterval(trimmer);
    },
  };
}

/**
 * Injects a recorded or test record at its own time (replay, `--test`): moves the manual clock
 * there first, so windows close on record time, and waits while a stage is busy, so a slow
 * output makes the feeder wait instead of dropping records.
 */
export async function injectAtRecordTime(
  running: RunningPipeline,
  clock: ManualClock,
  probe: string,
  record: Record,
  side = false,
): Promise<void> {
  if (record.time > clock.now()) clock.advance(record.time);
  running.inject(probe, record, side);
  if (running.busy) await running.idle();
}

/**
 * Runs a checked pipeline. Stages are built downstream first (outputs, then windows and
 * transforms, probes last), so the first record a probe emits has somewhere to go. Each probe
 * loads on its own: one that fails is disabled with a warning saying why, unless it is
 * `required: true`. On stop, stages are flushed and closed in graph order (probes first), so
 * what a probe drains flows through every stage before the outputs close: nothing collected is
 * lost.
 */
import type { Counters } from "../counters.ts";
import { describeError, UserError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Record } from "../record.ts";
import type { Clock, ManualClock } from "./clock.ts";
import type { Pipeline, StageNode } from "./load.ts";
import { watchLosses } from "./loss_watch.ts";
import { inputSpanMs, pushdownFor } from "./pushdown.ts";
import { ShownText } from "./shown.ts";
import { trimCHeap } from "../../ffi/malloc_trim.ts";
import {
  type FlushReason,
  type ProbeStage,
  type Pushdown,
  QUEUE_LIMIT,
  type Stage,
  type StageContext,
} from "./stage.ts";

/** What the runtime gives every stage. */
export interface RuntimeEnv {
  host: string;
  counters: Counters;
  log: Logger;
  clock: Clock;
  /** What a stage's `ctx.requestStop` calls (main.ts stops as on SIGINT); absent: nothing. */
  requestStop?: (why: string) => void;
}

/**
 * Records on their way from one stage to the next, handed on by a loop instead of by
 * recursion: `emit` -> `offer` -> `push` -> `emit` nested once per stage, so a chain of 1,500
 * transforms overflowed the stack and dropped every record. The first `emit` on the stack
 * drains the queue before it returns, so a record has been through every stage by then, as
 * before. One FIFO keeps each stage's records in the order they were emitted. It is shared by
 * every pipeline of the process: JavaScript runs one at a time, so one drain serves them all.
 */
class Deliveries {
  // Two arrays, not an array of pairs: no allocation per record and stage.
  readonly #runners: Runner[] = [];
  readonly #records: Record[] = [];
  #draining = false;

  /** Offers `record` to each of `runners`, now or (inside a drain) when its turn comes. */
  send(runners: readonly Runner[], record: Record): void {
    for (const r of runners) {
      this.#runners.push(r);
      this.#records.push(record);
    }
    if (this.#draining) return;
    this.#draining = true;
    try {
      for (let i = 0; i < this.#runners.length; i++) this.#runners[i].offer(this.#records[i]);
    } finally {
      this.#runners.length = this.#records.length = 0;
      this.#draining = false;
    }
  }
}

const deliveries = new Deliveries();

/**
 * Feeds one stage: calls `push` inline while it returns nothing; while a returned promise is
 * pending, queues up to QUEUE_LIMIT records and counts the rest as dropped.
 */
class Runner {
  node: StageNode;
  stage!: Stage;
  /** What the graph told the stage when it was built: it is rebuilt when a reload changes it. */
  readonly facts: GraphFacts;
  /** The runners that read this one's records; replaced on reload. */
  downstream: Runner[] = [];
  /** The runners that name this one in a side-input key, with the key; replaced on reload. */
  sideReaders: { runner: Runner; key: string }[] = [];
  readonly #tap?: Tap;
  readonly #labels: { [key: string]: string };
  readonly #env: RuntimeEnv;
  readonly #recordsIn: { inc(): void };
  readonly #recordsOut: { inc(): void };
  #queue: Record[] = [];
  #busy: Promise<void> | undefined;
  #everBusy = false;
  /** Runs before a counter snapshot (set by startPipeline): refreshes the queue gauges. */
  beforeSnapshot: () => void = () => {};
  #errorsLogged = 0;

  constructor(node: StageNode, env: RuntimeEnv, facts: GraphFacts, tap?: Tap) {
    this.node = node;
    this.facts = facts;
    this.#env = env;
    if (node.kind === "probe") this.#tap = tap;
    this.#labels = { stage: node.name };
    this.#recordsIn = env.counters.handle("records_in", this.#labels);
    this.#recordsOut = env.counters.handle("records_out", this.#labels);
  }

  context(): StageContext {
    const { counters, log, clock, host } = this.#env;
    const labels = this.#labels;
    return {
      name: this.node.name,
      host,
      clock,
      pushdown: this.facts.pushdown,
      inputSpanMs: this.facts.inputSpanMs,
      log,
      counters: counters.bound(labels),
      emit: (record) => this.emit(record),
      emitSide: (record) => this.emitSide(record),
      counterSnapshot: () => {
        this.beforeSnapshot();
        return counters.snapshot();
      },
      requestStop: (why) => this.#env.requestStop?.(why),
    };
  }

  /**
   * Sets the `queue_length` gauge: records waiting while the stage's push is pending. Sampled
   * when someone reads the counters, not per record. Outputs always have it; other stages
   * once they have pushed back.
   */
  sampleQueue(): void {
    if (this.node.kind !== "output" && !this.#everBusy) return;
    this.#env.counters.set("queue_length", this.#queue.length, this.#labels);
  }

  /** Hands `record` to the side readers only (what `ctx.emitSide` does). */
  emitSide(record: Record): void {
    this.#tap?.(this.node.name, record, true); // recorded even with no reader: a replay may have one
    if (this.sideReaders.length === 0) return;
    this.#env.counters.add("side_records_out", 1, this.#labels);
    for (const { runner, key } of this.sideReaders) {
      try {
        runner.stage?.side?.(key, record); // undefined: not built yet (or disabled)
      } catch (e) {
        runner.#failed(e, 1);
      }
    }
  }

  /** Hands `record` to every reader (what the stage's `ctx.emit` does). */
  emit(record: Record): void {
    this.#recordsOut.inc();
    this.#tap?.(this.node.name, record, false);
    deliveries.send(this.downstream, record);
  }

  /** Whether a push is pending (records are being queued). */
  get busy(): boolean {
    return this.#busy !== undefined;
  }

  offer(record: Record): void {
    this.#recordsIn.inc();
    if (this.#busy) {
      if (this.#queue.length >= QUEUE_LIMIT) {
        this.#env.counters.add("records_dropped", 1, { ...this.#labels, reason: "queue_full" });
      } else this.#queue.push(record);
      return;
    }
    this.#push(record);
  }

  #push(record: Record): void {
    let result: void | Promise<void>;
    try {
      result = this.stage.push(record);
    } catch (e) {
      this.#failed(e, 1);
      return;
    }
    if (result instanceof Promise) {
      this.#everBusy = true;
      this.#busy = this.#drainAfter(result);
    }
  }

  async #drainAfter(pending: Promise<void>): Promise<void> {
    try {
      await pending;
    } catch (e) {
      this.#failed(e, 1);
    }
    while (this.#queue.length > 0) {
      const record = this.#queue.shift()!;
      try {
        await this.stage.push(record);
      } catch (e) {
        this.#failed(e, 1);
      }
    }
    this.#busy = undefined;
  }

  #failed(e: unknown, n: number): void {
    this.#env.counters.add("records_dropped", n, { ...this.#labels, reason: "error" });
    // The first few failures say why; after that the counter tells how many.
    if (this.#errorsLogged++ < 3) this.#env.log.warn(`${this.node.name}: ${describeError(e)}`);
  }

  /** Resolves once everything queued has been pushed. */
  async idle(): Promise<void> {
    while (this.#busy) await this.#busy;
  }

  async flush(reason: FlushReason): Promise<void> {
    // A stop does not wait for a pending push first: an output waiting for room that a receiver
    // which is down never makes would hold it for ever. Its shutdown flush settles that push
    // (stage.ts); what the queue hands on after it, the flush below takes.
    if (reason === "shutdown" && this.busy) {
      await Promise.all([this.stage.flush(reason), this.idle()]);
    }
    await this.idle();
    await this.stage.flush(reason);
    await this.idle();
  }
}

/** Sees a probe's records: `side` for those sent with `ctx.emitSide` (`--record` keeps both). */
export type Tap = (probe: string, record: Record, side: boolean) => void;

/** How a pipeline's probes get their records. */
export interface RunOptions {
  /**
   * `kernel` (default): probes load and attach their BPF programs. `injected`: probes are
   * stand-ins that emit only what {@linkcode RunningPipeline.inject} hands them (replay, tests).
   */
  probes?: "kernel" | "injected";
  /** Sees every record a probe emits, before the next stage does (`--record`). */
  tap?: Tap;
}

/** What a reload did. */
export interface ReloadReport {
  kept: string[];
  /** Kept, with their new settings applied in place (a subset of `kept`). */
  reconfigured: string[];
  started: string[];
  stopped: string[];
  disabled: string[];
}

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

/** What the graph tells a stage (what a probe may do in the kernel, the span a record may sum). */
interface GraphFacts {
  pushdown: Pushdown;
  inputSpanMs: number;
}

function factsOf(node: StageNode, graph: readonly StageNode[]): GraphFacts {
  return {
    pushdown: node.kind === "probe" ? pushdownFor(node, graph) : {},
    inputSpanMs: inputSpanMs(node, graph),
  };
}

/**
 * What makes two generations' stages the same stage: everything but their wiring, and what the
 * graph tells the stage.
 */
function identity(node: StageNode, facts: GraphFacts): string {
  const { inputs: _inputs, ...settings } = node.raw;
  return JSON.stringify([node.section, node.def.type, node.required, settings, facts]);
}

/** Whether two generations' nodes are one stage with (maybe) other settings. */
function sameStage(a: StageNode, b: StageNode): boolean {
  return a.section === b.section && a.def.type === b.def.type && a.required === b.required;
}

/** A stand-in probe for replay and tests: emits only what is injected. */
const INJECTED: Stage = { push() {}, flush() {}, close() {} };

/** Builds and starts every stage; on a fatal failure, stops what already started and rethrows. */
export async function startPipeline(
  pipeline: Pipeline,
  runtime: RuntimeEnv,
  options: RunOptions = {},
): Promise<RunningPipeline> {
  // Every line a stage logs shows ${VAR}s as written and no password (shown.ts).
  const shown = ShownText.of(pipeline);
  const env = { ...runtime, log: shown.logger(runtime.log) };
  let runners = new Map<string, Runner>(); // the live generation, by name
  const disabled: { name: string; why: string }[] = [];
  const sampleQueues = () => {
    for (const r of runners.values()) r.sampleQueue();
  };

  /**
   * Builds `nodes` downstream first; returns the built runners in graph order (probes may be
   * disabled). Each new runner is wired to its readers in `graph` (new ones, or `existing`
   * ones) before any build, because a probe starts emitting as soon as it is built.
   */
  const build = async (
    nodes: StageNode[],
    graph: StageNode[],
    existing: Map<string, Runner>,
    facts = new Map(nodes.map((n) => [n.name, factsOf(n, graph)])),
  ): Promise<Runner[]> => {
    const created = new Map(
      nodes.map((n) => [n.name, new Runner(n, env, facts.get(n.name)!, options.tap)]),
    );
    for (const runner of created.values()) {
      runner.beforeSnapshot = sampleQueues;
      runner.downstream = graph
        .filter((n) => n.inputs.includes(runner.node.name))
        .map((n) => created.get(n.name) ?? existing.get(n.name))
        .filter((r): r is Runner => r !== undefined);
      // Side readers too, before any stage starts: a probe may emitSide as soon as it is built.
      runner.sideReaders = graph.flatMap((n) =>
        n.sideInputs
          .filter((side) => side.stage === runner.node.name)
          .map((side) => ({ runner: created.get(n.name) ?? existing.get(n.name), key: side.key }))
          .filter((s): s is { runner: Runner; key: string } => s.runner !== undefined)
      );
    }
    const built: Runner[] = [];
    try {
      for (const node of [...nodes].reverse()) {
        const runner = created.get(node.name)!;
        const begun = performance.now();
        try {
          runner.stage = node.kind === "probe" && options.probes === "injected"
            ? INJECTED
            : await node.def.build(node.config, runner.context());
        } catch (e) {
          if (node.kind !== "probe" || node.required) throw e;
          // One probe failing (a missing symbol, a verifier rejection) must not stop the others.
          const why = describeError(e);
          disabled.push({ name: node.name, why });
          env.counters.add("probes_disabled", 1, { stage: node.name });
          env.log.warn(`probe ${node.name} disabled: ${why}`);
          continue;
        }
        built.push(runner);
        if (node.kind === "probe" && options.probes !== "injected") {
          const attached = (runner.stage as ProbeStage).attached ?? [];
          const ms = (performance.now() - begun).toFixed(0);
          env.log.info(`attached ${node.name}: ${attached.join(", ") || node.def.type} (${ms} ms)`);
        }
      }
    } catch (e) {
      await closeAll(built.toReversed(), "shutdown");
      throw e;
    }
    // Loading BPF objects leaves MiBs freed but resident in the C heap (see malloc_trim.ts).
    if (options.probes !== "injected" && built.some((r) => r.node.kind === "probe")) trimCHeap();
    return built.toReversed(); // graph order
  };

  /**
   * Flushes and closes `list`, which is in graph order (upstream first), so what a stage holds
   * flows on through the stages after it before they close.
   */
  const closeAll = async (list: Runner[], reason: FlushReason) => {
    for (const runner of list) {
      try {
        await runner.flush(reason);
        await runner.stage.close();
      } catch (e) {
        env.log.warn(`${runner.node.name}: stopping failed: ${describeError(e)}`);
      }
    }
  };

  /** Points every runner of `live` at its readers, for the graph `nodes` describes. */
  const wire = (live: Map<string, Runner>) => {
    for (const r of live.values()) [r.downstream, r.sideReaders] = [[], []];
    for (const r of live.values()) {
      for (const input of r.node.inputs) live.get(input)?.downstream.push(r);
      for (const { key, stage } of r.node.sideInputs) {
        live.get(stage)?.sideReaders.push({ runner: r, key });
      }
    }
  };

  const first = await build(pipeline.stages, pipeline.stages, new Map());
  runners = new Map(first.map((r) => [r.node.name, r]));
  wire(runners);
  if (!first.some((r) => r.node.kind === "probe")) {
    await closeAll(first, "shutdown");
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
      const old = runners;
      const keep = new Map<string, Runner>();
      const fresh: StageNode[] = [];
      const applies = new Map<string, () => void>();
      const facts = new Map(next.stages.map((n) => [n.name, factsOf(n, next.stages)]));
      for (const node of next.stages) {
        const current = old.get(node.name), nextFacts = facts.get(node.name)!;
        if (current && identity(current.node, current.facts) === identity(node, nextFacts)) {
          keep.set(node.name, current);
          continue;
        }
        // Same stage with other settings: in place when the stage can, else rebuilt.
        const sameFacts = JSON.stringify(current?.facts) === JSON.stringify(nextFacts);
        const apply = current && sameFacts && sameStage(current.node, node)
          ? current.stage.reconfigure?.(node.config)
          : undefined;
        if (apply) {
          keep.set(node.name, current!);
          applies.set(node.name, apply);
        } else {
          fresh.push(node);
        }
      }
      const before = disabled.length;
      // Throws, changing nothing, when a stage cannot start.
      const built = await build(fresh, next.stages, keep, facts);
      // The switch: one synchronous step, so every record goes to exactly one generation.
      for (const apply of applies.values()) apply();
      const live = new Map<string, Runner>();
      for (const node of next.stages) {
        const kept = keep.get(node.name);
        if (kept) {
          kept.node = node; // new wiring, same stage (and the same facts from the graph)
          live.set(node.name, kept);
        }
      }
      for (const r of built) live.set(r.node.name, r);
      const retired = [...old.values()].filter((r) => live.get(r.node.name) !== r);
      runners = new Map(
        next.stages.filter((n) => live.has(n.name)).map((n) => [n.name, live.get(n.name)!]),
      );
      wire(runners);
      // A kept stage whose side readers are new holds nothing they have seen (dns answers).
      const rebuilt = new Set(built);
      for (const r of runners.values()) {
        if (rebuilt.has(r) || !r.sideReaders.some((s) => rebuilt.has(s.runner))) continue;
        try {
          r.stage.sideReadersRebuilt?.();
        } catch (e) {
          env.log.warn(`${r.node.name}: ${describeError(e)}`);
        }
      }
      // Retired stages keep their old readers until flushed, so what they hold is not lost.
      await closeAll(retired, "shutdown");
      const report = {
        kept: [...keep.keys()],
        reconfigured: [...applies.keys()],
        started: built.map((r) => r.node.name),
        stopped: retired.map((r) => r.node.name),
        disabled: disabled.slice(before).map((d) => d.name),
      };
      env.counters.add("reloads", 1, { result: "ok" });
      env.counters.add("stages_started", report.started.length);
      env.counters.add("stages_stopped", report.stopped.length);
      return report;
    },
    async stop() {
      const all = [...runners.values()];
      runners = new Map();
      await closeAll(all, "shutdown");
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

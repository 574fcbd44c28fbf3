/**
 * Feeds one stage of a running pipeline ({@linkcode Runner}): hands it records, queues them
 * while its push is pending, counts what it takes, emits and drops, and gives it its context.
 * Records go from stage to stage through one loop ({@linkcode Deliveries}), not by recursion.
 */
import type { Counters } from "../counters.ts";
import { describeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Record } from "../record.ts";
import type { Clock } from "./clock.ts";
import type { HostFacts } from "./host_facts.ts";
import type { StageNode } from "./pipeline.ts";
import { inputSpanMs, pushdownFor } from "./pushdown.ts";
import type { SharedMaps } from "./shared_maps.ts";
import {
  type FlushReason,
  type Pushdown,
  QUEUE_LIMIT,
  type Stage,
  type StageContext,
} from "./stage.ts";
import { stageContext } from "./context.ts";

/** What the runtime gives every stage. */
export interface RuntimeEnv {
  host: string;
  counters: Counters;
  log: Logger;
  clock: Clock;
  /** What stages may know of the host: this one's, a recording's; none by default (tests). */
  hostFacts?: HostFacts;
  /** What a stage's `ctx.requestStop` calls (main.ts stops as on SIGINT); absent: nothing. */
  requestStop?: (why: string) => void;
  /** The kernel maps probes share; one registry per running pipeline (startPipeline's). */
  sharedMaps?: SharedMaps;
}

/** The env a running pipeline's stages get: one shared-map registry for all its generations. */
export type PipelineEnv = RuntimeEnv & { sharedMaps: SharedMaps };

/** Sees a probe's records: `side` for those sent with `ctx.emitSide` (`--record` keeps both). */
export type Tap = (probe: string, record: Record, side: boolean) => void;

/** What the graph tells a stage (what a probe may do in the kernel, the span a record may sum). */
export interface GraphFacts {
  pushdown: Pushdown;
  inputSpanMs: number;
}

export function factsOf(node: StageNode, graph: readonly StageNode[]): GraphFacts {
  return {
    pushdown: node.kind === "probe" ? pushdownFor(node, graph) : {},
    inputSpanMs: inputSpanMs(node, graph),
  };
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
export class Runner {
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
  readonly #env: PipelineEnv;
  readonly #recordsIn: { inc(): void };
  readonly #recordsOut: { inc(): void };
  #queue: Record[] = [];
  #busy: Promise<void> | undefined;
  #everBusy = false;
  /** Runs before a counter snapshot (set by startPipeline): refreshes the queue gauges. */
  beforeSnapshot: () => void = () => {};
  #errorsLogged = 0;

  constructor(node: StageNode, env: PipelineEnv, facts: GraphFacts, tap?: Tap) {
    this.node = node;
    this.facts = facts;
    this.#env = env;
    if (node.kind === "probe") this.#tap = tap;
    this.#labels = { stage: node.name };
    this.#recordsIn = env.counters.handle("records_in", this.#labels);
    this.#recordsOut = env.counters.handle("records_out", this.#labels);
  }

  context(): StageContext {
    const env = this.#env;
    return stageContext({
      ...env,
      name: this.node.name,
      pushdown: this.facts.pushdown,
      inputSpanMs: this.facts.inputSpanMs,
      emit: (record) => this.emit(record),
      emitSide: (record) => this.emitSide(record),
      counterSnapshot: () => {
        this.beforeSnapshot();
        return env.counters.snapshot();
      },
      requestStop: (why) => env.requestStop?.(why),
    });
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

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
import type { Clock } from "./clock.ts";
import type { Pipeline, StageNode } from "./load.ts";
import { type FlushReason, QUEUE_LIMIT, type Stage, type StageContext } from "./stage.ts";

/** What the runtime gives every stage. */
export interface RuntimeEnv {
  host: string;
  counters: Counters;
  log: Logger;
  clock: Clock;
}

/** A started pipeline. */
export interface RunningPipeline {
  /** Probes that failed to start and were disabled, with why. */
  readonly disabled: readonly { name: string; why: string }[];
  /** Flushes and closes every stage in graph order. */
  stop(): Promise<void>;
}

/**
 * Feeds one stage: calls `push` inline while it returns nothing; while a returned promise is
 * pending, queues up to QUEUE_LIMIT records and counts the rest as dropped.
 */
class Runner {
  readonly node: StageNode;
  stage!: Stage;
  readonly downstream: Runner[] = [];
  readonly #labels: { [key: string]: string };
  readonly #env: RuntimeEnv;
  readonly #recordsIn: { inc(): void };
  readonly #recordsOut: { inc(): void };
  #queue: Record[] = [];
  #busy: Promise<void> | undefined;
  #errorsLogged = 0;

  constructor(node: StageNode, env: RuntimeEnv) {
    this.node = node;
    this.#env = env;
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
      log,
      counters: counters.bound(labels),
      emit: (record) => {
        this.#recordsOut.inc();
        for (const r of this.downstream) r.offer(record);
      },
    };
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
    if (result instanceof Promise) this.#busy = this.#drainAfter(result);
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
    await this.idle();
    await this.stage.flush(reason);
    await this.idle();
  }
}

/** Builds and starts every stage; on a fatal failure, stops what already started and rethrows. */
export async function startPipeline(pipeline: Pipeline, env: RuntimeEnv): Promise<RunningPipeline> {
  const runners = new Map(pipeline.stages.map((node) => [node.name, new Runner(node, env)]));
  for (const runner of runners.values()) {
    for (const input of runner.node.inputs) runners.get(input)!.downstream.push(runner);
  }
  const started: Runner[] = []; // in build order: downstream first
  const disabled: { name: string; why: string }[] = [];
  const stop = async () => {
    for (const runner of [...started].reverse()) { // graph order: probes first
      try {
        await runner.flush("shutdown");
        await runner.stage.close();
      } catch (e) {
        env.log.warn(`${runner.node.name}: stopping failed: ${describeError(e)}`);
      }
    }
    started.length = 0;
  };
  try {
    for (const runner of [...runners.values()].reverse()) {
      const begun = performance.now();
      try {
        runner.stage = await runner.node.def.build(runner.node.config, runner.context());
      } catch (e) {
        if (runner.node.kind !== "probe" || runner.node.required) throw e;
        // One probe failing (a missing symbol, a verifier rejection) must not stop the others.
        const why = describeError(e);
        disabled.push({ name: runner.node.name, why });
        env.counters.add("probes_disabled", 1, { stage: runner.node.name });
        env.log.warn(`probe ${runner.node.name} disabled: ${why}`);
        continue;
      }
      started.push(runner);
      if (runner.node.kind === "probe") {
        const attached = (runner.stage as { attached?: readonly string[] }).attached ?? [];
        const ms = (performance.now() - begun).toFixed(0);
        env.log.info(
          `attached ${runner.node.name}: ${attached.join(", ") || runner.node.def.type} (${ms} ms)`,
        );
      }
    }
    if (!started.some((r) => r.node.kind === "probe")) {
      throw new UserError(
        `no probe could start (${disabled.map((d) => d.name).join(", ")}): nothing to collect`,
      );
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { disabled, stop };
}

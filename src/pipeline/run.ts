/**
 * Runs a pipeline: starts outputs, then probes (each batch goes to every output that lists the
 * probe in `inputs`), and on stop drains probes first, then flushes outputs, so nothing that
 * was collected is lost.
 */
import type { Counters } from "../counters.ts";
import type { Logger } from "../log.ts";
import type { Record } from "../record.ts";
import type { Pipeline } from "./load.ts";
import type { RunningOutput, RunningProbe } from "./stage.ts";

/** A started pipeline. */
export interface RunningPipeline {
  /** Stops probes (after a final drain), then flushes and closes outputs. */
  stop(): Promise<void>;
}

/** Starts every stage; on a failure, stops what already started and rethrows. */
export async function startPipeline(
  pipeline: Pipeline,
  env: { host: string; counters: Counters; log: Logger },
): Promise<RunningPipeline> {
  const outputs: {
    name: string;
    inputs: string[];
    running: RunningOutput;
    queue: Promise<void>;
  }[] = [];
  const probes: RunningProbe[] = [];
  const stopAll = async () => {
    for (const p of probes.splice(0)) await p.stop();
    for (const o of outputs.splice(0)) {
      await o.queue;
      await o.running.close();
    }
  };
  try {
    for (const o of pipeline.outputs) {
      const running = await o.def.start(o.config, { ...env, name: o.name });
      outputs.push({ name: o.name, inputs: o.inputs, running, queue: Promise.resolve() });
    }
    for (const p of pipeline.probes) {
      const readers = outputs.filter((o) => o.inputs.includes(p.name));
      const started = performance.now();
      const running = await p.def.start(p.config, {
        ...env,
        name: p.name,
        emit(records: Record[]) {
          // Writes are queued per output so batches stay in order and never overlap.
          for (const o of readers) {
            o.queue = o.queue.then(() => o.running.write(records)).catch((e) => {
              // An output that throws loses this batch only; later batches still go out.
              env.counters.add("output_errors", records.length, { output: o.name });
              env.log.warn(`${o.name}: ${e instanceof Error ? e.message : e}`);
            });
          }
        },
      });
      probes.push(running);
      const ms = (performance.now() - started).toFixed(0);
      env.log.info(`attached ${p.name}: ${running.attached.join(", ")} (${ms} ms)`);
    }
  } catch (e) {
    await stopAll();
    throw e;
  }
  return { stop: stopAll };
}

/**
 * Reads the `drops` per-CPU counters every probe's BPF side keeps (bpf/common.h) and mirrors
 * them into the counter registry every second. The runtime's loss watch
 * (src/pipeline/loss_watch.ts) warns when one grows, at most once per 10 s per kind.
 */
import type { BpfMap } from "../../ffi/map.ts";
import type { RingBuffer } from "../../ffi/ring_buffer.ts";
import type { StageContext } from "../pipeline/stage.ts";
import { type FillSource, watchMapFill } from "./map_fill.ts";

/** Counter names for `enum drop_reason` in bpf/common.h, by index. */
export const DROP_REASONS = ["ring_lost", "read_failed", "sockets_full", "flows_full"] as const;

/** Polls the drops map every `intervalMs`; `stop()` takes a last reading. */
export function watchDrops(
  map: BpfMap,
  ctx: StageContext,
  names: readonly string[],
  intervalMs = 1000,
): { stop(): void } {
  const poll = () => names.forEach((name, i) => ctx.counters.set(name, map.sumPerCpuU64(i)));
  poll();
  const timer = setInterval(poll, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      poll();
    },
  };
}

/**
 * Starts what every ring-buffer probe runs: the ring reader (a failure is logged, not thrown),
 * the watch on its `drops` map and the fill of its bounded maps (`fill`, see map_fill.ts).
 * `stop()` ends them all: a final drain, then a last reading.
 */
export function startReading(
  ring: RingBuffer,
  drops: BpfMap,
  ctx: StageContext,
  fill: FillSource[] = [],
): { stop(): Promise<void> } {
  const watch = watchDrops(drops, ctx, DROP_REASONS);
  const filled = watchMapFill(ctx, fill);
  ring.run().catch((e) => ctx.log.warn(`${ctx.name}: ring buffer reader stopped: ${e.message}`));
  return {
    async stop() {
      await ring.stop();
      watch.stop();
      filled.stop();
    },
  };
}

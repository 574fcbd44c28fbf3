/**
 * Reads the `drops` per-CPU counters every probe's BPF side keeps (bpf/common.h), mirrors
 * them into the counter registry, and warns as soon as one grows.
 */
import type { BpfMap } from "../../ffi/map.ts";
import type { RingBuffer } from "../../ffi/ring_buffer.ts";
import type { StageContext } from "../pipeline/stage.ts";

/** Counter names for `enum drop_reason` in bpf/common.h, by index. */
export const DROP_REASONS = ["ring_lost", "read_failed", "sockets_full", "flows_full"] as const;

const WHY: { [name: string]: string } = {
  ring_lost: "ring buffer full, the reader fell behind",
  read_failed: "could not read user memory",
  sockets_full: "TCP socket map full: pid and direction of new sockets unknown; raise max_sockets",
  flows_full: "UDP flow map full: datagrams not counted; raise max_udp_flows",
};

/** Polls the drops map every `intervalMs`; `stop()` takes a last reading. */
export function watchDrops(
  map: BpfMap,
  ctx: StageContext,
  names: readonly string[],
  intervalMs = 1000,
): { stop(): void } {
  const seen = names.map(() => 0n);
  const poll = () => {
    names.forEach((name, i) => {
      const total = map.sumPerCpuU64(i);
      if (total > seen[i]) {
        ctx.log.warn(`${ctx.name}: ${total - seen[i]} events lost (${WHY[name] ?? name})`);
      }
      seen[i] = total;
      ctx.counters.set(name, total);
    });
  };
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
 * Starts what every ring-buffer probe runs: the ring reader (a failure is logged, not thrown)
 * and the watch on its `drops` map. `stop()` ends both: a final drain, then a last reading.
 */
export function startReading(
  ring: RingBuffer,
  drops: BpfMap,
  ctx: StageContext,
): { stop(): Promise<void> } {
  const watch = watchDrops(drops, ctx, DROP_REASONS);
  ring.run().catch((e) => ctx.log.warn(`${ctx.name}: ring buffer reader stopped: ${e.message}`));
  return {
    async stop() {
      await ring.stop();
      watch.stop();
    },
  };
}

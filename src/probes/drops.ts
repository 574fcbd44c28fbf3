/**
 * Reads the `drops` per-CPU counters every probe's BPF side keeps (bpf/common.h) and mirrors
 * them into the counter registry every second. The runtime's loss watch
 * (src/pipeline/loss_watch.ts) warns when one grows, at most once per 10 s per kind, with the
 * text the probe's def declares for it (`drops`, `losses`).
 */
import type { BpfMap } from "../../ffi/map.ts";
import type { RingBuffer } from "../../ffi/ring_buffer.ts";
import type { BpfObject } from "../../ffi/object.ts";
import type { Loss, StageContext } from "../pipeline/stage.ts";
import { type FillSource, watchMapFill } from "./map_fill.ts";

/**
 * `enum drop_reason` in bpf/common.h, by index: the counter each reason is mirrored into and
 * what it loses. The one TypeScript list of the shared reasons (a probe's `drops` starts with
 * it); the loss watch's warnings read `what` and `why`.
 */
export const COMMON_DROPS: readonly Loss[] = [
  { counter: "ring_lost", what: "events lost", why: "ring buffer full, the reader fell behind" },
  { counter: "read_failed", what: "events lost", why: "could not read user memory" },
  {
    counter: "sockets_full",
    what: "events lost",
    why: "no kernel memory for TCP socket storage: pid and direction of new sockets unknown",
  },
  {
    counter: "flows_full",
    what: "events lost",
    why: "UDP flow map full: datagrams not counted; raise max_udp_flows",
  },
];

/** Counter names for `enum drop_reason` in bpf/common.h, by index (its value). */
export const DROP_REASONS: readonly string[] = COMMON_DROPS.map((d) => d.counter);

/** Events the kernel handed over that did not decode: every ring-buffer probe counts them. */
export const DECODE_ERRORS: Loss = {
  counter: "decode_errors",
  what: "events not decoded",
  why: "--debug shows each",
};

/**
 * What a probe does with an event that did not decode, `decoder` its decoder's error class:
 * counted in `decode_errors` (warned about, rate limited, by the loss watch) and shown with
 * --debug. Any other error is thrown on.
 */
export function decodeFailures(
  ctx: StageContext,
  decoder: new (message: string) => Error,
): (e: unknown) => void {
  return (e) => {
    if (!(e instanceof decoder)) throw e;
    ctx.counters.add(DECODE_ERRORS.counter);
    ctx.log.debug(`${ctx.name}: ${e.message}`);
  };
}

/**
 * Sizes `obj`'s `drops` map (before load) for `drops`, a probe's list when it has reasons of
 * its own past bpf/common.h's (whose map holds only the shared ones).
 */
export function sizeDrops(obj: BpfObject, drops: readonly Loss[]): void {
  if (drops.length > COMMON_DROPS.length) obj.map("drops").setMaxEntries(drops.length);
}

/** Sets each counter of `names` to its index's sum in `map`, a per-CPU array of u64. */
export function mirrorCounts(map: BpfMap, ctx: StageContext, names: readonly string[]): void {
  names.forEach((name, i) => ctx.counters.set(name, map.sumPerCpuU64(i)));
}

/** Polls the drops map every `intervalMs`; `stop()` takes a last reading. */
export function watchDrops(
  map: BpfMap,
  ctx: StageContext,
  names: readonly string[],
  intervalMs = 1000,
): { stop(): void } {
  const poll = () => mirrorCounts(map, ctx, names);
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
  reasons: readonly Loss[] = COMMON_DROPS,
): { stop(): Promise<void> } {
  const watch = watchDrops(drops, ctx, reasons.map((r) => r.counter));
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

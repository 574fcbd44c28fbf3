/**
 * How full each probe's bounded maps are: `map_entries{map}` and `map_capacity{map}` gauges in
 * the counter registry, which the `collector` probe turns into `map_entries_<map>`,
 * `map_capacity_<map>` and `map_fill_<map>` (0..1). A map at 1.0 refuses new keys (counted by
 * the kernel side as `sockets_full`, `flows_full`...); the ratio shows it coming.
 *
 * Entries are counted when someone reads them, not on a timer: the collector calls
 * {@linkcode refreshMapFill} before each report, and each probe takes a last reading when it
 * stops. A probe that already reads a map whole (netflow's UDP flows, every poll) hands over
 * that count instead of walking the map again.
 *
 * Counting a hash map is a walk with `bpf_map_lookup_batch` (the kernel has no entry count a
 * syscall returns): about 30 ms for 64k entries here (scripts/map_fill_bench.ts). Socket
 * storage maps (`BPF_MAP_TYPE_SK_STORAGE`: netflow's udp_socks, dns's owners) have no
 * capacity and cannot be walked from user space: they grow and shrink with sockets, so they
 * are not reported.
 *
 * @example
 * ```ts
 * const fill = watchMapFill(ctx, [
 *   { map: "tcp_socks", capacity: 65536, entries: () => countEntries(obj.map("tcp_socks")) },
 * ]);
 * // ... ctx.counters: map_entries{stage,map=tcp_socks}=..., map_capacity{...}=65536
 * fill.stop();
 * ```
 *
 * @module
 */
import type { BpfMap } from "../../ffi/map.ts";
import type { StageContext } from "../pipeline/stage.ts";

/** One bounded map of a probe: its name, its capacity and how to count its entries. */
export interface FillSource {
  map: string;
  capacity: number;
  entries(): number;
}

/** Every running probe's refresh, so the collector can refresh them all before a report. */
const watched = new Set<() => void>();

/** Counts the entries of every watched map now (what the collector does before a report). */
export function refreshMapFill(): void {
  for (const refresh of watched) refresh();
}

/**
 * Publishes `sources` into `ctx.counters`: capacities at once, entries at each
 * {@linkcode refreshMapFill} and at `stop()`. A count that fails is logged once and skipped.
 */
export function watchMapFill(ctx: StageContext, sources: FillSource[]): { stop(): void } {
  let failed = false;
  for (const s of sources) ctx.counters.set("map_capacity", s.capacity, { map: s.map });
  const refresh = () => {
    for (const s of sources) {
      try {
        ctx.counters.set("map_entries", s.entries(), { map: s.map });
      } catch (e) {
        if (!failed) ctx.log.warn(`${ctx.name}: cannot count map ${s.map}: ${e}`);
        failed = true;
      }
    }
  };
  refresh();
  watched.add(refresh);
  return {
    stop() {
      if (!watched.delete(refresh)) return;
      refresh();
    },
  };
}

/** The entries of a BPF hash map, by a batched walk (each value is read too: the API's cost). */
export function countEntries(map: BpfMap, perCpu = false): number {
  let n = 0;
  for (const _ of map.lookupBatch(4096, perCpu)) n++;
  return n;
}

/** A hash map's fill, counted by a walk when read. */
export function hashMapFill(map: BpfMap): FillSource {
  return { map: map.name, capacity: map.maxEntries, entries: () => countEntries(map) };
}

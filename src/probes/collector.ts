/**
 * The `collector` probe: the collector's own health as an `ebpf_collector` measurement, a record
 * set like any other, so every output carries it and windows, filters and alerts can use it.
 *
 * ```yaml
 * probes:
 *   self:
 *     type: collector
 *     every: 60s
 * ```
 *
 * Every `every` (aligned to the clock) it emits:
 * - one record tagged `stage: <name>` per stage that has counters, its fields the stage's
 *   counters (a counter with more labels than `stage`, e.g. `records_dropped{reason=...}`,
 *   becomes `records_dropped_<reason>`). Running totals: `records_in`, `records_out`, loss
 *   (`ring_lost`, `read_failed`, `sockets_full`, `flows_full`, `decode_errors`,
 *   `pending_dropped`, `records_dropped_<reason>`, `fields_dropped_<reason>` (fields line
 *   protocol cannot write: `integer_out_of_range`, `float_not_finite`, `empty_key`),
 *   `spool_dropped_batches`, `spool_bad_batches`), `late_records`. (`replay_skipped_lines`,
 *   the recording lines `--replay-skip-bad` skipped, belongs to no stage: a replay counts it
 *   in its summary and loss log, and runs no probe that would report it.)
 *   Gauges: `queue_length` (records waiting for a stage that pushes back, at most 10000),
 *   `buffered_records`/`buffered_batches` and `spooled_batches`/`spooled_bytes` (http, otlp),
 *   `window_lag_ms` (how late the last window closed), and per bounded map of a probe
 *   `map_entries_<map>`, `map_capacity_<map>` and `map_fill_<map>` (a float, 0..1; counted
 *   just before the report, see map_fill.ts);
 * - one record tagged `stage: _process` with `rss_bytes`, `heap_used_bytes`, `cpu_user_us`,
 *   `cpu_system_us` (cumulative), `cpu_percent` (a float: CPU time over wall time since the
 *   last report, 100 = one core) and `uptime_ms`.
 *
 * A last report goes out at shutdown. It reads no kernel itself and needs no permission beyond
 * the collector's own. Loss is also logged as it appears (src/pipeline/loss_watch.ts, at most
 * once per 10 s per stage and kind); this set is for dashboards and alerts.
 */
import process from "node:process";
import type { CounterValue } from "../counters.ts";
import type { Record } from "../record.ts";
import type { ProbeStage, StageContext, StageDef } from "../pipeline/stage.ts";
import { refreshMapFill } from "./map_fill.ts";

/** Options of a `collector` probe. */
export interface CollectorConfig {
  /** Milliseconds between reports. */
  every: number;
}

function cpuTotalUs(cpu: { user: number; system: number }): number {
  return cpu.user + cpu.system;
}

/** A counter's field name: its name, then the values of labels other than `stage`. */
function fieldName(c: CounterValue): string {
  const extra = Object.entries(c.labels).filter(([k]) => k !== "stage").map(([, v]) => v);
  return [c.name, ...extra].join("_").replace(/[^a-zA-Z0-9_]/g, "_");
}

/** What the `_process` record reports. */
export interface ProcessFigures {
  rss: number;
  heapUsed: number;
  /** Cumulative CPU time, microseconds. */
  userUs: number;
  systemUs: number;
  /** CPU time over wall time since the previous report, in percent of one core. */
  cpuPercent: number;
  uptimeMs: number;
}

/** The records of one report, from a counter snapshot and process figures. */
export function collectorRecords(
  counters: CounterValue[],
  process: ProcessFigures,
  host: string,
  time: bigint,
): Record[] {
  const byStage = new Map<string, Record>();
  for (const c of counters) {
    const stage = c.labels.stage;
    if (stage === undefined) continue;
    let r = byStage.get(stage);
    if (!r) {
      r = {
        measurement: "ebpf_collector",
        tags: { host, source: "ebpf_collector", stage },
        fields: {},
        time,
      };
      byStage.set(stage, r);
    }
    r.fields[fieldName(c)] = c.value;
  }
  for (const r of byStage.values()) addFillRatios(r.fields);
  const own: Record = {
    measurement: "ebpf_collector",
    tags: { host, source: "ebpf_collector", stage: "_process" },
    fields: {
      rss_bytes: BigInt(process.rss),
      heap_used_bytes: BigInt(process.heapUsed),
      cpu_user_us: BigInt(Math.round(process.userUs)),
      cpu_system_us: BigInt(Math.round(process.systemUs)),
      cpu_percent: process.cpuPercent,
      uptime_ms: BigInt(Math.round(process.uptimeMs)),
    },
    time,
  };
  return [...[...byStage.values()].sort((a, b) => a.tags.stage < b.tags.stage ? -1 : 1), own];
}

/** `map_fill_<map>` = entries / capacity, for each `map_entries_<map>` with a capacity. */
function addFillRatios(fields: Record["fields"]): void {
  for (const [name, entries] of Object.entries(fields)) {
    if (!name.startsWith("map_entries_")) continue;
    const map = name.slice("map_entries_".length);
    const capacity = fields[`map_capacity_${map}`];
    if (typeof capacity !== "bigint" || capacity <= 0n) continue;
    fields[`map_fill_${map}`] = Number(entries) / Number(capacity);
  }
}

export const collectorProbe: StageDef<CollectorConfig> = {
  type: "collector",
  kind: "probe",
  capabilities: [], // reads no kernel
  describe: "The collector's own counters, memory and CPU, as ebpf_collector records.",
  schema: {
    every: { type: "duration", default: "60s", doc: "how often a report is emitted (aligned)" },
  },
  example: { every: "10s" },
  explain: (config) => ({
    details: [`every ${config.every} ms: one record per stage, one for the process`],
  }),

  build(config, ctx: StageContext): ProbeStage {
    const started = performance.now();
    let last = { wallMs: started, cpuUs: cpuTotalUs(process.cpuUsage()) };
    const report = (time: bigint) => {
      const memory = Deno.memoryUsage();
      const cpu = process.cpuUsage();
      const now = { wallMs: performance.now(), cpuUs: cpuTotalUs(cpu) };
      const wallUs = (now.wallMs - last.wallMs) * 1000;
      const cpuPercent = wallUs > 0 ? (now.cpuUs - last.cpuUs) / wallUs * 100 : 0;
      last = now;
      refreshMapFill(); // every probe's map entries, counted now
      for (
        const r of collectorRecords(
          ctx.counterSnapshot(),
          {
            rss: memory.rss,
            heapUsed: memory.heapUsed,
            userUs: cpu.user,
            systemUs: cpu.system,
            cpuPercent: Math.round(cpuPercent * 100) / 100,
            uptimeMs: performance.now() - started,
          },
          ctx.host,
          time,
        )
      ) ctx.emit(r);
    };
    const timer = ctx.clock.every(config.every, report);
    return {
      attached: ["no kernel program: the collector's own counters"],
      push() {},
      // A last report at shutdown: what the final minutes lost is not left unsaid.
      flush(reason) {
        if (reason === "shutdown") report(ctx.clock.now());
      },
      close() {
        timer.cancel();
      },
    };
  },
};

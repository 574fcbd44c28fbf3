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
 *   counters as running totals: `records_in`, `records_out`, `ring_lost`, `sockets_full`,
 *   `decode_errors`, `spooled_bytes`... (a counter with more labels than `stage`, e.g.
 *   `records_dropped{reason=...}`, becomes `records_dropped_<reason>`);
 * - one record tagged `stage: _process` with `rss_bytes`, `heap_used_bytes`, `cpu_user_us`,
 *   `cpu_system_us` (cumulative) and `uptime_ms`.
 *
 * A last report goes out at shutdown. It reads no kernel and needs no permission beyond the collector's own. Loss is also logged by
 * each probe as it happens; this set is for dashboards and alerts.
 */
import process from "node:process";
import type { CounterValue } from "../counters.ts";
import type { Record } from "../record.ts";
import type { ProbeStage, StageContext, StageDef } from "../pipeline/stage.ts";

/** Options of a `collector` probe. */
export interface CollectorConfig {
  /** Milliseconds between reports. */
  every: number;
}

/** A counter's field name: its name, then the values of labels other than `stage`. */
function fieldName(c: CounterValue): string {
  const extra = Object.entries(c.labels).filter(([k]) => k !== "stage").map(([, v]) => v);
  return [c.name, ...extra].join("_").replace(/[^a-zA-Z0-9_]/g, "_");
}

/** The records of one report, from a counter snapshot and process figures. */
export function collectorRecords(
  counters: CounterValue[],
  process: { rss: number; heapUsed: number; userUs: number; systemUs: number; uptimeMs: number },
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
  const own: Record = {
    measurement: "ebpf_collector",
    tags: { host, source: "ebpf_collector", stage: "_process" },
    fields: {
      rss_bytes: BigInt(process.rss),
      heap_used_bytes: BigInt(process.heapUsed),
      cpu_user_us: BigInt(Math.round(process.userUs)),
      cpu_system_us: BigInt(Math.round(process.systemUs)),
      uptime_ms: BigInt(Math.round(process.uptimeMs)),
    },
    time,
  };
  return [...[...byStage.values()].sort((a, b) => a.tags.stage < b.tags.stage ? -1 : 1), own];
}

export const collectorProbe: StageDef<CollectorConfig> = {
  type: "collector",
  kind: "probe",
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
    const report = (time: bigint) => {
      const memory = Deno.memoryUsage();
      const cpu = process.cpuUsage();
      for (
        const r of collectorRecords(
          ctx.counterSnapshot(),
          {
            rss: memory.rss,
            heapUsed: memory.heapUsed,
            userUs: cpu.user,
            systemUs: cpu.system,
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

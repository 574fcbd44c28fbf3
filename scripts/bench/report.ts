/**
 * The bench's text summary, printed from its JSON (results.ts): on/off against targets, the
 * collector's use, BPF and CPU cost per event, scaling, memory, and the overall targets. With
 * one variant (no --probes, no --compare) the tables are those the bench always printed, with
 * the per-event columns added.
 */
import type { MemoryStage } from "./memory.ts";
import {
  type BenchJson,
  type CostPerEvent,
  type OnRun,
  targetedNs,
  type VariantJson,
  variantsOf,
  type WorkloadJson,
} from "./results.ts";
import { KIND_NAMES, type MemoryKinds } from "./smaps.ts";
import { format, median, type Spread, table } from "./stats.ts";

const MiB = 1024;

function ratioText(s: Spread): string {
  return `${s.median.toFixed(3)} [${s.q1.toFixed(3)}-${s.q3.toFixed(3)}] (${s.min.toFixed(3)}-${
    s.max.toFixed(3)
  })`;
}

const passFail = (ok: boolean) => ok ? "pass" : "FAIL";

const lostText = (lost: { [counter: string]: number }) =>
  Object.entries(lost).filter(([, n]) => n).map(([c, n]) => `${c}=${n}`).join(" ");

/** Every workload's variants, each row of a table: `[workload, variant]`. */
function rows(json: BenchJson): [WorkloadJson, VariantJson][] {
  return json.workloads.flatMap((w) =>
    variantsOf(w).map((v) => [w, v] as [WorkloadJson, VariantJson])
  );
}

/** Prints the tables for `json`. */
export function report(json: BenchJson): void {
  const many = json.workloads.some((w) => variantsOf(w).length > 1);
  /** The variant column, only when there is more than one. */
  const col = (v: VariantJson) => many ? [v.label] : [];
  const head = (name: string) => many ? [name, "variant"] : [name];

  if (json.workloads.length) workloadTables(json, col, head);

  for (const [w, v] of rows(json)) {
    const p = v.profile;
    if (!p) continue;
    console.log(
      `\nBPF programs during ${w.name}${many ? `, ${v.label}` : ""} (bpf_stats): ${
        format(p.eventsPerSecond)
      } runs/s in all, collector ${p.cpuPercent.toFixed(1)}% CPU`,
    );
    if (p.programs.length === 0) continue; // a probe alone that this workload does not reach
    console.log(table([
      ["program", "runs/s", "ns/run", "% of a core", `runs/${w.event}`, `ns/${w.event}`],
      ...p.programs.slice(0, 6).map((c) => [
        c.name,
        format(c.runsPerSecond),
        format(c.nsPerRun),
        c.cpuPercent.toFixed(2),
        c.runsPerEvent === undefined ? "-" : c.runsPerEvent.toFixed(2),
        c.nsPerEvent === undefined ? "-" : format(c.nsPerEvent),
      ]),
    ]));
    if (p.cost_per_event) console.log(costLine(p.cost_per_event));
    if (p.cpu) {
      console.log(`the collector's CPU (perf, ${p.cpu.samples} samples), by function and callees:`);
      console.log(table([
        ["function", "% total", "% self"],
        ...p.cpu.byTotal.slice(0, 10).map((f) => [
          f.where,
          f.totalPercent.toFixed(1),
          f.selfPercent.toFixed(1),
        ]),
      ]));
    }
  }

  const costed = rows(json).filter(([, v]) => v.profile?.cost_per_event);
  if (costed.length) {
    console.log(
      "\nCPU per workload event (bpf_stats runs, medians): BPF = all the collector's programs' " +
        "run time; collector = its utime+stime:\n",
    );
    console.log(table([
      [...head("workload"), "event", "BPF ns", "collector ns", "total ns", "target", ""],
      ...costed.map(([w, v]) => {
        const c = v.profile!.cost_per_event!, t = w.cost_target;
        return [
          w.name,
          ...col(v),
          c.event,
          format(c.bpf_ns),
          format(c.collector_ns),
          format(c.total_ns),
          t ? `${t.of} ≤ ${format(t.ns)}` : "-",
          t && !v.probe ? passFail(targetedNs(c, t) <= t.ns) : "",
        ];
      }),
    ]));
  }

  if (json.scaling.length) {
    const trees = new Set(json.scaling.map((s) => s.tree)).size > 1;
    console.log("\nnetflow poll (every 1 s) with idle connections held open:\n");
    console.log(table([
      [
        ...(trees ? ["tree"] : []),
        "connections",
        "sockets tracked",
        "poll ms",
        "CPU ms/poll",
        "RSS MiB",
        "sockets_full",
        "attach ms",
      ],
      ...json.scaling.map((s) => [
        ...(trees ? [s.tree] : []),
        format(s.connections),
        format(s.trackedSockets),
        s.pollMs.toFixed(2),
        s.cpuMsPerPoll.toFixed(2),
        s.rssMiB.toFixed(1),
        format(s.socketsFull),
        format(s.attachMs),
      ]),
    ]));
  }

  for (const m of json.memory ?? []) memoryReport(m.tree, m.stages);

  targets(json, many);
}

/** The ratios against their targets, and the collector's use during the on runs. */
function workloadTables(
  json: BenchJson,
  col: (v: VariantJson) => string[],
  head: (name: string) => string[],
): void {
  console.log(`\non/off, median [quartiles] (min-max) of ${json.pairs} pair(s):\n`);
  console.log(table([
    [...head("workload"), "off (median)", "on (median)", "on/off", "target", ""],
    ...rows(json).map(([w, v]) => [
      `${w.name} (${w.unit})`,
      ...col(v),
      format(median(w.off), digits(w)),
      format(median(v.on), digits(w)),
      ratioText(v.ratio),
      w.target ? `≥ ${w.target.toFixed(2)}` : "-",
      w.target && !v.probe ? passFail(v.ratio.median >= w.target) : "",
    ]),
  ]));

  console.log("\nthe collector during the on runs (medians; peak RSS: the highest VmHWM):\n");
  console.log(table([
    [
      ...head("workload"),
      "CPU %",
      "RSS MiB",
      "peak MiB",
      "maps MiB",
      "attach ms",
      "records/s",
      "CPU ns/event",
      "lost",
    ],
    ...rows(json).map(([w, v]) => {
      const c = v.collector;
      return [
        w.name,
        ...col(v),
        c.cpu_percent.median.toFixed(1),
        (c.rss_kib.median / MiB).toFixed(1),
        (c.peak_rss_kib / MiB).toFixed(1),
        (c.bpf_map_bytes / 2 ** 20).toFixed(1),
        c.attach_ms.median.toFixed(0),
        format(c.records_per_second),
        c.cpu_ns_per_event === undefined ? "-" : format(c.cpu_ns_per_event),
        lostText(c.lost) || "0",
      ];
    }),
  ]));
}

/** Decimals for a workload's rates: two for small numbers (Gbit/s), none for counts a second. */
function digits(w: WorkloadJson): number {
  return median(w.off) < 100 ? 2 : 0;
}

function costLine(c: CostPerEvent): string {
  return `per ${c.event}: BPF ${format(c.bpf_ns)} ns + collector ${format(c.collector_ns)} ns = ${
    format(c.total_ns)
  } ns (median of ${c.runs} run(s))`;
}

/** The memory stages side by side, each kind's KiB as MiB, and the last column minus the first. */
function memoryReport(tree: string, stages: MemoryStage[]): void {
  if (stages.length === 0) return;
  const mib = (kib: number) => (kib / MiB).toFixed(1);
  const first = stages[0], light = stages.find((s) => s.id === "light") ?? stages.at(-1)!;
  console.log(
    `\nmemory of ${tree} (MiB resident, /proc/<pid>/smaps; V8 from Deno.memoryUsage()):\n`,
  );
  const kinds = Object.keys(KIND_NAMES) as (keyof MemoryKinds)[];
  const v8 = (s: MemoryStage, key: "heapTotal" | "heapUsed" | "external") => {
    const bytes = s.v8?.[key];
    return bytes === undefined ? "-" : (bytes / 2 ** 20).toFixed(1);
  };
  console.log(table([
    ["", ...stages.map((s) => s.label), "light - empty"],
    ["RSS", ...stages.map((s) => mib(s.rssKib)), mib(light.rssKib - first.rssKib)],
    ...kinds.map((k) => [
      `  ${KIND_NAMES[k]}`,
      ...stages.map((s) => mib(s.kinds[k])),
      mib(light.kinds[k] - first.kinds[k]),
    ]),
    ["V8 heap used", ...stages.map((s) => v8(s, "heapUsed")), ""],
    ["V8 heap committed", ...stages.map((s) => v8(s, "heapTotal")), ""],
    ["V8 external (ArrayBuffers)", ...stages.map((s) => v8(s, "external")), ""],
  ]));
}

/** The overall targets, for each tree's full collector (the first variant of it). */
function targets(json: BenchJson, many: boolean): void {
  const trees = [...new Set(json.workloads.flatMap((w) => variantsOf(w).map((v) => v.tree)))];
  const budgetFor = (tree: string) =>
    (json.trees?.find((t) => t.label === tree)?.empty_deno_kib ?? json.empty_deno_kib).rss / MiB +
    30;
  const lines: string[][] = [];
  for (const tree of trees) {
    const full = json.workloads.map((w) => variantsOf(w).find((v) => v.tree === tree && !v.probe))
      .filter((v): v is VariantJson => v !== undefined);
    if (full.length === 0) continue;
    const runs: OnRun[] = full.flatMap((v) => v.collector.runs ?? []);
    const steadyMiB = Math.max(...full.map((v) => v.collector.rss_kib.median)) / MiB;
    const budgetMiB = budgetFor(tree);
    const attach = runs.length
      ? median(runs.map((u) => u.attachMs))
      : median(full.map((v) => v.collector.attach_ms.median));
    const lostTotal = full.reduce(
      (sum, v) => sum + Object.values(v.collector.lost).reduce((a, b) => a + b, 0),
      0,
    );
    const profiled = full.filter((v) => v.profile);
    const peakEvents = Math.max(0, ...profiled.map((v) => v.profile!.eventsPerSecond));
    const who = many && trees.length > 1 ? `${tree}: ` : "";
    lines.push(
      [
        `${who}0 lost at 200k events/s`,
        `${lostTotal} lost; ${profiled.length ? format(peakEvents) : "?"} BPF runs/s at most`,
        passFail(lostTotal === 0 && peakEvents >= 200_000),
      ],
      [
        `${who}RSS ≤ empty deno + 30 MiB`,
        `${steadyMiB.toFixed(1)} ≤ ${budgetMiB.toFixed(1)} MiB (highest median)`,
        passFail(steadyMiB <= budgetMiB),
      ],
      [`${who}attach ≤ 500 ms`, `${attach.toFixed(0)} ms (median)`, passFail(attach <= 500)],
    );
  }
  if (lines.length === 0) return;
  console.log("\ntargets:\n");
  console.log(table([["target", "measured", ""], ...lines]));
}

/**
 * The shape of the JSON `deno task bench` writes (build/bench.json), which report.ts prints and
 * chart.ts draws. Older files (before --probes, --compare and per-event costs) have only the
 * fields not marked "since"; readers must take both.
 */
import type { ProgramCost } from "./bpf_stats.ts";
import type { MemoryStage } from "./memory.ts";
import type { PerfSummary } from "./perf_profile.ts";
import type { ScalingResult } from "./scaling.ts";
import type { Spread } from "./stats.ts";

export interface BenchJson {
  date: string;
  load_at_start: string;
  load_at_end: string;
  cpus: number;
  kernel: string;
  deno: string;
  pairs: number;
  seconds: number;
  /** The empty `deno run` of the first tree. */
  empty_deno_kib: { rss: number; hwm: number };
  /** Since --compare: the checkouts measured, the first one's collector is `on`. */
  trees?: TreeJson[];
  workloads: WorkloadJson[];
  /** Every tree's, each row naming its tree (since --compare). */
  scaling: ScalingResult[];
  /** Since the memory breakdown: one entry per tree. */
  memory?: { tree: string; stages: MemoryStage[] }[];
}

export interface TreeJson {
  label: string;
  root: string;
  commit: string;
  empty_deno_kib: { rss: number; hwm: number };
}

/** What a lower cost per event is held to (issue 17's targets). */
export interface CostTarget {
  /** `bpf`: the BPF programs' run time alone; `total`: BPF + the collector's CPU. */
  of: "bpf" | "total";
  ns: number;
}

export interface WorkloadJson {
  id: string;
  name: string;
  unit: string;
  /** The lowest acceptable median on/off ratio. */
  target?: number;
  /** Since per-event costs: what an event of this workload is ("datagram", "answer"...). */
  event?: string;
  cost_target?: CostTarget;
  off: number[];
  /** The first variant's, as before variants. */
  on: number[];
  ratio: Spread;
  collector: CollectorJson;
  profile?: ProfileJson;
  /** Since --probes/--compare: every collector run against the same off runs, first = above. */
  variants?: VariantJson[];
}

/** One way of running the collector: a tree, all its probes or one alone. */
export interface VariantJson {
  id: string;
  label: string;
  tree: string;
  /** The probe run alone, if one is. */
  probe?: string;
  on: number[];
  ratio: Spread;
  collector: CollectorJson;
  profile?: ProfileJson;
}

export interface CollectorJson {
  cpu_percent: Spread;
  rss_kib: Spread;
  peak_rss_kib: number;
  bpf_map_bytes: number;
  attach_ms: Spread;
  probe_attach_ms: { [probe: string]: number };
  records_per_second: number;
  lost: { [counter: string]: number };
  /** Since per-event costs: the collector's utime+stime per workload event (no bpf_stats). */
  cpu_ns_per_event?: number;
  /** Since per-event costs: each on run as measured. */
  runs?: OnRun[];
}

/** What one on run saw of the collector. */
export interface OnRun {
  cpuPercent: number;
  cpuSeconds: number;
  rssKb: number;
  hwmKb: number;
  attachMs: number;
  probeAttachMs: { [probe: string]: number };
  mapBytes: number;
  recordsPerSecond: number;
  /** The workload's events in the run. */
  events: number;
  lost: { [counter: string]: number };
}

/** The profiling runs (kernel.bpf_stats_enabled=1, perf on the first). */
export interface ProfileJson {
  /** BPF program runs a second, all programs (the first run). */
  eventsPerSecond: number;
  cpuPercent: number;
  /** The first run's programs; since per-event costs with runsPerEvent and nsPerEvent. */
  programs: (ProgramCost & { runsPerEvent?: number; nsPerEvent?: number })[];
  cpu?: PerfSummary;
  /** Since per-event costs: medians over the profiling runs. */
  cost_per_event?: CostPerEvent;
}

/** CPU an event of the workload costs: BPF (all programs, bpf_stats) and the collector's own. */
export interface CostPerEvent {
  event: string;
  bpf_ns: number;
  collector_ns: number;
  /** bpf_ns + collector_ns of each run, the median of those sums. */
  total_ns: number;
  /** Profiling runs the medians are of. */
  runs: number;
}

/** The variants of a workload, old files' single `on` made one. */
export function variantsOf(w: WorkloadJson): VariantJson[] {
  return w.variants ?? [{
    id: "on",
    label: "on",
    tree: "",
    on: w.on,
    ratio: w.ratio,
    collector: w.collector,
    profile: w.profile,
  }];
}

/** The cost the target is on, from `cost`. */
export function targetedNs(cost: CostPerEvent, target: CostTarget): number {
  return target.of === "bpf" ? cost.bpf_ns : cost.total_ns;
}

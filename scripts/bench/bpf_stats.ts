/**
 * What each of a process's BPF programs costs where it runs: run counts and run time from the
 * kernel's BPF statistics (kernel.bpf_stats_enabled=1, which itself adds a clock read per run,
 * so it is on only for the profiling runs, never for the off/on pairs).
 */
import { bpfProgramNames, bpfProgramStats, type ProgramStats } from "./proc.ts";

const SYSCTL = "/proc/sys/kernel/bpf_stats_enabled";

/** Turns BPF statistics on; dispose (once or more) to put the setting back as it was. */
export function enableBpfStats(): Disposable {
  const before = Deno.readTextFileSync(SYSCTL).trim();
  Deno.writeTextFileSync(SYSCTL, "1");
  let restored = false;
  return {
    [Symbol.dispose]() {
      if (!restored) Deno.writeTextFileSync(SYSCTL, before);
      restored = true;
    },
  };
}

/** One program's runs over a measured stretch. */
export interface ProgramCost {
  name: string;
  runsPerSecond: number;
  nsPerRun: number;
  /** % of one core spent in this program. */
  cpuPercent: number;
}

/** What a process's BPF programs did over a measured stretch. */
export interface BpfCost {
  /** The programs that ran, costliest first. */
  programs: ProgramCost[];
  /** The run time of all its programs together, ns. */
  totalNs: number;
  seconds: number;
}

/**
 * Runs `work` and returns what each of `pid`'s programs did meanwhile. The sum counts every
 * program the process holds: hooks that run in other processes (sendmsg, tracepoints, cgroup
 * skb) and the iterators its own poll runs (whose time is also in its stime).
 */
export async function programCosts<T>(
  pid: number,
  work: () => Promise<T>,
): Promise<[T, BpfCost]> {
  const before = new Map(bpfProgramStats(pid).map((p) => [p.id, p]));
  const t0 = performance.now();
  const result = await work();
  const seconds = (performance.now() - t0) / 1000;
  const after = bpfProgramStats(pid);
  const names = await bpfProgramNames();
  const zero: ProgramStats = { id: 0, runs: 0, ns: 0 };
  let totalNs = 0;
  const costs = after.map((p) => {
    const b = before.get(p.id) ?? zero;
    const runs = p.runs - b.runs, ns = p.ns - b.ns;
    totalNs += ns;
    return {
      name: names.get(p.id) ?? `prog ${p.id}`,
      runsPerSecond: runs / seconds,
      nsPerRun: runs ? ns / runs : 0,
      cpuPercent: ns / 1e9 / seconds * 100,
    };
  });
  const programs = costs.filter((c) => c.runsPerSecond > 0)
    .sort((a, b) => b.cpuPercent - a.cpuPercent);
  return [result, { programs, totalNs, seconds }];
}

/**
 * What a process uses, read from /proc: CPU ticks, RSS (now and peak), and the BPF maps and
 * programs it holds (through the fdinfo of its map and program file descriptors).
 */
import { output } from "./child.ts";

/** utime + stime of `pid`, in clock ticks. */
export function cpuTicks(pid: number): number {
  // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[14 - 3]) + Number(fields[15 - 3]);
}

/** VmRSS (now) and VmHWM (the peak so far) of `pid`, in KiB. */
export function memoryKb(pid: number): { rss: number; hwm: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (name: string) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"))?.[1]);
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

/** USER_HZ: the unit of /proc/<pid>/stat's times. */
export async function clockTicksPerSecond(): Promise<number> {
  return Number((await output("getconf", ["CLK_TCK"])).trim()) || 100;
}

/** The fdinfo of each BPF object of one kind `pid` holds, one per object id. */
function bpfFdinfo(pid: number, kind: "map" | "prog"): Map<number, Map<string, string>> {
  const byId = new Map<number, Map<string, string>>();
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    let target;
    try {
      target = Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`);
    } catch {
      continue; // closed meanwhile
    }
    if (target !== `anon_inode:bpf-${kind}`) continue;
    const info = new Map<string, string>();
    for (const line of Deno.readTextFileSync(`/proc/${pid}/fdinfo/${entry.name}`).split("\n")) {
      const [key, value] = line.split(":\t");
      if (value !== undefined) info.set(key, value.trim());
    }
    byId.set(Number(info.get(`${kind}_id`)), info);
  }
  return byId;
}

/** Bytes the kernel charges for the BPF maps `pid` holds (each map counted once). */
export function bpfMapMemlock(pid: number): number {
  let total = 0;
  for (const info of bpfFdinfo(pid, "map").values()) total += Number(info.get("memlock") ?? 0);
  return total;
}

/** run_cnt and run_time_ns (kept only while kernel.bpf_stats_enabled=1) of one program. */
export interface ProgramStats {
  id: number;
  runs: number;
  ns: number;
}

/** The run counters of every BPF program `pid` holds. */
export function bpfProgramStats(pid: number): ProgramStats[] {
  return [...bpfFdinfo(pid, "prog").entries()].map(([id, info]) => ({
    id,
    runs: Number(info.get("run_cnt") ?? 0),
    ns: Number(info.get("run_time_ns") ?? 0),
  }));
}

/** Program names by id (fdinfo has none), from bpftool. */
export async function bpfProgramNames(): Promise<Map<number, string>> {
  const programs: { id: number; name?: string; type: string }[] = JSON.parse(
    await output("bpftool", ["prog", "show", "-j"]),
  );
  return new Map(programs.map((p) => [p.id, p.name ?? p.type]));
}

/** The collector's use of the machine over one workload run. */
export interface Usage {
  /** % of one core. */
  cpuPercent: number;
  /** utime + stime over the run, seconds. */
  cpuSeconds: number;
  /** VmRSS at the end of the run, KiB. */
  rssKb: number;
  /** VmHWM at the end of the run (the peak since the process started), KiB. */
  hwmKb: number;
}

/** Measures `pid`'s CPU (% of one core) and RSS while `work` runs. */
export async function withUsage<T>(
  pid: number,
  ticksPerSecond: number,
  work: () => Promise<T>,
): Promise<[T, Usage]> {
  const ticks0 = cpuTicks(pid), t0 = performance.now();
  const result = await work();
  const ticks = cpuTicks(pid) - ticks0, seconds = (performance.now() - t0) / 1000;
  const memory = memoryKb(pid);
  return [result, {
    cpuPercent: ticks / ticksPerSecond / seconds * 100,
    cpuSeconds: ticks / ticksPerSecond,
    rssKb: memory.rss,
    hwmKb: memory.hwm,
  }];
}

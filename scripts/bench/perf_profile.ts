/**
 * Where the collector's own CPU goes during one workload: `perf record -g` on its pid, with V8
 * writing its JIT symbols for perf (`--v8-flags=--perf-basic-prof`), summed by function.
 *
 * Not V8's own profiler: through the inspector it counted the ring reader's work as "(idle)"
 * (72 ms of JS for 660 ms of CPU during short connections), and `--cpu-prof` samples with
 * SIGPROF from the start, which fails BPF loads with EAGAIN (the verifier stops on a signal).
 */
import { ROOT } from "../../test/_run_command.ts";
import { output } from "./child.ts";

/**
 * `deno run` flags that let perf name JIT-compiled functions; without --logfile, V8 also writes
 * an isolate-*-v8.log into the checkout on every profiling run.
 */
export const PERF_DENO_FLAGS = ["--v8-flags=--perf-basic-prof,--logfile=/dev/null"];

/** One function's share of the collector's samples. */
export interface FunctionShare {
  /** `name file:line` for JavaScript, the symbol otherwise. */
  where: string;
  /** % of samples in it or what it calls. */
  totalPercent: number;
  /** % of samples in its own code. */
  selfPercent: number;
}

export interface PerfSummary {
  samples: number;
  /** The project's own functions (src/, ffi/) with the most samples below them. */
  byTotal: FunctionShare[];
}

/** True if `perf record` can run here. */
export async function perfAvailable(): Promise<boolean> {
  try {
    await output("perf", ["--version"]);
    return true;
  } catch {
    return false;
  }
}

/** Samples `pid` (999 Hz, call graphs) while `work` runs. */
export async function perfProfile<T>(
  pid: number,
  name: string,
  work: () => Promise<T>,
): Promise<[T, PerfSummary]> {
  Deno.mkdirSync(`${ROOT}build/prof`, { recursive: true });
  const data = `${ROOT}build/prof/${name}.perf.data`;
  const record = new Deno.Command("perf", {
    args: ["record", "-F", "999", "-g", "-p", String(pid), "-o", data],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  await new Promise((resolve) => setTimeout(resolve, 200)); // perf attaches
  let result: T;
  try {
    result = await work();
  } finally {
    record.kill("SIGINT");
  }
  // Stopped by SIGINT, perf exits non-zero even when it wrote its data: its stderr says.
  const stderr = new TextDecoder().decode((await record.output()).stderr);
  if (!stderr.includes("Captured and wrote")) throw new Error(`perf record: ${stderr}`);
  const report = await output("perf", [
    "report",
    "-i",
    data,
    "--children",
    "--sort",
    "sym",
    "--stdio",
    "-g",
    "none",
  ]);
  return [result, summarize(report)];
}

/** Reads `perf report --children --sort sym -g none` output. */
export function summarize(report: string): PerfSummary {
  // "# Samples: 2K of event 'cpu-clock:ppp'"
  const [, count, thousands] = report.match(/^# Samples: (\d+)(K?)/m) ?? ["", "0", ""];
  const samples = Number(count) * (thousands ? 1000 : 1);
  const byWhere = new Map<string, FunctionShare>();
  for (const line of report.split("\n")) {
    // "    30.52%     0.62%  [.] JS:*'emit file:///.../src/probes/netflow.ts:229:18"
    const m = line.match(
      /^\s+([\d.]+)%\s+([\d.]+)%\s+\[.\]\s+JS:[*^+~]?'?(\S*) file:\/\/(\S+):(\d+):\d+/,
    );
    if (!m) continue;
    const [, total, self, name, url, lineNo] = m;
    const fn = name || "(anonymous)";
    const file = url.match(/\/((?:src|ffi)\/.+)$/)?.[1];
    if (!file) continue;
    const where = `${fn} ${file}:${lineNo}`;
    // A function compiled at several tiers (^ + *) is one function: add them up.
    const seen = byWhere.get(where) ?? { where, totalPercent: 0, selfPercent: 0 };
    seen.totalPercent = Math.min(100, seen.totalPercent + Number(total));
    seen.selfPercent += Number(self);
    byWhere.set(where, seen);
  }
  const byTotal = [...byWhere.values()].sort((a, b) => b.totalPercent - a.totalPercent);
  return { samples, byTotal: byTotal.slice(0, 12) };
}

/**
 * Where the collector's own CPU goes: a V8 CPU profile (inspector.ts) summed by function, self time (the function's own code, FFI calls and syscalls included) and total
 * time (with what it calls).
 */

/** One function's share of the profiled time. */
export interface FunctionTime {
  /** `name file:line`. */
  where: string;
  selfMs: number;
  totalMs: number;
}

/** A V8 CPU profile, as the inspector's Profiler.stop returns it. */
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** A profile's busy (non-idle) time, and where it went. */
export interface ProfileSummary {
  busyMs: number;
  /** The functions with the most self time. */
  bySelf: FunctionTime[];
  /** The project's own functions (src/, ffi/) with the most total time: which stage costs. */
  byTotal: FunctionTime[];
}

/** Sums `profile`, `top` functions in each list. */
export function summarizeProfile(profile: CpuProfile, top = 10): ProfileSummary {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // A regex's "function name" is its source: cut, it still says which one.
  const where = (n: ProfileNode) =>
    `${(n.callFrame.functionName || "(anonymous)").slice(0, 50)} ${
      n.callFrame.url.split("/").at(-1)
    }:${n.callFrame.lineNumber + 1}`;
  const selfUs = new Map<string, number>(), totalUs = new Map<string, number>();
  const projectFiles = new Set(
    profile.nodes.filter((n) => /\/(src|ffi)\/[^/]+/.test(n.callFrame.url)).map(where),
  );
  let busyUs = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const node = nodes.get(id)!;
    if (node.callFrame.functionName === "(idle)") return;
    busyUs += us;
    selfUs.set(where(node), (selfUs.get(where(node)) ?? 0) + us);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const key = where(nodes.get(at)!);
      if (seen.has(key)) continue;
      seen.add(key);
      totalUs.set(key, (totalUs.get(key) ?? 0) + us);
    }
  });
  const list = (entries: [string, number][], by: (key: string) => boolean) =>
    entries.filter(([key]) => by(key)).sort((a, b) => b[1] - a[1]).slice(0, top).map((
      [key],
    ) => ({
      where: key,
      selfMs: (selfUs.get(key) ?? 0) / 1000,
      totalMs: (totalUs.get(key) ?? 0) / 1000,
    }));
  return {
    busyMs: busyUs / 1000,
    bySelf: list([...selfUs.entries()], () => true),
    byTotal: list([...totalUs.entries()], (key) => projectFiles.has(key)),
  };
}

/**
 * A reload: moves a running pipeline to the next file's graph atomically. Builds its new and
 * changed stages first (on failure nothing changes and it throws), then switches in one
 * synchronous step, then flushes and closes the stages the next graph no longer has. Unchanged
 * stages (same type, settings and what the graph tells them) keep running with their state:
 * probes stay attached, windows keep their sums; a stage that can take its new settings in
 * place (`reconfigure`) is kept too.
 */
import { describeError } from "../errors.ts";
import { type Builder, buildGeneration, closeAll, wire } from "./generation.ts";
import type { Pipeline, StageNode } from "./pipeline.ts";
import { factsOf, type GraphFacts, type Runner } from "./runner.ts";

/** What a reload did. */
export interface ReloadReport {
  kept: string[];
  /** Kept, with their new settings applied in place (a subset of `kept`). */
  reconfigured: string[];
  started: string[];
  stopped: string[];
  disabled: string[];
}

/**
 * What makes two generations' stages the same stage: everything but their wiring, and what the
 * graph tells the stage.
 */
function identity(node: StageNode, facts: GraphFacts): string {
  const { inputs: _inputs, ...settings } = node.raw;
  return JSON.stringify([node.section, node.def.type, node.required, settings, facts]);
}

/** Whether two generations' nodes are one stage with (maybe) other settings. */
function sameStage(a: StageNode, b: StageNode): boolean {
  return a.section === b.section && a.def.type === b.def.type && a.required === b.required;
}

/**
 * Moves from the generation `old` to `next`'s graph; `switchTo` is called with the new live
 * runners, by name in graph order, in the synchronous step that rewires them, so every record
 * goes to exactly one generation.
 */
export async function reloadGeneration(
  builder: Builder,
  old: Map<string, Runner>,
  next: Pipeline,
  switchTo: (live: Map<string, Runner>) => void,
): Promise<ReloadReport> {
  const { env, disabled } = builder;
  const keep = new Map<string, Runner>();
  const fresh: StageNode[] = [];
  const applies = new Map<string, () => void>();
  const facts = new Map(next.stages.map((n) => [n.name, factsOf(n, next.stages)]));
  for (const node of next.stages) {
    const current = old.get(node.name), nextFacts = facts.get(node.name)!;
    if (current && identity(current.node, current.facts) === identity(node, nextFacts)) {
      keep.set(node.name, current);
      continue;
    }
    // Same stage with other settings: in place when the stage can, else rebuilt.
    const sameFacts = JSON.stringify(current?.facts) === JSON.stringify(nextFacts);
    const apply = current && sameFacts && sameStage(current.node, node)
      ? current.stage.reconfigure?.(node.config)
      : undefined;
    if (apply) {
      keep.set(node.name, current!);
      applies.set(node.name, apply);
    } else {
      fresh.push(node);
    }
  }
  const before = disabled.length;
  // Throws, changing nothing, when a stage cannot start.
  const built = await buildGeneration(builder, fresh, next.stages, keep, facts);
  // The switch: one synchronous step, so every record goes to exactly one generation.
  for (const apply of applies.values()) apply();
  const live = new Map<string, Runner>();
  for (const node of next.stages) {
    const kept = keep.get(node.name);
    if (kept) {
      kept.node = node; // new wiring, same stage (and the same facts from the graph)
      live.set(node.name, kept);
    }
  }
  for (const r of built) live.set(r.node.name, r);
  const retired = [...old.values()].filter((r) => live.get(r.node.name) !== r);
  const runners = new Map(
    next.stages.filter((n) => live.has(n.name)).map((n) => [n.name, live.get(n.name)!]),
  );
  switchTo(runners);
  wire(runners);
  // A kept stage whose side readers are new holds nothing they have seen (dns answers).
  const rebuilt = new Set(built);
  for (const r of runners.values()) {
    if (rebuilt.has(r) || !r.sideReaders.some((s) => rebuilt.has(s.runner))) continue;
    try {
      r.stage.sideReadersRebuilt?.();
    } catch (e) {
      env.log.warn(`${r.node.name}: ${describeError(e)}`);
    }
  }
  // Retired stages keep their old readers until flushed, so what they hold is not lost.
  await closeAll(env, retired, "shutdown");
  const report = {
    kept: [...keep.keys()],
    reconfigured: [...applies.keys()],
    started: built.map((r) => r.node.name),
    stopped: retired.map((r) => r.node.name),
    disabled: disabled.slice(before).map((d) => d.name),
  };
  env.counters.add("reloads", 1, { result: "ok" });
  env.counters.add("stages_started", report.started.length);
  env.counters.add("stages_stopped", report.stopped.length);
  return report;
}

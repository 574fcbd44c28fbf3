/**
 * One generation of a running pipeline: its stages built (downstream first, so the first
 * record a probe emits has somewhere to go), wired to their readers, and flushed and closed in
 * graph order. The first generation is the whole pipeline; a reload builds the next one from
 * the stages it changes (reload.ts).
 */
import { describeError } from "../errors.ts";
import { trimCHeap } from "../../ffi/malloc_trim.ts";
import type { StageNode } from "./pipeline.ts";
import {
  factsOf,
  type GraphFacts,
  type PipelineEnv,
  Runner,
  type RuntimeEnv,
  type Tap,
} from "./runner.ts";
import type { FlushReason, ProbeStage, Stage } from "./stage.ts";

/** How a pipeline's probes get their records. */
export interface RunOptions {
  /**
   * `kernel` (default): probes load and attach their BPF programs. `injected`: probes are
   * stand-ins that emit only what `RunningPipeline.inject` hands them (replay, tests).
   */
  probes?: "kernel" | "injected";
  /** Sees every record a probe emits, before the next stage does (`--record`). */
  tap?: Tap;
}

/** What building a generation needs of the running pipeline. */
export interface Builder {
  env: PipelineEnv;
  options: RunOptions;
  /** Probes that failed to start and were disabled, with why: a build adds to it. */
  disabled: { name: string; why: string }[];
  /** Run before a counter snapshot: refreshes every live runner's queue gauge. */
  sampleQueues: () => void;
}

/** A stand-in probe for replay and tests: emits only what is injected. */
const INJECTED: Stage = { push() {}, flush() {}, close() {} };

/**
 * Builds `nodes` downstream first; returns the built runners in graph order (probes may be
 * disabled: a probe that fails is, with a warning, unless `required`). Each new runner is wired
 * to its readers in `graph` (new ones, or `existing` ones) before any build, because a probe
 * starts emitting as soon as it is built. On a fatal failure, closes what it built and throws.
 */
export async function buildGeneration(
  builder: Builder,
  nodes: StageNode[],
  graph: StageNode[],
  existing: Map<string, Runner>,
  facts: Map<string, GraphFacts> = new Map(nodes.map((n) => [n.name, factsOf(n, graph)])),
): Promise<Runner[]> {
  const { env, options, disabled } = builder;
  const created = new Map(
    nodes.map((n) => [n.name, new Runner(n, env, facts.get(n.name)!, options.tap)]),
  );
  for (const runner of created.values()) {
    runner.beforeSnapshot = builder.sampleQueues;
    runner.downstream = graph
      .filter((n) => n.inputs.includes(runner.node.name))
      .map((n) => created.get(n.name) ?? existing.get(n.name))
      .filter((r): r is Runner => r !== undefined);
    // Side readers too, before any stage starts: a probe may emitSide as soon as it is built.
    runner.sideReaders = graph.flatMap((n) =>
      n.sideInputs
        .filter((side) => side.stage === runner.node.name)
        .map((side) => ({ runner: created.get(n.name) ?? existing.get(n.name), key: side.key }))
        .filter((s): s is { runner: Runner; key: string } => s.runner !== undefined)
    );
  }
  const built: Runner[] = [];
  try {
    for (const node of buildOrder(nodes)) {
      const runner = created.get(node.name)!;
      const begun = performance.now();
      try {
        runner.stage = node.kind === "probe" && options.probes === "injected"
          ? INJECTED
          : await node.def.build(node.config, runner.context());
      } catch (e) {
        if (node.kind !== "probe" || node.required) throw e;
        // One probe failing (a missing symbol, a verifier rejection) must not stop the others.
        const why = describeError(e);
        disabled.push({ name: node.name, why });
        env.counters.add("probes_disabled", 1, { stage: node.name });
        env.log.warn(`probe ${node.name} disabled: ${why}`);
        continue;
      }
      built.push(runner);
      if (node.kind === "probe" && options.probes !== "injected") {
        const attached = (runner.stage as ProbeStage).attached ?? [];
        const ms = (performance.now() - begun).toFixed(0);
        env.log.info(`attached ${node.name}: ${attached.join(", ") || node.def.type} (${ms} ms)`);
      }
    }
  } catch (e) {
    await closeAll(env, built.toReversed(), "shutdown");
    throw e;
  }
  // Loading BPF objects leaves MiBs freed but resident in the C heap (see malloc_trim.ts).
  if (options.probes !== "injected" && built.some((r) => r.node.kind === "probe")) trimCHeap();
  return built.toReversed(); // graph order
}

/**
 * The order to build `nodes` (graph order) in: downstream first, so a probe's first record has
 * somewhere to go; probes last (they have no inputs), those that provide a shared kernel map
 * before those that may consume it (StageDef.provides).
 */
function buildOrder(nodes: StageNode[]): StageNode[] {
  const rank = (n: StageNode) => n.kind !== "probe" ? 0 : n.def.provides?.length ? 1 : 2;
  return [...nodes].reverse().sort((a, b) => rank(a) - rank(b)); // stable: keeps the rest
}

/**
 * Flushes and closes `list`, which is in graph order (upstream first), so what a stage holds
 * flows on through the stages after it before they close.
 */
export async function closeAll(
  env: RuntimeEnv,
  list: Runner[],
  reason: FlushReason,
): Promise<void> {
  for (const runner of list) {
    try {
      await runner.flush(reason);
      await runner.stage.close();
    } catch (e) {
      env.log.warn(`${runner.node.name}: stopping failed: ${describeError(e)}`);
    }
  }
}

/** Points every runner of `live` at its readers, for the graph their nodes describe. */
export function wire(live: Map<string, Runner>): void {
  for (const r of live.values()) [r.downstream, r.sideReaders] = [[], []];
  for (const r of live.values()) {
    for (const input of r.node.inputs) live.get(input)?.downstream.push(r);
    for (const { key, stage } of r.node.sideInputs) {
      live.get(stage)?.sideReaders.push({ runner: r, key });
    }
  }
}

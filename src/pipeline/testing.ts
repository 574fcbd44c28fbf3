/**
 * Helpers for unit tests of stage types: configure a stage from options as a user would write
 * them (through the real YAML reader, so errors carry positions), build it on a ManualClock, and
 * collect what it emits. No kernel, no permissions.
 */
import { stringify } from "yaml";
import { Counters } from "../counters.ts";
import type { ConfigError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Record } from "../record.ts";
import { ManualClock } from "./clock.ts";
import type { HostFacts } from "./host_facts.ts";
import { At, readWithSchema } from "./schema.ts";
import { stageContext } from "./context.ts";
import type { ProbePushdown, Stage, StageDef } from "./stage.ts";
import { YamlSource } from "./yaml_source.ts";

/** Configures `def` from `options` the way the loader does; the stage sits at `test.<type>`. */
export function configureStage(
  def: StageDef,
  options: { [key: string]: unknown },
): { config: unknown; errors: ConfigError[] } {
  const text = stringify({ test: { [def.type]: { type: def.type, ...options } } });
  const { source, errors } = YamlSource.parse("test.yaml", text);
  if (!source) return { config: undefined, errors };
  const at = new At(source, `test.${def.type}`, errors);
  const config = readWithSchema(def.schema, options, at, ["type", "inputs"]);
  if (errors.length === 0 && def.validate) errors.push(...def.validate(config, at));
  return { config, errors };
}

/** A built stage with everything it emitted, its counters, its clock and its log lines. */
export interface StageUnderTest {
  stage: Stage;
  emitted: Record[];
  /** What it sent to side readers (`ctx.emitSide`). */
  emittedSide: Record[];
  counters: Counters;
  clock: ManualClock;
  logs: string[];
  /** The `why` of each `ctx.requestStop` call. */
  stopRequests: string[];
}

/**
 * Configures and builds `def`; throws if the options do not validate. `graph`: what the graph
 * and the runtime would tell the stage (ctx.pushdown, ctx.inputSpanMs, ctx.hostFacts), none by
 * default (no pushdown, span 0, OFFLINE_HOST_FACTS of host_facts.ts).
 */
export async function buildStage(
  def: StageDef,
  options: { [key: string]: unknown },
  clock = new ManualClock(1_764_000_000_000_000_000n),
  graph: { pushdown?: ProbePushdown; inputSpanMs?: number; hostFacts?: HostFacts } = {},
): Promise<StageUnderTest> {
  const { config, errors } = configureStage(def, options);
  if (errors.length > 0) throw new Error(errors.map((e) => e.message).join("\n"));
  const emitted: Record[] = [], emittedSide: Record[] = [];
  const counters = new Counters();
  const logs: string[] = [], stopRequests: string[] = [];
  const log: Logger = {
    info: (m) => logs.push(m),
    warn: (m) => logs.push(`warning: ${m}`),
    debug: () => {},
  };
  const stage = await def.build(
    config,
    stageContext({
      ...graph,
      name: def.type,
      host: "test-host",
      clock,
      log,
      counters,
      emit: (record) => emitted.push(record),
      emitSide: (record) => emittedSide.push(record),
      requestStop: (why) => stopRequests.push(why),
    }),
  );
  return { stage, emitted, emittedSide, counters, clock, logs, stopRequests };
}

/**
 * Builds a stage's {@linkcode StageContext}: the one place that fills it in, for the runtime
 * (runner.ts), unit tests of stage types (testing.ts) and `doctor`'s trial load of a probe,
 * so a field added to the contract gets its default here once, not in three object literals.
 */
import type { Counters, CounterValue } from "../counters.ts";
import type { Logger } from "../log.ts";
import type { Record } from "../record.ts";
import type { Clock } from "./clock.ts";
import { type HostFacts, OFFLINE_HOST_FACTS } from "./host_facts.ts";
import { isLossCounter } from "./loss_watch.ts";
import { SharedMaps } from "./shared_maps.ts";
import type { ProbePushdown, Pushdown, StageContext } from "./stage.ts";

/** What differs from one built stage to the next; what is left out has the default named. */
export interface ContextParts {
  name: string;
  host: string;
  clock: Clock;
  log: Logger;
  /** All the collector's counters: the stage gets them bound to `{stage: name}`. */
  counters: Counters;
  /** Default {@linkcode OFFLINE_HOST_FACTS}. */
  hostFacts?: HostFacts;
  /** Default none; a "kernel" port range is resolved through `hostFacts`. */
  pushdown?: Pushdown;
  /** Default 0. */
  inputSpanMs?: number;
  /** Default a registry of its own: nothing shared. */
  sharedMaps?: SharedMaps;
  /** Default: records go nowhere. */
  emit?: (record: Record) => void;
  emitSide?: (record: Record) => void;
  /** Default `counters.snapshot()`. */
  counterSnapshot?: () => CounterValue[];
  /** Default: nothing runs to stop. */
  requestStop?: (why: string) => void;
}

/** The context a stage named `parts.name` is built with. */
export function stageContext(parts: ContextParts): StageContext {
  const { name, log, counters, hostFacts = OFFLINE_HOST_FACTS } = parts;
  return {
    name,
    host: parts.host,
    clock: parts.clock,
    hostFacts,
    pushdown: withPortRange(parts.pushdown ?? {}, hostFacts, (p) => log.warn(`${name}: ${p}`)),
    inputSpanMs: parts.inputSpanMs ?? 0,
    sharedMaps: parts.sharedMaps ?? new SharedMaps(),
    log,
    counters: counters.bound({ stage: name }),
    emit: parts.emit ?? (() => {}),
    emitSide: parts.emitSide ?? (() => {}),
    counterSnapshot: parts.counterSnapshot ?? (() => counters.snapshot()),
    requestStop: parts.requestStop ?? (() => {}),
    isLossCounter,
  };
}

/**
 * `pushdown` with a "kernel" port range resolved through the host facts (`warn` hears why it is
 * the Linux default), so a probe folds the range the recording, or this host, has.
 */
function withPortRange(
  pushdown: Pushdown,
  hostFacts: HostFacts,
  warn: (problem: string) => void,
): ProbePushdown {
  if (pushdown.clientPorts !== "kernel") return { ...pushdown, clientPorts: pushdown.clientPorts };
  const { range, problem } = hostFacts.portRange();
  if (problem !== undefined) warn(problem);
  return { ...pushdown, clientPorts: range };
}

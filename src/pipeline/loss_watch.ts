/**
 * Warns when the collector loses data, from the counter registry: one place that knows which
 * counters count losses (kernel drops, full queues and buffers, decode errors, output refusals)
 * and says what each means, so every stage only counts. The runtime's own kinds are here;
 * a stage type declares its own with its def (`drops`, `losses` in src/pipeline/stage.ts).
 *
 * Rate limited per stage and kind (a counter and its `reason`): the first loss is logged at the
 * next check (every second), then at most once per {@linkcode LOSS_WARN_EVERY_MS}, with the
 * count since the previous warning and the total. A loss that keeps going is one line per 10 s,
 * not one per event; a last check at stop says what the final seconds lost.
 *
 * @example
 * ```ts
 * const watch = watchLosses(counters, log, clock);
 * // ... warning: flows: 37 events lost (UDP flow map full: ...; raise max_udp_flows)
 * watch.stop();
 * ```
 *
 * @module
 */
import type { Counters, CounterValue } from "../counters.ts";
import type { Logger } from "../log.ts";
import type { Clock } from "./clock.ts";
import { REGISTRY, SECTIONS } from "./registry.ts";
import { type Loss, QUEUE_LIMIT } from "./stage.ts";

/** At most one warning per stage and kind this often. */
export const LOSS_WARN_EVERY_MS = 10_000;

/** How often the counters are checked. */
const CHECK_EVERY_MS = 1000;

/**
 * The runtime's and the outputs' loss counters: what the count is of, and why it happens (or
 * how to avoid it). Probes declare theirs in their def (`drops`, `losses`): see `lossKinds`.
 */
const PIPELINE_KINDS: { [counter: string]: { what: string; why?: string } } = {
  records_dropped: { what: "records dropped" }, // why: its reason, below
  encode_errors: { what: "records not encoded" },
  fields_dropped: {
    what: "fields left out",
    why: "line protocol cannot write them: integers past 64 bits, NaN, Infinity",
  },
  output_errors: { what: "records not written" },
  points_rejected: { what: "points rejected", why: "by the receiver" },
  logs_rejected: { what: "logs rejected", why: "by the receiver" },
  series_dropped: { what: "records dropped", why: "max_series reached" },
  replay_skipped_lines: {
    what: "recording lines skipped",
    why: "not a recorded record (--replay-skip-bad)",
  },
  spool_bad_batches: {
    what: "spooled batches skipped",
    why: "found cut short or damaged on disk (a crash or power loss while writing)",
  },
  spool_dropped_batches: {
    what: "spooled batches dropped",
    why: "spool full, oldest first; raise spool_max_size",
  },
};

/** Every stage type's declared losses (`drops`, then `losses`), in registry order. */
export function declaredLosses(): Loss[] {
  return SECTIONS.flatMap((section) =>
    [...REGISTRY[section].values()].flatMap((def) => [...def.drops ?? [], ...def.losses ?? []])
  );
}

let kinds: { [counter: string]: { what: string; why?: string } } | undefined;

/** Every loss counter by name: the pipeline's, then what the stage types declare. */
export function lossKinds(): { [counter: string]: { what: string; why?: string } } {
  if (kinds) return kinds;
  kinds = { ...PIPELINE_KINDS };
  for (const loss of declaredLosses()) kinds[loss.counter] ??= loss;
  return kinds;
}

/** Why `records_dropped{reason}` was counted. */
const REASONS: { [reason: string]: string } = {
  queue_full: `the stage could not keep up: its queue of ${QUEUE_LIMIT} records was full`,
  buffer_full: "memory buffer full while the receiver was slow or down (when_full)",
  rejected: "the receiver refused them",
  spool_error: "could not write the spool",
  shutdown: "not sent by shutdown",
  error: "the stage failed on them",
  no_metrics: "no field becomes a metric",
};

/** The warning line for a loss counter that grew by `delta` to `total`. */
export function lossMessage(c: CounterValue, delta: bigint, total: bigint): string | undefined {
  const kind = lossKinds()[c.name];
  if (!kind) return undefined;
  const reason = c.labels.reason;
  const why = c.name === "records_dropped" && reason !== undefined
    ? `${reason}: ${REASONS[reason] ?? "see the stage's doc"}`
    : kind.why;
  const stage = c.labels.stage ?? "collector";
  return `${stage}: ${delta} ${kind.what}${why ? ` (${why})` : ""}` +
    (total !== delta ? `; ${total} in all` : "");
}

/** Whether `name` counts lost data (so growing means a warning). */
export function isLossCounter(name: string): boolean {
  return name in lossKinds();
}

/** Checks `counters` every second on `clock`; `stop()` cancels and takes a last, unlimited look. */
export function watchLosses(
  counters: Counters,
  log: Logger,
  clock: Clock,
): { check(force?: boolean): void; stop(): void } {
  const state = new Map<string, { warned: bigint; atNs?: bigint }>();
  const everyNs = BigInt(LOSS_WARN_EVERY_MS) * 1_000_000n;
  const check = (force = false) => {
    const now = clock.now();
    for (const c of counters.snapshot()) {
      if (!isLossCounter(c.name)) continue;
      const key = JSON.stringify([c.name, c.labels]);
      let s = state.get(key);
      if (!s) state.set(key, s = { warned: 0n });
      // A kernel total starts again at 0 when its probe is rebuilt by a reload.
      if (c.value < s.warned) s.warned = c.value;
      if (c.value === s.warned) continue;
      if (!force && s.atNs !== undefined && now - s.atNs < everyNs) continue;
      log.warn(lossMessage(c, c.value - s.warned, c.value)!);
      s.warned = c.value;
      s.atNs = now;
    }
  };
  const timer = clock.every(CHECK_EVERY_MS, () => check());
  return {
    check,
    stop() {
      timer.cancel();
      check(true);
    },
  };
}

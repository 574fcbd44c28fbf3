/**
 * The stage contract. Every stage type (probe, transform, window, output) is one file that
 * exports a {@linkcode StageDef}, registered with one line in `src/pipeline/registry.ts`.
 * This is a contract other issues build on; change it in one commit with every user.
 *
 * Life of a stage:
 * 1. The loader reads its YAML mapping against `schema` (types, defaults, one-line docs);
 *    `custom` keys parse and compile themselves (regexes, CIDRs, conditions), so a file that
 *    passes `--check` cannot fail later for its own content. Then `validate` checks what spans
 *    several keys. Neither throws: problems come back as positioned ConfigErrors.
 * 2. The runtime calls `build(config, ctx)` and gets a {@linkcode Stage}.
 * 3. Records flow: an upstream stage calls `ctx.emit(record)`; the runtime hands the record to
 *    `push` of every stage that lists it in `inputs`. Probes have no inputs: they emit what the
 *    kernel gives them.
 * 4. `flush(reason)` hands on anything held (a window's partial aggregates, an output's buffer).
 *    At shutdown the runtime flushes and closes stages in graph order, so what a probe drains
 *    reaches the outputs before they close. `push` may be called again after a flush (a
 *    reload keeps a stage running), never after `close`.
 *
 * Backpressure: `push` may return a promise (an output waiting on a slow receiver). While it is
 * pending the runtime queues further records for that stage, up to `QUEUE_LIMIT`; beyond it,
 * records are dropped and counted as `records_dropped{stage,reason=queue_full}`. A stage whose
 * `push` returns nothing is called inline, with no queue. At shutdown, a stage whose push is
 * pending is flushed at once (the push may wait for room a down receiver never makes), then
 * again once the queue went in: its shutdown flush must settle every pending push and push
 * back no more, and the second one take (send, spool or count) what came after the first.
 *
 * Kernel code stays in probes: transforms, windows and outputs work on records alone, so they
 * run on replayed records without root.
 */
import type { BoundCounters, CounterValue } from "../counters.ts";
import type { Logger } from "../log.ts";
import type { Record } from "../record.ts";
import type { ConfigError } from "../errors.ts";
import type { At, Schema } from "./schema.ts";
import type { Clock } from "./clock.ts";

/** The four sections of a pipeline file, one kind of stage each. */
export type StageKind = "probe" | "transform" | "window" | "output";

/** Why a stage is asked to flush. */
export type FlushReason = "shutdown" | "reload";

/** A running stage. */
export interface Stage {
  /** Takes one record. May return a promise to push back (see the module doc). */
  push(record: Record): void | Promise<void>;
  /** Hands on whatever is held. */
  flush(reason: FlushReason): void | Promise<void>;
  /** Releases everything (timers, files, kernel objects). Called once, after a last flush. */
  close(): void | Promise<void>;
  /**
   * Optional: takes a changed config of the same type without a restart, keeping the stage's
   * state (a probe stays attached). Returns the step that applies it, which the runtime calls
   * only once the whole reload is sure to succeed; undefined when this change needs a rebuild.
   * Must not change anything itself.
   */
  // deno-lint-ignore no-explicit-any
  reconfigure?(config: any): (() => void) | undefined;
  /**
   * Optional: takes a record from a side input, the stage named by one of this stage's
   * `type: "stage"` keys (`key`, e.g. `answers_from`), which sent it with `ctx.emitSide`.
   * Called inline, never queued; side records are not counted as `records_in`.
   */
  side?(key: string, record: Record): void;
  /**
   * Optional: a reload built a new stage that reads this one's side records. What this stage
   * spares its side readers because they have seen it (the dns probe sends an answer again only
   * once its TTL ran out) must go out again.
   */
  sideReadersRebuilt?(): void;
}

/** A probe's stage may say what it attached where, for the start-up log line. */
export interface ProbeStage extends Stage {
  readonly attached?: readonly string[];
}

/** An inclusive range of ports, `low` <= `high`, both within 1..65535. */
export interface PortRange {
  readonly low: number;
  readonly high: number;
}

/**
 * What the stages after a probe let it do in the kernel on their behalf (src/pipeline/
 * pushdown.ts works it out from the graph; `--explain` shows it). A probe may ignore it; what
 * it does with it must give the records those stages would have made.
 */
export interface Pushdown {
  /**
   * The client's ephemeral port may be folded to `*` before summing: every path from the probe
   * goes through an `ephemeral_port` stage with this range ("kernel": this host's
   * ip_local_port_range), and no stage before it reads or writes ports or `direction`.
   */
  readonly clientPorts?: PortRange | "kernel";
  /**
   * Stages that read the probe's DNS answers as a side input (`dns_domain`) keep a name for its
   * TTL clamped to [minMs, maxMs] (the tightest over them): an answer seen again within that
   * time need not be sent again. Absent: no stage reads answers.
   */
  readonly answerTtl?: { readonly minMs: number; readonly maxMs: number };
}

/** Counters bound to one stage: labels `{stage: name}` plus any given here. */
export type StageCounters = BoundCounters;

/** What a stage gets from the runtime. */
export interface StageContext {
  /** The stage's name in the file (`transforms.<name>`). */
  readonly name: string;
  /** Value of the `host` tag that probes put on every record. */
  readonly host: string;
  /** The clock: real time when collecting, record time in replay and tests. */
  readonly clock: Clock;
  /** Probes: what they may do in the kernel for the stages after them ({} for others). */
  readonly pushdown: Pushdown;
  /**
   * Stages after probes: the longest span of time one record reaching this stage may sum (the
   * longest `intervalMs` of the probes upstream; 0 when every record is one event at its time).
   * A record stamped `t` stands for what happened in (t - span, t]: dns_domain looks a name up
   * over that span, so a connection counted at the end of a poll keeps the name it had.
   */
  readonly inputSpanMs: number;
  readonly counters: StageCounters;
  readonly log: Logger;
  /** Passes a record downstream (counted as `records_out`). */
  emit(record: Record): void;
  /**
   * Passes a record only to the stages that name this one as a side input (their `side`),
   * not to `inputs` readers: e.g. the DNS answers a `dns` probe hands to `dns_domain`.
   * Counted as `side_records_out`; with no such reader it costs nothing.
   */
  emitSide(record: Record): void;
  /** Every counter of the collector, all stages' (for outputs that expose them, e.g. /metrics). */
  counterSnapshot(): CounterValue[];
  /**
   * Asks the collector to stop as SIGINT would: drain, flush and close every stage, then exit
   * (`why` goes to the log line). For an output the user quits from (`top` reads `q`, and
   * Ctrl-C, which arrives as a byte in raw mode). A second call while stopping exits at once,
   * as a second SIGINT does. Returns at once; the stop happens after.
   */
  requestStop(why: string): void;
}

/** What `--explain` and permission derivation learn from a configured stage. */
export interface StageExplanation {
  /** Kernel programs and attach points (probes), or other facts worth showing. */
  details?: string[];
  /** Files the stage reads or writes, for the Deno permission flags. */
  reads?: string[];
  writes?: string[];
  /** `host:port`s the stage connects to (`--allow-net`). */
  net?: string[];
  /** Environment variables it reads (`--allow-env`), e.g. `NO_COLOR`. */
  env?: string[];
}

/** A stage type: `type: <name>` in one section of the file. */
// deno-lint-ignore no-explicit-any
export interface StageDef<C = any> {
  readonly type: string;
  readonly kind: StageKind;
  /** One sentence for `--explain` and the docs. */
  readonly describe: string;
  /** The keys this type accepts besides `type` and `inputs` (which every non-probe has). */
  readonly schema: Schema;
  /** Checks across keys, after the schema; returns every problem, never throws. */
  validate?(config: C, at: At): ConfigError[];
  /** Starts the stage. May throw (a probe that cannot load): the runtime reports it. */
  build(config: C, ctx: StageContext): Stage | Promise<Stage>;
  /** What it does with this config, for `--explain` and permissions. */
  explain?(config: C): StageExplanation;
  /**
   * Probes: the Linux capabilities it needs instead of root (`CAP_BPF`, `CAP_PERFMON`,
   * `CAP_NET_ADMIN`...), for `--doctor` and the deploy files (docs/capabilities.md).
   */
  readonly capabilities?: readonly string[];
  /** A config that validates: the compliance test and the docs use it. */
  readonly example: { [key: string]: unknown };
  /**
   * Transforms: the tags it reads or writes. A probe may fold ports in the kernel only through
   * stages that say they touch no port (see {@linkcode Pushdown}); absent: any tag.
   */
  tagsUsed?(config: C): readonly string[];
  /** Probes: the longest span of time one record sums (a poll), 0 or absent: one event. */
  intervalMs?(config: C): number;
  /** Transforms: the client ports it writes as `*` (what `ephemeral_port` does). */
  foldsClientPorts?(config: C): PortRange | "kernel";
  /** Side readers of DNS answers: how long they keep a name ({@linkcode Pushdown.answerTtl}). */
  answerTtl?(config: C): { minMs: number; maxMs: number };
  /**
   * Outputs that write to standard output: `shared` (lines, as `stdout` writes) or `exclusive`
   * (the whole terminal, as `top` draws it). The loader allows at most one `exclusive` output
   * in a pipeline, and no other output on standard output beside it.
   */
  readonly standardOutput?: "shared" | "exclusive";
}

/** The most records a stage's queue holds while its `push` is pending. */
export const QUEUE_LIMIT = 10_000;

/** Builds a folder's registry (its `mod.ts`) from its defs, keyed by `type`. */
export function registryOf(...defs: StageDef[]): ReadonlyMap<string, StageDef> {
  return new Map(defs.map((d) => [d.type, d]));
}

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
 * Kernel code stays in probes: transforms, windows and outputs work on records alone, and
 * what they need of the host comes through `ctx.hostFacts`, so they run on replayed records
 * without root and tag them as the recording host would.
 */
import type { BoundCounters, CounterValue } from "../counters.ts";
import type { Logger } from "../log.ts";
import type { Record } from "../record.ts";
import type { ConfigError } from "../errors.ts";
import type { At, Schema } from "./schema.ts";
import type { Clock } from "./clock.ts";
import type { HostFacts, PortRange } from "./host_facts.ts";
import type { SharedMaps } from "./shared_maps.ts";

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

export type { PortRange, SharedMaps };

/**
 * What the stages after a probe let it do in the kernel on their behalf (src/pipeline/
 * pushdown.ts works it out from the graph; `--explain` shows it). A probe may ignore it; what
 * it does with it must give the records those stages would have made.
 */
export interface Pushdown {
  /**
   * The client's ephemeral port may be folded to `*` before summing: every path from the probe
   * goes through an `ephemeral_port` stage with this range, and no stage before it reads or
   * writes ports or `direction`. "kernel" (a stage without `range`) is what the graph says; the
   * runtime hands the probe the range of `ctx.hostFacts` instead.
   */
  readonly clientPorts?: PortRange | "kernel";
  /**
   * Stages that read the probe's DNS answers as a side input (`dns_domain`) keep a name for its
   * TTL clamped to [minMs, maxMs] (the tightest over them): an answer seen again within that
   * time need not be sent again. Absent: no stage reads answers.
   */
  readonly answerTtl?: { readonly minMs: number; readonly maxMs: number };
}

/** {@linkcode Pushdown} as a probe gets it: the client ports' range is a range. */
export type ProbePushdown = Omit<Pushdown, "clientPorts"> & { readonly clientPorts?: PortRange };

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
  /**
   * What the stage may know of the host its records come from (port range, containers, pods):
   * this host's when collecting, the recording's in a replay (src/pipeline/host_facts.ts). A
   * stage never reads the host itself.
   */
  readonly hostFacts: HostFacts;
  /**
   * Probes: what they may do in the kernel for the stages after them ({} for others), with a
   * "kernel" port range already resolved through `hostFacts`.
   */
  readonly pushdown: ProbePushdown;
  /**
   * Probes: the kernel maps probes share ({@linkcode StageDef.provides}): a provider
   * registers its map's fd once loaded and withdraws it when it closes; a consumer reuses the
   * fd before it loads, or, when nobody provides it, keeps its own empty copy.
   */
  readonly sharedMaps: SharedMaps;
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
   * Whether a counter counts lost data (the probes' declared `drops` and `losses`, the
   * runtime's and outputs' losses): what the loss watch warns about, for a stage that shows
   * losses itself (`top`'s status line) without reading the registry.
   */
  isLossCounter(name: string): boolean;
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

/**
 * A counter that counts lost data, and what it means: the loss watch's warning reads
 * `<stage>: <n> <what> (<why>)`, e.g. `flows: 37 events lost (UDP flow map full: ...)`.
 * A counter name means one thing across the registry (a test holds them to it).
 */
export interface Loss {
  readonly counter: string;
  /** What is lost, counted: "events lost", "DNS queries dropped unanswered". */
  readonly what: string;
  /** Why it happens, or what to change so it does not. */
  readonly why?: string;
}

/** One line of `--doctor` that a probe adds (see {@linkcode StageDef.checks}). */
// deno-lint-ignore no-explicit-any
export interface HostCheck<C = any> {
  /** The line's name: `probes.<stage> <what>`, or for a `host` check `<what>` alone. */
  readonly what: string;
  /** About the host, not the stage's config: one line however many probes list it. */
  readonly host?: boolean;
  /** What was found (the `ok` line's detail); throws what is wrong (the `FAIL` line's). */
  run(config: C): string;
}

/**
 * A stage type: `type: <name>` in one section of the file.
 *
 * The def is the one place a type is described: the loader, `--explain`, `--doctor`, the loss
 * watch, the docs' tables (`deno task docs`), the kernel tests of the default pipeline, the
 * one-file builds and the deploy files' checks read it, so none of them lists stage types by
 * hand. A probe's part of it (the probe contract): `capabilities`, `bpfObject`, `hostPaths`,
 * `drops`, `losses`, `checks`, `intervalMs`, `provides`, `consumes`.
 */
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
   * `CAP_NET_ADMIN`...): the start-up check, `--doctor`, the deploy files and
   * docs/capabilities.md (generated, `deno task docs`) read them here.
   */
  readonly capabilities?: readonly string[];
  /**
   * Probes that run in the kernel: the name of their BPF object, `bpf/<name>.bpf.c` (and its
   * event contract `bpf/<name>.h`), built to `build/bpf/<name>.bpf.o` and built into the
   * one-file builds. `--doctor` checks it is there; the kernel tests and the embed step take
   * their list of objects from here. Absent: the probe loads nothing into the kernel.
   */
  readonly bpfObject?: string;
  /**
   * Probes that read the host's files: the settings that point them at the host's copy where
   * the host is mounted under /host (deploy/kubernetes/daemonset.yaml), e.g. bash's
   * `binary: /host/usr/bin/bash`. The ConfigMap's pipeline gets them, and the DaemonSet must
   * mount each (test/deploy_test.ts).
   */
  readonly hostPaths?: { readonly [key: string]: string };
  /**
   * Probes whose BPF programs count drops (`count_drop`, bpf/common.h): the counters their
   * `drops` map mirrors, by index (the map's key), with what each loses. Every probe's object has the reasons every probe shares,
   * `enum drop_reason` in bpf/common.h = `COMMON_DROPS` in src/probes/drops.ts; a probe with
   * kernel reasons of its own continues that enum from `DROP_REASONS` in its `.h`, lists
   * `[...COMMON_DROPS, its own]` here, sizes the map to that before load
   * (`sizeDrops` in drops.ts) and passes the list to `startReading`.
   */
  readonly drops?: readonly Loss[];
  /**
   * The stage's other counters that count lost data (decode errors, a full user-space table),
   * with what each loses: the loss watch (src/pipeline/loss_watch.ts) warns when one grows,
   * with this text. Counters of the pipeline itself (`records_dropped`...) are the runtime's.
   */
  readonly losses?: readonly Loss[];
  /**
   * Probes: what `--doctor` checks on this host besides what every kernel probe needs
   * (privileges, BTF, libbpf, its BPF object, a trial load): bash's readline, a cgroup v2
   * mount. One line each in the report.
   */
  readonly checks?: readonly HostCheck<C>[];
  /**
   * Probes: the kernel maps this probe owns and shares with others, by name: the one
   * sanctioned way for probes to cooperate (bash provides `commands`, pid -> the typed command,
   * bpf/commands.h). The runtime builds providers before consumers; the provider registers the
   * map in `ctx.sharedMaps` once loaded and withdraws it when it closes.
   */
  readonly provides?: readonly string[];
  /**
   * Probes: the shared kernel maps it reads, by name: before load it reuses the provider's
   * map (libbpf `bpf_map__reuse_fd`) from `ctx.sharedMaps`; with no provider in the pipeline
   * it keeps its own empty copy and what it would read is simply absent (netflow and dns
   * stamp `cmd_id` only with a bash probe). A provider rebuilt by a reload is not seen by
   * consumers built before it until they are rebuilt too.
   */
  readonly consumes?: readonly string[];
  /** A config that validates: the compliance test and the docs use it. */
  readonly example: { [key: string]: unknown };
  /**
   * Transforms: the tags it reads or writes. A probe may fold ports in the kernel only through
   * stages that say they touch no port (see {@linkcode Pushdown}); absent: any tag.
   */
  tagsUsed?(config: C): readonly string[];
  /**
   * Transforms that pass none of their input records on, only records of their own
   * (`command_activity`'s `bash_activity`): no record reaches the stages after them as it
   * came in, so a path through one ends there for the pushdown, as at a stage nobody reads
   * (when its `tagsUsed` leave ports alone).
   */
  readonly emitsOnlyOwnRecords?: boolean;
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

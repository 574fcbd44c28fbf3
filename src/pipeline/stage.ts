/**
 * The stage contracts: what a probe and an output are. Each kind lives in one file and is
 * registered with one line in its folder's `mod.ts`. Records flow in batches (a probe emits one
 * batch per ring-buffer drain). This is a contract; the pipeline-language issue extends it
 * with transforms and windows; change it in one commit with every user.
 */
import type { Counters } from "../counters.ts";
import type { Logger } from "../log.ts";
import type { Record } from "../record.ts";
import type { Options } from "./options.ts";

/** What every running stage may use. */
export interface StageContext {
  /** The stage's name in the pipeline file (`probes.<name>`, `outputs.<name>`). */
  name: string;
  /** Value of the `host` tag. */
  host: string;
  counters: Counters;
  log: Logger;
}

/** A probe's context: where its batches go. */
export interface ProbeContext extends StageContext {
  /** Hands on one batch; called synchronously from the probe's reader. */
  emit(records: Record[]): void;
}

/** A started probe. */
export interface RunningProbe {
  /** One line each: what attached where, for the start-up log. */
  readonly attached: readonly string[];
  /** Drains what is pending (emitting it), detaches and releases everything. Idempotent. */
  stop(): Promise<void>;
}

/** A kind of probe (`type: bash`). */
export interface ProbeDef<C> {
  readonly type: string;
  /** One sentence for help and `--explain`. */
  readonly describe: string;
  /** Reads and checks options; problems go to `options.error`, never thrown. */
  configure(options: Options): C;
  /** Loads and attaches; throws a UserError (or LibbpfError) when it cannot. */
  start(config: C, ctx: ProbeContext): Promise<RunningProbe>;
}

/** A started output. */
export interface RunningOutput {
  /** Writes one batch; called in order, never concurrently. */
  write(records: Record[]): Promise<void>;
  /** Flushes and releases. Idempotent. */
  close(): Promise<void>;
}

/** A kind of output (`type: stdout`). */
export interface OutputDef<C> {
  readonly type: string;
  readonly describe: string;
  configure(options: Options): C;
  start(config: C, ctx: StageContext): Promise<RunningOutput>;
}

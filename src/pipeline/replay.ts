/**
 * `--replay FILE`: runs a pipeline on recorded probe records instead of the kernel, as fast as
 * the stages allow. The clock follows record time (a ManualClock moved to each record's time
 * before it is injected), so windows close where they did live, and the same recording always
 * gives byte-identical output. A gap between records is jumped: periodic work in it runs once,
 * a window closes at its own boundary when it holds records, and empty ticks cost nothing.
 * Stages get the recording's host facts (its header and fact lines, read first; recording.ts),
 * so the output does not depend on the machine replaying. Needs no root and no FFI (but for a
 * recording made before recordings kept host facts: that one gets this host's, as it did).
 */
import type { Counters } from "../counters.ts";
import type { Record } from "../record.ts";
import { describeError, UserError, whyUnreadable } from "../errors.ts";
import type { Logger } from "../log.ts";
import { ManualClock } from "./clock.ts";
import type { Pipeline } from "./pipeline.ts";
import { formatSize } from "../units.ts";
import { type HostFact, type HostFacts, type PortRange, RecordedHostFacts } from "./host_facts.ts";
import {
  decodeLine,
  encodeHeader,
  encodeHostFact,
  encodeRecorded,
  MAX_LINE_BYTES,
  type Recorded,
  RecordingError,
} from "./recording.ts";
import { injectAtRecordTime, startPipeline } from "./run.ts";
import { writeAllSync } from "../outputs/write_all.ts";

/** What {@linkcode lines} yields for a line longer than it may be (the line is not kept). */
const TOO_LONG = Symbol("too long");

/**
 * The lines of a byte stream, one at a time, without loading it whole; a line longer than
 * `maxBytes` is read past and yielded as {@linkcode TOO_LONG}, so a 100 MB line costs no memory.
 */
async function* lines(
  stream: ReadableStream<Uint8Array>,
  maxBytes: number,
): AsyncGenerator<string | typeof TOO_LONG> {
  const decoder = new TextDecoder();
  let parts: Uint8Array[] = [];
  let size = 0;
  let tooLong = false;
  const line = () => {
    if (tooLong) return TOO_LONG;
    if (parts.length === 1) return decoder.decode(parts[0]);
    const whole = new Uint8Array(size);
    let at = 0;
    for (const p of parts) whole.set(p, at), at += p.length;
    return decoder.decode(whole);
  };
  for await (const chunk of stream) {
    for (let start = 0; start < chunk.length;) {
      const newline = chunk.indexOf(NEWLINE, start);
      const end = newline < 0 ? chunk.length : newline;
      if (!tooLong && size + end - start > maxBytes) [tooLong, parts, size] = [true, [], 0];
      if (!tooLong && end > start) parts.push(chunk.subarray(start, end)), size += end - start;
      if (newline < 0) break;
      yield line();
      [parts, size, tooLong] = [[], 0, false];
      start = newline + 1;
    }
  }
  if (size > 0 || tooLong) yield line();
}

const NEWLINE = 0x0a;

/** How a replay treats a line that is not a recorded record, and what stops it early. */
export interface ReplayOptions {
  /**
   * `--replay-skip-bad`: skip it, counted as `replay_skipped_lines` (the first one logged)
   * instead of stopping with exit code 2.
   */
  skipBad?: boolean;
  /**
   * Ends the replay early once aborted (`--duration`, SIGINT, SIGTERM): no further line is read,
   * a wait on an output that pushes back is given up, and the pipeline stops as a live run does
   * (its outputs' shutdown flush is bounded and counts what it could not send).
   */
  stop?: AbortSignal;
}

/** Opens a recording, or says in one line why it cannot. */
async function openRecording(file: string): Promise<Deno.FsFile> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(file);
  } catch (e) {
    throw cannotRead(file, whyUnreadable(file, e));
  }
  if ((await f.stat()).isDirectory) {
    f.close();
    throw cannotRead(file, "it is a directory; give the recording file in it");
  }
  return f;
}

function cannotRead(file: string, why: string): UserError {
  return new UserError(`cannot read recording ${file}: ${why}`, 2);
}

/**
 * The host facts `file` was recorded with: its header's, and every fact line's (a first pass;
 * bad lines are left to the replay, which reports them); undefined without a header.
 */
async function recordedHostFacts(file: string): Promise<HostFacts | undefined> {
  const f = await openRecording(file);
  const source = lines(f.readable, MAX_LINE_BYTES);
  try {
    let facts: RecordedHostFacts | undefined;
    for (let n = 1;; n++) {
      const next = await source.next();
      if (next.done) return facts;
      const line = next.value;
      // Only the first line can say whether there are facts, and only fact lines hold them.
      if (line === TOO_LONG || (n > 1 && !line.startsWith(`{"host_fact"`))) continue;
      let decoded;
      try {
        decoded = decodeLine(line, n);
      } catch {
        if (n === 1) return undefined;
        continue;
      }
      if (decoded.kind === "header") facts = new RecordedHostFacts(file, decoded.portRange);
      else if (!facts) return undefined;
      else if (decoded.kind === "fact") facts.add(decoded.fact);
    }
  } catch (e) {
    throw cannotRead(file, describeError(e));
  } finally {
    await source.return(undefined);
  }
}

/**
 * Replays `file` through `pipeline`; resolves with how many records were injected. The stages
 * get the recording's host facts; `env.hostFacts` those for a recording that has none.
 */
export async function replayFile(
  pipeline: Pipeline,
  file: string,
  env: {
    host: string;
    counters: Counters;
    log: Logger;
    hostFacts?: HostFacts;
    requestStop?: (why: string) => void;
  },
  options: ReplayOptions = {},
): Promise<number> {
  const hostFacts = await recordedHostFacts(file) ?? env.hostFacts;
  const f = await openRecording(file);
  const probes = new Set(pipeline.stages.filter((s) => s.kind === "probe").map((s) => s.name));
  const unknown = new Map<string, number>();
  let skipped = 0;
  let injected = 0;
  const decoded = (async function* () {
    const source = lines(f.readable, MAX_LINE_BYTES);
    const bad = (e: RecordingError) => {
      if (!options.skipBad) throw new UserError(`${file}: ${e.message}`, 2);
      // The first says why; the loss watch reports the count.
      if (skipped++ === 0) env.log.warn(`${file}: skipping ${e.message} (and any other bad line)`);
      env.counters.add("replay_skipped_lines");
    };
    try {
      for (let n = 1;; n++) {
        let next;
        try {
          next = await source.next();
        } catch (e) {
          throw cannotRead(file, `at line ${n}: ${describeError(e)}`);
        }
        if (next.done) return;
        const line = next.value;
        if (line === TOO_LONG) {
          bad(new RecordingError(n, `longer than ${formatSize(MAX_LINE_BYTES)}: not a record`));
          continue;
        }
        if (!line.trim()) continue;
        let decoded;
        try {
          decoded = decodeLine(line, n);
        } catch (e) {
          if (!(e instanceof RecordingError)) throw e;
          bad(e);
          continue;
        }
        // The header and host facts were read before the replay started.
        if (decoded.kind === "record") yield decoded.recorded;
      }
    } finally {
      await source.return(undefined); // closes the file, however the replay ends
    }
  })();

  try {
    // The clock starts at the first record, so windows align as they did when it was recorded.
    const first = await decoded.next();
    if (first.done) return 0;
    // A gap in the recording (a record at 0, the next in 2026) is jumped, not stepped through.
    const clock = new ManualClock(first.value.record.time, {
      jump: { moved: () => recordsMoved(env.counters) },
    });
    const running = await startPipeline(pipeline, { ...env, clock, hostFacts }, {
      probes: "injected",
    });
    // Resolves on a stop: a `block` output whose receiver refuses would hold a replay for ever.
    const stopped = new Promise<void>((resolve) => {
      if (options.stop?.aborted) resolve();
      options.stop?.addEventListener("abort", () => resolve(), { once: true });
    });
    const inject = async ({ probe, record, side }: Recorded) => {
      if (!probes.has(probe)) {
        unknown.set(probe, (unknown.get(probe) ?? 0) + 1);
        return;
      }
      const injecting = injectAtRecordTime(running, clock, probe, record, side);
      injected++;
      await Promise.race([injecting, stopped]);
    };
    try {
      await inject(first.value);
      for await (const r of decoded) {
        if (options.stop?.aborted) break;
        await inject(r);
      }
    } finally {
      await running.stop();
    }
  } finally {
    await decoded.return(undefined);
  }
  for (const [probe, n] of unknown) {
    env.log.warn(
      `${file}: skipped ${n} records of probe "${probe}", which this pipeline does not have`,
    );
  }
  return injected;
}

/** How many records every stage has emitted: grows whenever records move. */
function recordsMoved(counters: Counters): bigint {
  let n = 0n;
  for (const c of counters.snapshot()) if (c.name === "records_out") n += c.value;
  return n;
}

/**
 * `--record FILE`: writes the host's facts (the header; then each container fact when first
 * seen, through {@linkcode Recorder.addFact}) and every probe record to FILE, in batches.
 */
export class Recorder {
  readonly #file: Deno.FsFile;
  readonly #path: string;
  readonly #timer: ReturnType<typeof setInterval>;
  #pending: string[] = [];
  #encoder = new TextEncoder();

  /** `portRange`: the host's, for the header (recording.ts). */
  constructor(path: string, portRange: PortRange) {
    this.#path = path;
    try {
      this.#file = Deno.openSync(path, { write: true, create: true, truncate: true });
    } catch (e) {
      const why = e instanceof Deno.errors.NotCapable
        ? `not allowed by this run's --allow-write; add --allow-write=${path}`
        : whyUnreadable(path, e);
      throw new UserError(`cannot write recording ${path}: ${why}`, 2);
    }
    this.#pending.push(encodeHeader(portRange));
    // Batches of lines, written from a timer: one syscall per batch, not per record.
    this.#timer = setInterval(() => this.flush(), 200);
  }

  /** Queues one probe record. */
  add(probe: string, record: Record, side = false): void {
    this.#pending.push(encodeRecorded(probe, record, side));
  }

  /** Queues one host fact (see `recordingHostFacts` in host_facts.ts). */
  addFact(fact: HostFact): void {
    this.#pending.push(encodeHostFact(fact));
  }

  /** Writes what is queued. */
  flush(): void {
    if (this.#pending.length === 0) return;
    const bytes = this.#encoder.encode(this.#pending.join("\n") + "\n");
    this.#pending = [];
    writeAllSync(this.#file, bytes);
  }

  /** Writes the rest and closes the file. */
  close(): void {
    clearInterval(this.#timer);
    this.flush();
    this.#file.close();
  }

  get path(): string {
    return this.#path;
  }
}

/**
 * `--replay FILE`: runs a pipeline on recorded probe records instead of the kernel, as fast as
 * the stages allow. The clock follows record time (a ManualClock moved to each record's time
 * before it is injected), so windows close where they did live, and the same recording always
 * gives byte-identical output. A gap between records is jumped: periodic work in it runs once,
 * a window closes at its own boundary when it holds records, and empty ticks cost nothing.
 * Needs no root and no FFI.
 */
import type { Counters } from "../counters.ts";
import type { Record } from "../record.ts";
import { describeError, UserError, whyUnreadable } from "../errors.ts";
import type { Logger } from "../log.ts";
import { ManualClock } from "./clock.ts";
import type { Pipeline } from "./load.ts";
import { formatSize } from "../units.ts";
import {
  decodeRecorded,
  encodeRecorded,
  MAX_LINE_BYTES,
  type Recorded,
  RecordingError,
} from "./recording.ts";
import { injectAtRecordTime, startPipeline } from "./run.ts";

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

/** Replays `file` through `pipeline`; resolves with how many records were injected. */
export async function replayFile(
  pipeline: Pipeline,
  file: string,
  env: { host: string; counters: Counters; log: Logger; requestStop?: (why: string) => void },
  options: ReplayOptions = {},
): Promise<number> {
  const cannotRead = (why: string) => new UserError(`cannot read recording ${file}: ${why}`, 2);
  let f: Deno.FsFile;
  try {
    f = await Deno.open(file);
  } catch (e) {
    throw cannotRead(whyUnreadable(file, e));
  }
  if ((await f.stat()).isDirectory) {
    f.close();
    throw cannotRead("it is a directory; give the recording file in it");
  }
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
          throw cannotRead(`at line ${n}: ${describeError(e)}`);
        }
        if (next.done) return;
        const line = next.value;
        if (line === TOO_LONG) {
          bad(new RecordingError(n, `longer than ${formatSize(MAX_LINE_BYTES)}: not a record`));
          continue;
        }
        if (!line.trim()) continue;
        let recorded;
        try {
          recorded = decodeRecorded(line, n);
        } catch (e) {
          if (!(e instanceof RecordingError)) throw e;
          bad(e);
          continue;
        }
        yield recorded;
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
    const running = await startPipeline(pipeline, { ...env, clock }, { probes: "injected" });
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

/** `--record FILE`: appends every probe record to FILE, written in batches. */
export class Recorder {
  readonly #file: Deno.FsFile;
  readonly #path: string;
  readonly #timer: ReturnType<typeof setInterval>;
  #pending: string[] = [];
  #encoder = new TextEncoder();

  constructor(path: string) {
    this.#path = path;
    try {
      this.#file = Deno.openSync(path, { write: true, create: true, truncate: true });
    } catch (e) {
      const why = e instanceof Deno.errors.NotCapable
        ? `not allowed by this run's --allow-write; add --allow-write=${path}`
        : whyUnreadable(path, e);
      throw new UserError(`cannot write recording ${path}: ${why}`, 2);
    }
    // Batches of lines, written from a timer: one syscall per batch, not per record.
    this.#timer = setInterval(() => this.flush(), 200);
  }

  /** Queues one probe record. */
  add(probe: string, record: Record, side = false): void {
    this.#pending.push(encodeRecorded(probe, record, side));
  }

  /** Writes what is queued. */
  flush(): void {
    if (this.#pending.length === 0) return;
    const bytes = this.#encoder.encode(this.#pending.join("\n") + "\n");
    this.#pending = [];
    for (let off = 0; off < bytes.length;) off += this.#file.writeSync(bytes.subarray(off));
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

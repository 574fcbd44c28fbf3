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
import { UserError, whyUnreadable } from "../errors.ts";
import type { Logger } from "../log.ts";
import { ManualClock } from "./clock.ts";
import type { Pipeline } from "./load.ts";
import { decodeRecorded, encodeRecorded, type Recorded, RecordingError } from "./recording.ts";
import { injectAtRecordTime, startPipeline } from "./run.ts";

/** The lines of a text stream, one at a time, without loading it whole. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    yield* parts;
  }
  if (rest) yield rest;
}

/** Replays `file` through `pipeline`; resolves with how many records were injected. */
export async function replayFile(
  pipeline: Pipeline,
  file: string,
  env: { host: string; counters: Counters; log: Logger },
): Promise<number> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(file);
  } catch (e) {
    throw new UserError(`cannot read recording ${file}: ${whyUnreadable(file, e)}`, 2);
  }
  const probes = new Set(pipeline.stages.filter((s) => s.kind === "probe").map((s) => s.name));
  const unknown = new Map<string, number>();
  const decoded = (async function* () {
    let n = 0;
    for await (const line of lines(f.readable)) {
      n++;
      if (!line.trim()) continue;
      try {
        yield decodeRecorded(line, n);
      } catch (e) {
        if (e instanceof RecordingError) throw new UserError(`${file}: ${e.message}`, 2);
        throw e;
      }
    }
  })();

  // The clock starts at the first record, so windows align as they did when it was recorded.
  const first = await decoded.next();
  if (first.done) return 0;
  // A gap in the recording (a record at 0, the next in 2026) is jumped, not stepped through.
  const clock = new ManualClock(first.value.record.time, {
    jump: { moved: () => recordsMoved(env.counters) },
  });
  const running = await startPipeline(pipeline, { ...env, clock }, { probes: "injected" });
  let injected = 0;
  const inject = async ({ probe, record, side }: Recorded) => {
    if (!probes.has(probe)) {
      unknown.set(probe, (unknown.get(probe) ?? 0) + 1);
      return;
    }
    await injectAtRecordTime(running, clock, probe, record, side);
    injected++;
  };
  try {
    await inject(first.value);
    for await (const r of decoded) await inject(r);
  } finally {
    await running.stop();
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

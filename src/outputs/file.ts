/**
 * The `file` output: one encoded record per line, appended to (or replacing) a file.
 *
 * ```yaml
 * outputs:
 *   archive:
 *     type: file
 *     inputs: [bash]
 *     path: /var/log/collector/bash.jsonl
 *     format: json
 * ```
 *
 * - Records are encoded into an in-memory buffer and written with one `write` per buffer: when
 *   it holds `buffer` bytes, at every `flush_every` tick, on `flush`, and on `close`. One write
 *   is in flight at a time, so lines land in push order, each once.
 * - Backpressure: `push` returns a promise only when the buffer is full and a write is still
 *   in flight; it resolves when that write ends (and the next one, of the full buffer, starts).
 * - The directory must exist: `build` throws, naming the path, rather than creating it. A typo
 *   would otherwise silently make a new tree, and `--allow-write=<path>` (what `explain` asks
 *   for) does not grant creating its parent folders anyway.
 * - A failed write is logged (path and OS error), its records are counted as `output_errors`
 *   and dropped, and later writes go on; it may leave a partial line. Successful writes count
 *   `records_written`. A record line protocol cannot express (no field left) is counted as
 *   `encode_errors` and logged once per stage.
 *
 * @module
 */
import { dirname } from "node:path";
import { encoderFor, type Format } from "../encode/mod.ts";
import { UserError } from "../errors.ts";
import type { Stage, StageContext, StageDef } from "../pipeline/stage.ts";
import type { Record } from "../record.ts";
import { writeAll } from "./write_all.ts";

/** Options of a `file` output, as the schema reads them. */
export interface FileConfig {
  path: string;
  format: Format;
  append: boolean;
  /** Milliseconds. */
  flush_every: number;
  /** Bytes. */
  buffer: number;
}

const NEWLINE = 0x0a;
// The buffer starts at most this big and grows only for lines that need it.
const INITIAL_CAPACITY = 64 * 1024;

/** Opens `path` for writing, or throws a UserError that names it and says what to do. */
async function openFile(path: string, append: boolean): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, { write: true, create: true, append, truncate: !append });
  } catch (e) {
    let why = e instanceof Error ? e.message : String(e);
    if (e instanceof Deno.errors.NotFound) {
      why = `directory ${dirname(path)} does not exist (create it first: ` +
        "the file output does not create directories)";
    } else if (e instanceof Deno.errors.NotCapable) {
      why = `not allowed by this run's --allow-write; add ${path} to it`;
    }
    throw new UserError(`cannot open ${path} for writing: ${why}`, 1, { cause: e });
  }
}

class FileStage implements Stage {
  readonly #ctx: StageContext;
  readonly #path: string;
  readonly #file: Deno.FsFile;
  readonly #encode: (r: Record) => string;
  readonly #encoder = new TextEncoder();
  readonly #limit: number;
  readonly #initialCapacity: number;
  readonly #timer: { cancel(): void };
  #buf: Uint8Array;
  #len = 0;
  /** Records encoded into `#buf`. */
  #records = 0;
  /** The write in flight; it resolves (never rejects) once the next write, if any, started. */
  #running: Promise<void> | undefined;
  /** Write the buffer again as soon as the running write ends. */
  #again = false;
  #warnedEncode = false;
  #closed = false;

  constructor(file: Deno.FsFile, config: FileConfig, ctx: StageContext) {
    this.#ctx = ctx;
    this.#path = config.path;
    this.#file = file;
    this.#encode = encoderFor(config.format);
    this.#limit = config.buffer;
    this.#initialCapacity = Math.min(config.buffer, INITIAL_CAPACITY) + 1024;
    this.#buf = new Uint8Array(this.#initialCapacity);
    this.#timer = ctx.clock.every(config.flush_every, () => this.#kick());
  }

  push(record: Record): void | Promise<void> {
    if (this.#closed) throw new Error(`${this.#ctx.name}: push after close`);
    let line: string;
    try {
      line = this.#encode(record);
    } catch (e) {
      this.#ctx.counters.add("encode_errors");
      if (!this.#warnedEncode) {
        this.#warnedEncode = true;
        this.#ctx.log.warn(
          `${this.#ctx.name}: ${(e as Error).message} (further ones only counted as encode_errors)`,
        );
      }
      return;
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit, so one encodeInto always fits.
    const need = this.#len + line.length * 3 + 1;
    if (need > this.#buf.length) {
      const grown = new Uint8Array(Math.max(need, this.#buf.length * 2));
      grown.set(this.#buf.subarray(0, this.#len));
      this.#buf = grown;
    }
    this.#len += this.#encoder.encodeInto(line, this.#buf.subarray(this.#len)).written;
    this.#buf[this.#len++] = NEWLINE;
    this.#records++;
    if (this.#len < this.#limit) return;
    const inFlight = this.#running;
    this.#kick();
    return inFlight;
  }

  async flush(): Promise<void> {
    this.#kick();
    while (this.#running) await this.#running;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#timer.cancel();
    await this.flush();
    this.#file.close();
  }

  /** Starts writing the buffer, or marks it to be written when the running write ends. */
  #kick(): void {
    if (this.#running) {
      this.#again = true;
      return;
    }
    if (this.#len === 0) return;
    const bytes = this.#buf.subarray(0, this.#len);
    const records = this.#records;
    this.#buf = new Uint8Array(this.#initialCapacity);
    this.#len = 0;
    this.#records = 0;
    this.#running = this.#write(bytes, records).then(() => {
      this.#running = undefined;
      if (this.#again) {
        this.#again = false;
        this.#kick();
      }
    });
  }

  /** Writes one buffer; never rejects. */
  async #write(bytes: Uint8Array, records: number): Promise<void> {
    try {
      await writeAll(this.#file, bytes);
      this.#ctx.counters.add("records_written", records);
    } catch (e) {
      this.#ctx.counters.add("output_errors", records);
      this.#ctx.log.warn(
        `${this.#ctx.name}: cannot write ${records} records to ${this.#path}: ` +
          (e instanceof Error ? e.message : String(e)),
      );
    }
  }
}

/** The `file` output type; see the module doc. */
export const fileOutput: StageDef<FileConfig> = {
  type: "file",
  kind: "output",
  describe: "Writes each record as one line (JSON or InfluxDB line protocol) to a file.",
  schema: {
    path: {
      type: "string",
      required: true,
      doc: "the file to write; its directory must exist",
    },
    format: {
      type: "string",
      oneOf: ["json", "line_protocol"],
      default: "json",
      doc: "json (one object per line) or line_protocol (InfluxDB)",
    },
    append: {
      type: "boolean",
      default: true,
      doc: "add to the file; false empties it when the stage starts",
    },
    flush_every: {
      type: "duration",
      default: "1s",
      doc: "buffered records are written at least this often",
    },
    buffer: {
      type: "size",
      default: "64KiB",
      doc: "buffered records are written as soon as they take this much",
    },
  },
  async build(config: FileConfig, ctx: StageContext): Promise<Stage> {
    return new FileStage(await openFile(config.path, config.append), config, ctx);
  },
  explain(config: FileConfig) {
    return {
      details: [
        `writes ${config.format} lines to ${config.path} (${
          config.append ? "append" : "truncate"
        })`,
      ],
      writes: [config.path],
    };
  },
  example: { path: "/var/log/collector/bash.jsonl", format: "json" },
};

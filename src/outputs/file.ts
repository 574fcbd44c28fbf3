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
 *     max_size: 100MiB   # optional: rotate to bash.jsonl.1 ... bash.jsonl.5
 *     keep: 5
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
 * - Rotation (only with `max_size`), as logrotate and Vector's file sink do: before a write
 *   would make the file pass `max_size`, `path.<keep-1>` … `path.1` move up one (the old
 *   `path.<keep>` is replaced, so the oldest goes), `path` becomes `path.1`, and a fresh `path`
 *   is opened. It happens inside the one write in flight and only between lines, so nothing is
 *   split, lost or written twice, and order holds from `path.<keep>` to `path`. A line longer
 *   than `max_size` goes alone into a file. The size counted is the file's at open plus what
 *   the stage wrote (others appending are not seen). Each rotation counts `files_rotated`.
 *   Files beyond `path.<keep>` (from a larger `keep` before) are left alone: `explain` grants
 *   nothing past it. Deno's rename needs read access to each file it moves, so `explain` asks
 *   for `--allow-read` on `path` … `path.<keep-1>` as well. If a rotation fails (one warning
 *   until one succeeds) the stage writes on into the file it has, past `max_size`, and tries
 *   again at the next write. `path` must be a regular file then: rotating `/dev/stdout` would
 *   rename it.
 *
 * @module
 */
import { dirname } from "node:path";
import { encoderFor, type Format } from "../encode/mod.ts";
import { UserError } from "../errors.ts";
import type { Stage, StageContext, StageDef } from "../pipeline/stage.ts";
import type { Record } from "../record.ts";
import { formatSize } from "../units.ts";
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
  /** Bytes; undefined: no rotation. */
  max_size?: number;
  /** Rotated files kept (`path.1` … `path.<keep>`). */
  keep: number;
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

/** Renames `from` to `to` (replacing it); a missing `from` is not an error. */
async function renameIfExists(from: string, to: string): Promise<void> {
  try {
    await Deno.rename(from, to);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

class FileStage implements Stage {
  readonly #ctx: StageContext;
  readonly #path: string;
  #file: Deno.FsFile;
  /** Bytes in `#file`: its size at open plus what this stage wrote to it. */
  #size: number;
  /** What `writeAll` writes through, so `#size` counts even the bytes of a failed write. */
  readonly #sink = {
    write: async (p: Uint8Array): Promise<number> => {
      const n = await this.#file.write(p);
      this.#size += n;
      return n;
    },
  };
  readonly #maxSize: number | undefined;
  readonly #keep: number;
  #warnedRotate = false;
  readonly #encode: (r: Record) => string;
  readonly #encoder = new TextEncoder();
  readonly #limit: number;
  readonly #initialCapacity: number;
  readonly #timer: { cancel(): void };
  #buf: Uint8Array;
  #len = 0;
  /** Where each record encoded into `#buf` ends (after its newline): the rotation points. */
  #ends: number[] = [];
  /** The write in flight; it resolves (never rejects) once the next write, if any, started. */
  #running: Promise<void> | undefined;
  /** Write the buffer again as soon as the running write ends. */
  #again = false;
  #warnedEncode = false;
  #closed = false;

  constructor(file: Deno.FsFile, size: number, config: FileConfig, ctx: StageContext) {
    this.#ctx = ctx;
    this.#path = config.path;
    this.#file = file;
    this.#size = size;
    this.#maxSize = config.max_size;
    this.#keep = config.keep;
    this.#encode = encoderFor(config.format, ctx.counters);
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
    this.#ends.push(this.#len);
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
    const ends = this.#ends;
    this.#buf = new Uint8Array(this.#initialCapacity);
    this.#len = 0;
    this.#ends = [];
    this.#running = this.#write(bytes, ends).then(() => {
      this.#running = undefined;
      if (this.#again) {
        this.#again = false;
        this.#kick();
      }
    });
  }

  /**
   * Writes one buffer (its records end at `ends`), rotating between records when the next
   * would pass `max_size`; never rejects.
   */
  async #write(bytes: Uint8Array, ends: readonly number[]): Promise<void> {
    let start = 0, first = 0;
    while (first < ends.length) {
      // Records [first, last) go into the current file in one write.
      let last = ends.length;
      if (this.#maxSize !== undefined) {
        last = first;
        while (last < ends.length && this.#size + ends[last] - start <= this.#maxSize) last++;
        if (last === first) {
          if (this.#size > 0 && await this.#rotate()) continue;
          // An empty file takes one line however long; a failed rotation writes on past max_size.
          last = this.#size > 0 ? ends.length : first + 1;
        }
      }
      const end = ends[last - 1];
      await this.#writeRecords(bytes.subarray(start, end), last - first);
      [start, first] = [end, last];
    }
  }

  /** Writes `records` whole lines; never rejects. */
  async #writeRecords(bytes: Uint8Array, records: number): Promise<void> {
    try {
      await writeAll(this.#sink, bytes);
      this.#ctx.counters.add("records_written", records);
    } catch (e) {
      this.#ctx.counters.add("output_errors", records);
      this.#ctx.log.warn(
        `${this.#ctx.name}: cannot write ${records} records to ${this.#path}: ` +
          (e instanceof Error ? e.message : String(e)),
      );
    }
  }

  /**
   * Shifts `path.<i>` to `path.<i+1>` (the last replaces `path.<keep>`), `path` to `path.1`, and
   * opens a fresh `path`. The open file is renamed, not closed first, so until the fresh one
   * is open the stage still has somewhere to write. Returns false (warning once) on failure.
   */
  async #rotate(): Promise<boolean> {
    let fresh: Deno.FsFile;
    try {
      for (let i = this.#keep - 1; i >= 1; i--) {
        await renameIfExists(`${this.#path}.${i}`, `${this.#path}.${i + 1}`);
      }
      await renameIfExists(this.#path, `${this.#path}.1`);
      fresh = await Deno.open(this.#path, { write: true, create: true, append: true });
    } catch (e) {
      if (!this.#warnedRotate) {
        this.#warnedRotate = true;
        this.#ctx.log.warn(
          `${this.#ctx.name}: cannot rotate ${this.#path}: ` +
            `${e instanceof Error ? e.message : String(e)}; writing on past max_size ` +
            "(further failures not logged until a rotation succeeds)",
        );
      }
      return false;
    }
    this.#warnedRotate = false;
    this.#file.close();
    this.#file = fresh;
    this.#size = 0;
    this.#ctx.counters.add("files_rotated");
    return true;
  }
}

/** `path.1` … `path.<keep>`, newest first. */
function rotatedPaths(config: FileConfig): string[] {
  return Array.from({ length: config.keep }, (_, i) => `${config.path}.${i + 1}`);
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
    max_size: {
      type: "size",
      doc: "rotate before the file would pass this size (unset: never rotate)",
    },
    keep: {
      type: "integer",
      default: 5,
      min: 1,
      max: 100, // each rotation renames them all, and --explain grants each by name
      doc: "rotated files kept with max_size: path.1 (newest) to path.<keep>",
    },
  },
  validate(config: FileConfig, at) {
    return config.max_size === 0
      ? [at.child("max_size").problem("expected a size of at least 1B, got 0")]
      : [];
  },
  async build(config: FileConfig, ctx: StageContext): Promise<Stage> {
    const file = await openFile(config.path, config.append);
    // Seeking, unlike stat, needs no --allow-read; the size only matters when rotating.
    let size = 0;
    try {
      if (config.max_size !== undefined) size = await file.seek(0, Deno.SeekMode.End);
    } catch (e) {
      file.close();
      // A pipe or terminal cannot be sized, nor rotated.
      throw new UserError(
        `cannot rotate ${config.path} (max_size): ${(e as Error).message}; ` +
          "rotation needs a regular file",
        1,
        { cause: e },
      );
    }
    return new FileStage(file, size, config, ctx);
  },
  explain(config: FileConfig) {
    const mode = config.append ? "append" : "truncate";
    if (config.max_size === undefined) {
      return {
        details: [`writes ${config.format} lines to ${config.path} (${mode})`],
        writes: [config.path],
      };
    }
    const rotated = rotatedPaths(config);
    const range = rotated.length === 1 ? rotated[0] : `${rotated[0]} to ${rotated.at(-1)}`;
    return {
      details: [
        `writes ${config.format} lines to ${config.path} (${mode})`,
        `rotates before ${formatSize(config.max_size)} into ${range}, deleting older ones`,
      ],
      // Deno's rename needs read access to what it moves: path and all but the oldest.
      reads: [config.path, ...rotated.slice(0, -1)],
      writes: [config.path, ...rotated],
    };
  },
  example: { path: "/var/log/collector/bash.jsonl", format: "json" },
};

/**
 * A bounded disk spool of encoded batches, kept in order across restarts, for the `http` output
 * while its receiver is unreachable.
 *
 * - **One file per batch**, named by a zero-padded sequence number (`000000000042.lp`), so the
 *   directory listing alone gives the order after a restart; numbering goes on after the highest
 *   number found. A body is opaque bytes (the caller's encoding); the spool never parses it.
 * - **Durable, atomic writes:** a batch is written to `<name>.tmp`, fsynced, renamed, and the
 *   directory fsynced, so neither a crashed process nor a power loss leaves a half batch under a
 *   batch name, and a batch `append` returned from survives both. `open` deletes leftover `.tmp`
 *   files (only ones named like ours) and ignores, without deleting, any other file there.
 * - **Checked reads:** each file starts with a header line holding the body's length and CRC-32
 *   (`ebpf-spool-1 0000000042 1a2b3c4d`). A batch found empty, cut short or damaged (a disk
 *   that lost it, a file cut by hand) is skipped by `peek`, deleted and reported to `onBadBatch`
 *   instead of being sent or crashing the caller. A file without the header (spooled before
 *   it existed) is taken as it is.
 * - **Bounded:** `maxBytes` counts the files' bytes, headers included (not file-system blocks).
 *   An append that would pass it first deletes the oldest batches and reports how many; a batch
 *   larger than `maxBytes` alone is refused and reported the same way. A spool found over a
 *   lowered bound at `open` is trimmed by the next append, which then reports those drops.
 * - **At-least-once:** the caller removes a batch only after the receiver accepted it, so a crash
 *   between acceptance and `remove` sends that batch again after the restart (a duplicate).
 *   The batch being sent may meanwhile be dropped by an append; its `remove` is then a no-op.
 * - Calls are synchronous (the output's send loop calls them between requests), and the count
 *   and size of the batches are kept in memory, read from the directory once at `open`. One
 *   `Spool` (one process) per directory: two would reuse each other's numbers.
 *
 * @example
 * ```ts
 * const spool = Spool.open("/var/spool/ebpf-collector/influx", { maxBytes: 256 * 1024 * 1024 });
 * spool.append(new TextEncoder().encode("cpu usage=1 1\n"));
 * const next = spool.peek();
 * if (next && (await send(next.body))) spool.remove(next.id);
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { writeAllSync } from "./write_all.ts";

/** How a spool is bounded, and who hears of a batch it had to skip. */
export interface SpoolOptions {
  /** The most bytes its files may hold, headers included. */
  maxBytes: number;
  /** Told of each batch `peek` skipped (empty, cut short or damaged) and deleted. */
  onBadBatch?: (file: string, why: string) => void;
}

/** What the spool holds: its batches and their files' bytes. */
export interface SpoolStats {
  batches: number;
  bytes: number;
}

const DIGITS = 12;
const BATCH_NAME = /^(\d{12,})\.lp$/;
const TMP_NAME = /^\d{12,}\.lp\.tmp$/;

/** One spooled batch, as the spool remembers it without reading the file. */
interface Entry {
  id: number;
  size: number;
}

/** Starts every batch file; then the body's length (10 digits) and CRC-32 (8 hex digits). */
const MAGIC = "ebpf-spool-1 ";
/** `ebpf-spool-1 0000000042 1a2b3c4d\n` */
export const HEADER_BYTES = MAGIC.length + 10 + 1 + 8 + 1;

/** The header line of `body`. */
function header(body: Uint8Array): Uint8Array {
  const length = String(body.length).padStart(10, "0");
  const crc = crc32(body).toString(16).padStart(8, "0");
  return new TextEncoder().encode(`${MAGIC}${length} ${crc}\n`);
}

/** A batch file's body, or why it cannot be one. */
function bodyOf(file: Uint8Array): Uint8Array | string {
  if (file.length === 0) return "empty";
  const magic = new TextEncoder().encode(MAGIC);
  const start = file.subarray(0, magic.length);
  if (!start.every((b, i) => b === magic[i])) return file; // spooled before the header existed
  if (file.length < HEADER_BYTES) return `cut short in its header (${file.length} bytes)`;
  const [length, crc] = new TextDecoder().decode(file.subarray(magic.length, HEADER_BYTES - 1))
    .split(" ");
  const body = file.subarray(HEADER_BYTES);
  if (!/^\d{10}$/.test(length) || !/^[0-9a-f]{8}$/.test(crc)) return "damaged header";
  if (body.length !== Number(length)) {
    return `cut short (${body.length} of ${Number(length)} bytes)`;
  }
  if (crc32(body) !== parseInt(crc, 16)) return "damaged (its checksum does not match)";
  return body;
}

const fileName = (id: number) => `${String(id).padStart(DIGITS, "0")}.lp`;
const reason = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Deletes a half-written `.tmp`, if it is there; `open` deletes it otherwise. */
function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // already gone, or left for the next open
  }
}

/** A directory of batches, oldest first; see the module doc. */
export class Spool {
  /** The directory (for --explain / permissions). */
  readonly dir: string;
  readonly #maxBytes: number;
  readonly #onBadBatch: (file: string, why: string) => void;
  /** Batches oldest first; `#entries[#head]` is the oldest (shifting 10,000 times is slow). */
  #entries: Entry[];
  #head = 0;
  #bytes: number;
  #nextId: number;

  private constructor(
    dir: string,
    options: SpoolOptions,
    entries: Entry[],
    nextId: number,
  ) {
    this.dir = dir;
    this.#maxBytes = options.maxBytes;
    this.#onBadBatch = options.onBadBatch ?? (() => {});
    this.#entries = entries;
    this.#bytes = entries.reduce((sum, e) => sum + e.size, 0);
    this.#nextId = nextId;
  }

  /**
   * Opens (creating) `dir`; finds batches a previous run left (restart), deletes partial writes.
   * Throws a clear Error naming the dir when it cannot be created or read.
   */
  static open(dir: string, options: SpoolOptions): Spool {
    const { maxBytes } = options;
    if (!(Number.isSafeInteger(maxBytes) && maxBytes > 0)) {
      throw new RangeError(`spool ${dir}: maxBytes must be a positive integer, got ${maxBytes}`);
    }
    try {
      Deno.mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new Error(`spool ${dir}: cannot create the directory: ${reason(e)}`, { cause: e });
    }
    const entries: Entry[] = [];
    let nextId = 1;
    try {
      for (const item of Deno.readDirSync(dir)) {
        if (!item.isFile) continue;
        if (TMP_NAME.test(item.name)) {
          // A write that never reached its rename: the batch was never in the spool.
          Deno.removeSync(join(dir, item.name));
          continue;
        }
        const match = BATCH_NAME.exec(item.name);
        if (!match) continue; // not ours: leave it
        const id = Number(match[1]);
        entries.push({ id, size: Deno.statSync(join(dir, item.name)).size });
        nextId = Math.max(nextId, id + 1);
      }
    } catch (e) {
      throw new Error(`spool ${dir}: cannot read the directory: ${reason(e)}`, { cause: e });
    }
    // readDir's order is the file system's; the numbers are the spool's.
    entries.sort((a, b) => a.id - b.id);
    return new Spool(dir, options, entries, nextId);
  }

  /**
   * Appends one batch at the end; when the total would exceed maxBytes, deletes the oldest
   * batches first and returns how many batches/bytes were dropped that way. A batch larger than
   * maxBytes alone is refused (returned as dropped, not written). Throws (naming the file) when
   * the batch cannot be written; then nothing was dropped.
   */
  append(body: Uint8Array): { droppedBatches: number; droppedBytes: number } {
    const size = HEADER_BYTES + body.length;
    if (size > this.#maxBytes) {
      return { droppedBatches: 1, droppedBytes: size };
    }
    const id = this.#nextId++;
    const path = join(this.dir, fileName(id));
    const tmp = `${path}.tmp`;
    try {
      using file = Deno.openSync(tmp, { write: true, create: true, truncate: true });
      for (const part of [header(body), body]) writeAllSync(file, part);
      file.syncDataSync(); // the bytes are on disk before the name says the batch is there
    } catch (e) {
      removeQuietly(tmp);
      throw new Error(`spool ${this.dir}: cannot write ${tmp}: ${reason(e)}`, { cause: e });
    }
    // Dropped only once the new batch is safely written, so a failed write loses nothing old.
    let droppedBatches = 0;
    let droppedBytes = 0;
    while (this.#bytes + size > this.#maxBytes && this.#head < this.#entries.length) {
      const oldest = this.#entries[this.#head];
      this.#forget(this.#head);
      this.#unlink(oldest.id);
      droppedBatches++;
      droppedBytes += oldest.size;
    }
    try {
      Deno.renameSync(tmp, path);
      using dir = Deno.openSync(this.dir, { read: true });
      dir.syncSync(); // the rename itself survives a power loss
    } catch (e) {
      removeQuietly(tmp);
      throw new Error(`spool ${this.dir}: cannot rename ${tmp}: ${reason(e)}`, { cause: e });
    }
    this.#entries.push({ id, size });
    this.#bytes += size;
    return { droppedBatches, droppedBytes };
  }

  /**
   * The oldest batch, or undefined when empty. Does not remove it. A batch that is not whole
   * is deleted, reported to `onBadBatch`, and the next one is tried.
   */
  peek(): { id: number; body: Uint8Array } | undefined {
    while (this.#head < this.#entries.length) {
      const { id } = this.#entries[this.#head];
      try {
        const body = bodyOf(Deno.readFileSync(join(this.dir, fileName(id))));
        if (typeof body !== "string") return { id, body };
        this.#forget(this.#head);
        this.#unlink(id);
        this.#onBadBatch(fileName(id), body);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) {
          throw new Error(`spool ${this.dir}: cannot read batch ${fileName(id)}: ${reason(e)}`, {
            cause: e,
          });
        }
        // Deleted behind our back (by hand): nothing left to send; try the next one.
        this.#forget(this.#head);
      }
    }
    return undefined;
  }

  /** Removes the batch `id` (after it was sent); a no-op when it is no longer spooled. */
  remove(id: number): void {
    // Nearly always the oldest; ids ascend, so a scan from the head stops early otherwise.
    for (let i = this.#head; i < this.#entries.length && this.#entries[i].id <= id; i++) {
      if (this.#entries[i].id !== id) continue;
      this.#forget(i);
      this.#unlink(id);
      return;
    }
  }

  /** The batches and body bytes held now. */
  get stats(): SpoolStats {
    return { batches: this.#entries.length - this.#head, bytes: this.#bytes };
  }

  /** Drops entry `i` from memory (not the file). */
  #forget(i: number): void {
    this.#bytes -= this.#entries[i].size;
    if (i !== this.#head) {
      this.#entries.splice(i, 1);
      return;
    }
    this.#head++;
    // Compact now and then so a long outage does not keep every id ever spooled.
    if (this.#head === this.#entries.length) {
      this.#entries = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Deletes batch `id`'s file; one already gone is fine. */
  #unlink(id: number): void {
    try {
      Deno.removeSync(join(this.dir, fileName(id)));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw new Error(`spool ${this.dir}: cannot delete batch ${fileName(id)}: ${reason(e)}`, {
        cause: e,
      });
    }
  }
}

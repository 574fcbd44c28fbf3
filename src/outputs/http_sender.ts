/**
 * The batching HTTP sender behind the `http` and `otlp` outputs ({@linkcode HttpSender}): what
 * every output that POSTs batches does, whatever its wire format. A {@linkcode Protocol} says
 * how records become requests; the sender does the rest:
 *
 * - **Batches** close at `batch_size` records or `batch_age`, whichever first; bodies are gzipped
 *   (`gzip: false` to turn off). One request is in flight at a time, so batches arrive in order.
 * - **Retries:** connection errors, timeouts, 429 and 5xx are retried with exponential backoff
 *   (from 100 ms to `max_backoff`, ±50% jitter), honouring `Retry-After` (seconds or an HTTP date,
 *   held between 100 ms and `max_backoff`). Any other 4xx is final:
 *   the batch is dropped and counted (`records_dropped{reason=rejected}`), the receiver's answer
 *   logged at most once a minute, and the batches behind it go on. Of any answer's body at most
 *   {@linkcode MAX_ANSWER_BYTES} are read (the rest is cancelled), so a receiver cannot fill
 *   memory by answering with a huge body; an error's body only when it is logged, so one that
 *   stalls does not hold the sends behind it for `timeout` each.
 * - **Memory** holds at most `buffer_records` records in closed batches. While the receiver is
 *   down, with `spool_dir` set, closed batches go to the spool (bounded by `spool_max_size`; its
 *   oldest batches are dropped first, counted as `spool_dropped_batches`) and are sent, oldest
 *   first, before any newer batch once it is back; a restarted collector sends what the last
 *   one spooled (a batch found cut short or damaged there, after a crash or power loss, is
 *   skipped and counted as `spool_bad_batches`). With a spool, a full memory while the
 *   receiver answers (but slowly) pushes back, which keeps batches in order. Without a spool, `when_full` decides: `block` (push back on the pipeline, whose
 *   queue then holds up to 10,000 records more and drops beyond, counted), `drop_oldest` or
 *   `drop_newest` (counted as `reason=buffer_full`).
 * - **Delivery is at-least-once.** A batch leaves memory or the spool only once the receiver
 *   answered 2xx; a batch whose answer was lost (timeout after the receiver wrote it, or a crash
 *   between the answer and the spool file's removal) is sent again, so the receiver may see it
 *   twice. InfluxDB overwrites a point with the same measurement, tags and time, so duplicates
 *   there are harmless; DataKit may store them twice.
 * - **Shutdown** sends what is held for up to `timeout`, `block` or not (a stop waits for no
 *   room); what cannot go out then is spooled (or, with no spool, counted as `reason=shutdown`
 *   and logged).
 * - **Counters:** `records_sent`, `batches_sent`, `send_failures`, `retries`,
 *   `records_dropped{reason}`, `encode_errors`; gauges `buffered_batches` and
 *
 * An output spreads {@linkcode SENDER_SCHEMA} into its schema and adds
 * {@linkcode senderExplanation} to its `explain()`.
 *
 * @module
 */
import { EncodeError } from "../encode/mod.ts";
import { describeError, UserError } from "../errors.ts";
import type { Schema } from "../pipeline/schema.ts";
import type { Stage, StageContext } from "../pipeline/stage.ts";
import type { Record } from "../record.ts";
import { formatDuration } from "../units.ts";
import { printable } from "../log.ts";
import { Spool } from "./spool.ts";
import { hostPort } from "./url.ts";

export type WhenFull = "block" | "drop_oldest" | "drop_newest";

/** The options of an {@linkcode HttpSender}: the keys every batching HTTP output has. */
export interface SenderConfig {
  /** The receiver's base URL, without a trailing slash; a protocol's paths are appended. */
  url: string;
  batch_size: number;
  /** Milliseconds. */
  batch_age: number;
  gzip: boolean;
  timeout: number;
  max_backoff: number;
  buffer_records: number;
  when_full: WhenFull;
  spool_dir: string;
  spool_max_size: number;
}

/**
 * How a sender turns records into requests: what a batching HTTP output says about its wire
 * format, the rest (batches, retries, memory, spool, counters) being {@linkcode HttpSender}'s.
 * `T` is one encoded record as a batch holds it until the batch is sent or spooled.
 *
 * @example
 * ```ts
 * const lines: Protocol<string> = {
 *   encode: (record) => encodeLineProtocol(record),
 *   pathOf: () => "/write?db=ebpf&precision=ns",
 *   bodyOf: (items) => items.join("\n") + "\n",
 *   headers: () => new Headers({ "Content-Type": "text/plain; charset=utf-8" }),
 * };
 * const stage = new HttpSender(config, lines, ctx).stage();
 * ```
 */
export interface Protocol<T> {
  /**
   * One record as a batch item. Throws an {@linkcode EncodeError} for a record that cannot be
   * sent (counted as `encode_errors`); returns undefined for one with nothing to send (the
   * protocol counts why).
   */
  encode(record: Record): T | undefined;
  /** Where a record goes: a path (and query) under the base URL. One batch holds one path. */
  pathOf(record: Record): string;
  /** One request body from a batch's items, in the order they were pushed. */
  bodyOf(items: readonly T[], path: string): string;
  /**
   * The request headers, credentials included (never log them). The sender adds
   * `Content-Encoding: gzip` when it compresses.
   */
  headers(): Headers;
  /**
   * Optional: reads a 2xx answer's body (e.g. an OTLP partial success; its first
   * {@linkcode MAX_ANSWER_BYTES} only) and returns a problem to log, if any. Without it the body
   * is discarded unread. The batch counts as sent either way.
   */
  accepted?(body: string): string | undefined;
}

const FIRST_BACKOFF_MS = 100;
const ERROR_LOG_EVERY_MS = 60_000;

/** A closed batch: one request body for one path. */
interface Batch<T> {
  path: string;
  /** Encoded records (for line protocol: a string field may hold newlines, not one line each). */
  items: T[];
  records: number;
  /** From the spool: the body as spooled, and its id there (removed once sent). */
  body?: string;
  spoolId?: number;
}

/**
 * Milliseconds to wait that a `Retry-After` header asks for (delay-seconds or an HTTP date), if
 * it is one, clamped between the first backoff and `maxMs` (max_backoff): a receiver saying 0
 * must not make a retry loop, nor one saying 3,000,000 s stop the output for a month.
 */
export function retryAfterMs(
  value: string | null,
  maxMs: number,
  now = Date.now(),
): number | undefined {
  if (!value) return undefined;
  let ms: number;
  if (/^\d+$/.test(value.trim())) ms = Number(value.trim()) * 1000;
  else if (/[a-z]/i.test(value)) ms = Date.parse(value) - now; // "Wed, 21 Oct 2015 07:28:00 GMT"
  else return undefined;
  return Number.isNaN(ms) ? undefined : Math.min(maxMs, Math.max(FIRST_BACKOFF_MS, ms));
}

/** The next wait: exponential from 100 ms, capped, with ±50% jitter. */
export function backoffMs(attempt: number, maxMs: number, random = Math.random): number {
  const base = Math.min(maxMs, FIRST_BACKOFF_MS * 2 ** Math.min(attempt, 30));
  return Math.round(base * (0.5 + random()));
}

/**
 * The most of an answer's body the sender reads (an error to log, an OTLP partial success): a
 * receiver that answers 1 GB must not fill memory, nor hold the send loop while it streams.
 */
export const MAX_ANSWER_BYTES = 8 * 1024;

/**
 * The first `maxBytes` of `response`'s body as text (after any Content-Encoding is undone, so a
 * gzip bomb is cut the same way); the rest is cancelled unread. Never throws: a body that
 * fails or times out midway gives what came before.
 */
export async function readAnswer(response: Response, maxBytes: number): Promise<string> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < maxBytes) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value.subarray(0, maxBytes - size));
      size += Math.min(value.length, maxBytes - size);
    }
  } catch {
    // cut short (a timeout, a reset): what came is enough to log
  } finally {
    await reader.cancel().catch(() => {});
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const p of parts) bytes.set(p, at), at += p.length;
  return new TextDecoder().decode(bytes);
}

/**
 * Why a request failed, in the words a user needs: "no answer within 10s" for a timeout, and
 * for a connection error its cause ("tcp connect error: Connection refused (os error 111)")
 * without fetch's "fetch failed" or its repeat of the URL (which may hold credentials).
 */
function sendError(e: unknown, timeoutMs: number): unknown {
  if (e instanceof DOMException && e.name === "TimeoutError") {
    return new UserError(`no answer within ${formatDuration(timeoutMs)}`);
  }
  if (!(e instanceof TypeError)) return e;
  const cause = e.cause instanceof Error ? e.cause.message : e.message;
  return new UserError(
    printable(
      cause.replace(/^error sending request for url \(.*?\): /, "")
        .replace(/^client error \(\w+\): /, ""),
    ),
  );
}

/** `fn()`, or its error's description: a protocol's answer reader must not fail a sent batch. */
function noThrow(fn: () => string | undefined): string | undefined {
  try {
    return fn();
  } catch (e) {
    return `reading the answer failed: ${describeError(e)}`;
  }
}

async function gzipped(text: string): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** What every sender adds to `explain()`: where batches wait, and the permissions it needs. */
export function senderExplanation(config: SenderConfig, url: string) {
  return {
    details: [
      config.spool_dir
        ? `spool ${config.spool_dir} up to ${config.spool_max_size} bytes`
        : `no spool: ${config.buffer_records} records in memory, then ${config.when_full}`,
    ],
    permissions: {
      net: [hostPort(url)],
      reads: config.spool_dir ? [config.spool_dir] : [],
      writes: config.spool_dir ? [config.spool_dir] : [],
    },
  };
}

/**
 * The schema keys of an {@linkcode HttpSender} besides `url` (whose default and doc depend on
 * the receiver), for an output's schema to spread.
 */
export const SENDER_SCHEMA = {
  batch_size: {
    type: "integer",
    default: 5000,
    min: 1,
    max: 1_000_000,
    doc: "records a request holds at most",
  },
  batch_age: { type: "duration", default: "1s", doc: "a batch is sent at the latest this old" },
  gzip: { type: "boolean", default: true, doc: "gzip request bodies" },
  timeout: {
    type: "duration",
    default: "10s",
    doc: "for each request, and for the last sends at shutdown",
  },
  max_backoff: { type: "duration", default: "30s", doc: "longest wait between retries" },
  buffer_records: {
    type: "integer",
    default: 100_000,
    min: 1,
    max: 100_000_000,
    doc: "records held in memory in closed batches",
  },
  when_full: {
    type: "string",
    oneOf: ["block", "drop_oldest", "drop_newest"],
    default: "block",
    doc: "with no spool, what a full buffer does: push back, or drop (counted)",
  },
  spool_dir: {
    type: "string",
    default: "",
    doc: "where batches wait while the receiver is down (kept across restarts); empty: none",
  },
  spool_max_size: {
    type: "size",
    default: "1GiB",
    doc: "the spool's size; beyond, its oldest batches are dropped (counted)",
  },
} as const satisfies Schema;

/**
 * The batching, sending and spooling behind one `http` output (or another output that posts
 * batches, with its own {@linkcode Protocol}): see the module doc for what it does.
 *
 * @example
 * ```ts
 * build(config, ctx) {
 *   return new HttpSender(config, myProtocol(config, ctx), ctx).stage();
 * }
 * ```
 */
export class HttpSender<T> {
  readonly #config: SenderConfig;
  readonly #protocol: Protocol<T>;
  readonly #ctx: StageContext;
  readonly #spool?: Spool;
  /** Open batches by path. */
  #open = new Map<string, Batch<T>>();
  #openSince = 0;
  /** Closed batches waiting in memory, oldest first. */
  #queue: Batch<T>[] = [];
  #queued = 0;
  #sending?: Promise<void>;
  #wake?: () => void;
  #closed = false;
  /** A shutdown flush has begun: a full memory no longer pushes back. */
  #stopping = false;
  #lastErrorLog = -Infinity;
  /** The last send failed and is being retried. */
  #down = false;
  #timer: ReturnType<typeof setInterval>;
  #spaceWaiters: (() => void)[] = [];

  /** `config.url` is the receiver's base URL (defaults already applied). */
  constructor(config: SenderConfig, protocol: Protocol<T>, ctx: StageContext) {
    this.#config = config;
    this.#protocol = protocol;
    this.#ctx = ctx;
    if (config.spool_dir) {
      this.#spool = Spool.open(config.spool_dir, {
        maxBytes: config.spool_max_size,
        onBadBatch: (file, why) => this.#badBatch(file, why),
      });
      const { batches, bytes } = this.#spool.stats;
      if (batches) ctx.log.info(`${ctx.name}: ${batches} spooled batches (${bytes} bytes) to send`);
      this.#gauges();
    }
    this.#memoryGauges();
    this.#timer = setInterval(() => {
      if (this.#open.size && Date.now() - this.#openSince >= config.batch_age) this.#closeBatches();
    }, Math.max(10, Math.min(config.batch_age, 1000)));
    this.#sending = this.#sendLoop();
  }

  /** The stage: `push` batches a record, `flush` sends (at shutdown, spools what is left). */
  stage(): Stage {
    return {
      push: (record) => this.#push(record),
      flush: (reason) => this.#flush(reason),
      close: () => this.#close(),
    };
  }

  #push(record: Record): void | Promise<void> {
    let item: T | undefined;
    try {
      item = this.#protocol.encode(record);
    } catch (e) {
      if (!(e instanceof EncodeError)) throw e;
      this.#ctx.counters.add("encode_errors");
      return;
    }
    if (item === undefined) return;
    const path = this.#protocol.pathOf(record);
    let batch = this.#open.get(path);
    if (!batch) {
      if (this.#open.size === 0) this.#openSince = Date.now();
      batch = { path, items: [], records: 0 };
      this.#open.set(path, batch);
    }
    batch.items.push(item);
    batch.records++;
    if (batch.records >= this.#config.batch_size) {
      this.#open.delete(path);
      return this.#enqueue(batch);
    }
  }

  #closeBatches(): void | Promise<void> {
    const batches = [...this.#open.values()];
    this.#open.clear();
    let wait: void | Promise<void> = undefined;
    for (const b of batches) wait = this.#enqueue(b) ?? wait;
    return wait;
  }

  /** Queues a closed batch, applying the buffer policy; a promise when the caller must wait. */
  #enqueue(batch: Batch<T>): void | Promise<void> {
    const limit = this.#config.buffer_records;
    // Order holds because memory only ever has batches older than the spool's, or none: the
    // spool takes every batch while it holds any, and from the failure that spilled memory
    // into it until it is empty again. While the receiver answers, a full memory pushes back
    // (spooling then would send this batch before the one in flight).
    if (this.#spool && (this.#spool.stats.batches > 0 || this.#down)) {
      this.#toSpool(batch);
      this.#wake?.();
      return;
    }
    if (this.#queued + batch.records > limit) {
      switch (this.#spool ? "block" : this.#config.when_full) {
        case "drop_newest":
          this.#drop(batch.records, "buffer_full");
          return;
        case "drop_oldest":
          while (this.#queue.length && this.#queued + batch.records > limit) {
            const old = this.#queue.shift()!;
            this.#queued -= old.records;
            this.#drop(old.records, "buffer_full");
          }
          break;
        case "block":
          if (this.#stopping) break; // a stop waits for no room: see #flush
          this.#queue.push(batch);
          this.#queued += batch.records;
          this.#memoryGauges();
          this.#wake?.();
          return new Promise((resolve) => this.#spaceWaiters.push(resolve));
      }
    }
    this.#queue.push(batch);
    this.#queued += batch.records;
    this.#memoryGauges();
    this.#wake?.();
  }

  #toSpool(batch: Batch<T>): void {
    // A spooled batch: its path, its record count, then the body as it will be posted.
    const body = new TextEncoder().encode(
      `${batch.path}\n${batch.records}\n${this.#bodyOf(batch)}`,
    );
    let dropped;
    try {
      dropped = this.#spool!.append(body);
    } catch (e) {
      // A full disk: this batch is lost, counted; the spool keeps what it has.
      this.#drop(batch.records, "spool_error");
      this.#logError(describeError(e));
      return;
    }
    const { droppedBatches, droppedBytes } = dropped;
    if (droppedBatches) {
      this.#ctx.counters.add("spool_dropped_batches", droppedBatches);
      this.#ctx.counters.add("spool_dropped_bytes", droppedBytes);
      this.#logError(
        `spool ${this.#spool!.dir} full: dropped its ${droppedBatches} oldest batches`,
      );
    }
    this.#gauges();
  }

  /** Moves what waits in memory to the spool (in order), so memory stays flat in an outage. */
  #spillQueue(): void {
    if (!this.#spool) return;
    for (const b of this.#queue) this.#toSpool(b);
    this.#queue = [];
    this.#queued = 0;
    this.#releaseWaiters();
  }

  #drop(records: number, reason: string): void {
    this.#ctx.counters.add("records_dropped", records, { reason });
  }

  #gauges(): void {
    const { batches, bytes } = this.#spool!.stats;
    this.#ctx.counters.set("spooled_batches", BigInt(batches));
    this.#ctx.counters.set("spooled_bytes", BigInt(bytes));
  }

  /** Gauges of what waits in memory (set per batch, not per record). */
  #memoryGauges(): void {
    this.#ctx.counters.set("buffered_batches", this.#queue.length);
    this.#ctx.counters.set("buffered_records", this.#queued);
  }

  /** Lets pushes that wait for room go on, once there is room (or `all` of them anyway). */
  #releaseWaiters(all = false): void {
    this.#memoryGauges(); // called after every removal from memory
    if (!all && this.#queued >= this.#config.buffer_records) return;
    const waiters = this.#spaceWaiters;
    this.#spaceWaiters = [];
    for (const w of waiters) w();
  }

  #bodyOf(batch: Batch<T>): string {
    return batch.body ?? this.#protocol.bodyOf(batch.items, batch.path);
  }

  /** A spooled batch that cannot be sent (cut short, damaged): counted, and its file is gone. */
  #badBatch(file: string, why: string): void {
    this.#ctx.counters.add("spool_bad_batches");
    this.#logError(`spool ${this.#spool?.dir ?? ""}: skipped batch ${file}: ${why}`);
    if (this.#spool) this.#gauges();
  }

  /** The next batch to send: the spool's oldest first, then memory's. */
  #next(): Batch<T> | undefined {
    for (let spooled = this.#spool?.peek(); spooled; spooled = this.#spool!.peek()) {
      // As #toSpool writes it: the path, the record count, then the body.
      const text = new TextDecoder().decode(spooled.body);
      const first = text.indexOf("\n"), second = text.indexOf("\n", first + 1);
      const path = text.slice(0, first), records = text.slice(first + 1, second);
      if (first > 0 && second > first && path.startsWith("/") && /^\d+$/.test(records)) {
        return {
          path,
          records: Number(records),
          items: [],
          body: text.slice(second + 1),
          spoolId: spooled.id,
        };
      }
      this.#spool!.remove(spooled.id); // spooled by hand, or cut before the spool checked
      this.#badBatch(`${spooled.id}`, "not a spooled batch of this output");
    }
    return this.#queue[0];
  }

  #done(batch: Batch<T>): void {
    if (batch.spoolId !== undefined) {
      this.#spool!.remove(batch.spoolId);
      this.#gauges();
    } else {
      this.#queue.shift();
      this.#queued -= batch.records;
      this.#releaseWaiters();
    }
  }

  /** One request at a time, oldest batch first, until closed and empty. */
  async #sendLoop(): Promise<void> {
    let attempt = 0;
    while (true) {
      const batch = this.#next();
      if (!batch) {
        if (this.#closed) return;
        await new Promise<void>((resolve) => this.#wake = resolve);
        this.#wake = undefined;
        continue;
      }
      const result = await this.#send(batch);
      if (result.ok || result.final) {
        this.#done(batch);
        this.#down = false;
        attempt = 0;
        continue;
      }
      this.#down = true;
      if (this.#closed) return; // shutdown: #flush spools or counts what is left
      // Down: keep memory flat, then wait and try again.
      this.#spillQueue();
      this.#ctx.counters.add("retries");
      const wait = result.retryAfterMs ?? backoffMs(attempt++, this.#config.max_backoff);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, wait);
        this.#wake = () => {
          if (this.#closed) {
            clearTimeout(t);
            resolve();
          }
        };
      });
      this.#wake = undefined;
    }
  }

  /** Posts one batch: ok, or final (a 4xx: dropped, counted), or retriable. */
  async #send(batch: Batch<T>): Promise<{ ok: boolean; final?: boolean; retryAfterMs?: number }> {
    const body = this.#bodyOf(batch);
    const config = this.#config;
    const requestHeaders = this.#protocol.headers();
    if (config.gzip) requestHeaders.set("Content-Encoding", "gzip");
    try {
      const response = await fetch(`${config.url}${batch.path}`, {
        method: "POST",
        headers: requestHeaders,
        body: config.gzip ? await gzipped(body) : body,
        signal: AbortSignal.timeout(config.timeout),
      });
      if (response.ok) {
        this.#ctx.counters.add("records_sent", batch.records);
        this.#ctx.counters.add("batches_sent");
        if (this.#protocol.accepted) {
          const answer = await readAnswer(response, MAX_ANSWER_BYTES);
          // Sent either way: whatever the answer says, the batch must not go again.
          const problem = noThrow(() => this.#protocol.accepted!(answer));
          if (problem) this.#logError(`${config.url}${batch.path}: ${problem}`);
        } else {
          await response.body?.cancel().catch(() => {});
        }
        return { ok: true };
      }
      this.#ctx.counters.add("send_failures");
      const retry = response.status === 429 || response.status >= 500;
      if (!retry) this.#drop(batch.records, "rejected");
      if (this.#logDue()) {
        const text = printable((await readAnswer(response, MAX_ANSWER_BYTES)).trim().slice(0, 300));
        this.#logError(
          retry
            ? `${config.url} answered ${response.status}: ${text.trim()}; retrying`
            : `${config.url} rejected a batch of ${batch.records} records ` +
              `(${response.status}): ${text.trim()}; dropped`,
        );
      } else {
        // Its body is read only to be logged: one that stalls would hold the sends for nothing.
        await response.body?.cancel().catch(() => {});
      }
      if (!retry) return { ok: false, final: true };
      const retryAfter = retryAfterMs(response.headers.get("Retry-After"), config.max_backoff);
      return { ok: false, retryAfterMs: retryAfter };
    } catch (caught) {
      const e = sendError(caught, config.timeout);
      this.#ctx.counters.add("send_failures");
      this.#logError(`cannot send to ${config.url}: ${describeError(e)}; retrying`);
      return { ok: false };
    }
  }

  /** Whether a send problem logged now would be written (they are, at most once a minute). */
  #logDue(): boolean {
    return Date.now() - this.#lastErrorLog >= ERROR_LOG_EVERY_MS;
  }

  /** Logs a send problem at most once a minute (the counters say how many). */
  #logError(message: string): void {
    if (!this.#logDue()) return;
    this.#lastErrorLog = Date.now();
    this.#ctx.log.warn(`${this.#ctx.name}: ${message}`);
  }

  async #flush(reason: "shutdown" | "reload"): Promise<void> {
    if (reason === "shutdown") {
      // A stop waits for no room, which a receiver that is down never makes: the runtime
      // flushes this while a push waits (stage.ts), and what it queued meanwhile comes in now,
      // to be sent within `timeout`, or spooled or counted below.
      this.#stopping = true;
      this.#releaseWaiters(true);
    }
    // Not awaited: on reload, with `block`, its promise waits for room; the batches are queued
    // either way.
    void this.#closeBatches();
    if (reason !== "shutdown") return;
    // Give the sender `timeout` to empty memory, unless the receiver is down and a spool can
    // keep it; then spool (or count) what is left. (Flushed again after that, for what the
    // runtime's queue handed on late, it has stopped sending already.)
    const deadline = Date.now() + this.#config.timeout;
    while (
      !this.#closed && this.#queue.length && Date.now() < deadline && !(this.#down && this.#spool)
    ) {
      await new Promise((r) => setTimeout(r, 20));
    }
    this.#closed = true;
    this.#wake?.();
    await this.#sending;
    if (this.#queue.length) {
      if (this.#spool) {
        this.#spillQueue();
      } else {
        const lost = this.#queued;
        this.#drop(lost, "shutdown");
        this.#ctx.log.warn(`${this.#ctx.name}: ${lost} records not sent at shutdown (no spool)`);
        this.#queue = [];
        this.#queued = 0;
      }
    }
    this.#releaseWaiters();
  }

  #close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#wake?.();
    for (const w of this.#spaceWaiters) w();
  }
}

/**
 * The one counter registry every stage reports into, printed as a summary on exit.
 *
 * Naming convention:
 * - Names are snake_case and say what is counted: `records_in`, `records_out`, `ring_lost`,
 *   `decode_errors`; planned later: `map_full`, `output_errors`.
 * - Labels identify the stage the count belongs to, e.g. `{ probe: "bash" }` or
 *   `{ output: "stdout" }`; keep their values few (probe and output names, not pids or users).
 * - A counter is identified by its name and its labels; the order labels were written in does
 *   not matter (`{a, b}` and `{b, a}` are the same counter).
 *
 * Values are bigint so they stay exact however long the collector runs.
 *
 * @example
 * ```ts
 * const counters = new Counters();
 * counters.add("records_in", 1, { probe: "bash" });
 * counters.set("ring_lost", 3n, { probe: "bash" });
 * counters.summary(); // "records_in{probe=bash}=1 ring_lost{probe=bash}=3"
 * ```
 *
 * @module
 */

/** One counter's value with its name and labels, as {@linkcode Counters.snapshot} returns. */
export interface CounterValue {
  name: string;
  labels: Record<string, string>;
  value: bigint;
}

/** Counters with some labels already given (see {@linkcode Counters.bound}). */
export interface BoundCounters {
  add(name: string, n?: number | bigint, labels?: Record<string, string>): void;
  set(name: string, value: number | bigint, labels?: Record<string, string>): void;
  /** A handle for hot paths (per record): `inc()` without rebuilding the label key. */
  handle(name: string, labels?: Record<string, string>): { inc(): void };
}

interface Entry {
  name: string;
  // Sorted by key, so equal label sets compare and print alike.
  labels: [string, string][];
  value: bigint;
}

/** A registry of named, labelled integer counters. */
export class Counters {
  /** A view that adds `labels` (e.g. `{stage: "bash"}`) to every call: what a stage gets. */
  bound(labels: Record<string, string>): BoundCounters {
    return {
      add: (name, n = 1, extra = {}) => this.add(name, n, { ...labels, ...extra }),
      set: (name, value, extra = {}) => this.set(name, value, { ...labels, ...extra }),
      handle: (name, extra = {}) => this.handle(name, { ...labels, ...extra }),
    };
  }

  #entries = new Map<string, Entry>();

  /** Adds `n` (a non-negative integer, default 1) to the counter `name` with `labels`. */
  add(name: string, n: number | bigint = 1, labels: Record<string, string> = {}): void {
    const delta = toBigInt(n, "add");
    if (delta < 0n) {
      throw new RangeError(
        `counter ${name} cannot go down (add ${delta}); use set() for absolute values`,
      );
    }
    this.#entry(name, labels).value += delta;
  }

  /** Sets the counter `name` with `labels` to an absolute value, e.g. a kernel-side total. */
  set(name: string, value: number | bigint, labels: Record<string, string> = {}): void {
    // Convert first so a rejected value does not leave an empty counter behind.
    const exact = toBigInt(value, "set");
    this.#entry(name, labels).value = exact;
  }

  /**
   * A handle on one counter, for hot paths: `inc()` adds 1 without building the label key
   * again (the runtime counts every record in and out of every stage).
   */
  handle(name: string, labels: Record<string, string> = {}): { inc(): void } {
    // Created on first use: a counter that can never move (a probe's records_in) stays out
    // of the summary.
    let entry: Entry | undefined;
    return {
      inc: () => {
        (entry ??= this.#entry(name, labels)).value++;
      },
    };
  }

  /** Returns the value of the counter `name` with `labels`, or 0n if it was never written. */
  get(name: string, labels: Record<string, string> = {}): bigint {
    return this.#entries.get(keyOf(name, sortLabels(labels)))?.value ?? 0n;
  }

  /** Returns every counter, sorted by name and then labels. */
  snapshot(): CounterValue[] {
    return [...this.#entries.values()]
      .sort(compareEntries)
      .map((e) => ({ name: e.name, labels: Object.fromEntries(e.labels), value: e.value }));
  }

  /** Returns all counters on one line, e.g. `records_in{probe=bash}=5 ring_lost{probe=bash}=0`. */
  summary(): string {
    return [...this.#entries.values()]
      .sort(compareEntries)
      .map((e) => {
        const labels = e.labels.length === 0
          ? ""
          : `{${e.labels.map(([k, v]) => `${k}=${v}`).join(",")}}`;
        return `${e.name}${labels}=${e.value}`;
      })
      .join(" ");
  }

  #entry(name: string, labels: Record<string, string>): Entry {
    const sorted = sortLabels(labels);
    const key = keyOf(name, sorted);
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      entry = { name, labels: sorted, value: 0n };
      this.#entries.set(key, entry);
    }
    return entry;
  }
}

function toBigInt(n: number | bigint, method: string): bigint {
  if (typeof n === "bigint") return n;
  if (!Number.isSafeInteger(n)) {
    throw new RangeError(`Counters.${method} needs an integer, got ${n}`);
  }
  return BigInt(n);
}

function sortLabels(labels: Record<string, string>): [string, string][] {
  return Object.entries(labels).sort(([a], [b]) => compare(a, b));
}

// JSON keeps the key unambiguous whatever characters names and labels hold.
function keyOf(name: string, sorted: [string, string][]): string {
  return JSON.stringify([name, sorted]);
}

function compareEntries(a: Entry, b: Entry): number {
  const byName = compare(a.name, b.name);
  if (byName !== 0) return byName;
  const n = Math.min(a.labels.length, b.labels.length);
  for (let i = 0; i < n; i++) {
    const c = compare(a.labels[i][0], b.labels[i][0]) || compare(a.labels[i][1], b.labels[i][1]);
    if (c !== 0) return c;
  }
  return a.labels.length - b.labels.length;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

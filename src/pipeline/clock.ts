/**
 * The clock stages read and schedule on. Injected, so tests and replay decide what time it is:
 * the live clock follows the wall clock; a {@linkcode ManualClock} moves only when told (to each
 * record's time in replay), which makes windows deterministic.
 */

/** Time in integer nanoseconds since the epoch, and periodic timers. */
export interface Clock {
  now(): bigint;
  /**
   * Calls `fn(tickNs)` at every multiple of `intervalMs` of this clock's time (aligned, so a
   * 60s window ends on the minute). Returns a handle to cancel. `first`: at a tick shared with
   * other timers, run before those without it: how a probe's poll at the end of a minute
   * reaches the window that closes then.
   */
  every(
    intervalMs: number,
    fn: (tickNs: bigint) => void,
    options?: { first?: boolean },
  ): { cancel(): void };
}

const NS_PER_MS = 1_000_000n;

/** The wall clock and real timers. */
export class LiveClock implements Clock {
  now(): bigint {
    return BigInt(Date.now()) * NS_PER_MS;
  }

  every(
    intervalMs: number,
    fn: (tickNs: bigint) => void,
    options: { first?: boolean } = {},
  ): { cancel(): void } {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let cancelled = false;
    const interval = BigInt(Math.max(1, Math.round(intervalMs))) * NS_PER_MS;
    // Others wait 1 ms past the tick (a timer may fire a little early by the wall clock);
    // `first` timers fire at it, and never twice for one tick.
    const late = options.first ? 0 : 1;
    let last = 0n;
    const schedule = () => {
      const now = this.now();
      let next = (now / interval + 1n) * interval;
      if (next <= last) next = last + interval;
      last = next;
      timer = setTimeout(() => {
        if (cancelled) return;
        try {
          fn(next);
        } catch (e) {
          // An uncaught error in a timer ends the process: report it and keep ticking.
          console.error(`error: a timer callback failed: ${(e as Error).stack ?? e}`);
        }
        schedule();
      }, Number((next - now) / NS_PER_MS) + late);
    };
    schedule();
    return {
      cancel() {
        cancelled = true;
        clearTimeout(timer);
      },
    };
  }
}

/** A clock that moves only through {@linkcode advance}: for tests and replay. */
export class ManualClock implements Clock {
  #now: bigint;
  #timers = new Set<
    { interval: bigint; next: bigint; first: boolean; fn: (tickNs: bigint) => void }
  >();

  constructor(startNs = 0n) {
    this.#now = startNs;
  }

  now(): bigint {
    return this.#now;
  }

  every(
    intervalMs: number,
    fn: (tickNs: bigint) => void,
    options: { first?: boolean } = {},
  ): { cancel(): void } {
    const interval = BigInt(Math.max(1, Math.round(intervalMs))) * NS_PER_MS;
    const first = options.first ?? false;
    const timer = { interval, next: (this.#now / interval + 1n) * interval, first, fn };
    this.#timers.add(timer);
    return { cancel: () => this.#timers.delete(timer) };
  }

  /** Moves time forward to `toNs`, firing every tick passed on the way, in time order. */
  advance(toNs: bigint): void {
    for (;;) {
      let due:
        | { next: bigint; first: boolean; interval: bigint; fn: (t: bigint) => void }
        | undefined;
      for (const t of this.#timers) {
        if (t.next > toNs || (due && t.next > due.next)) continue;
        if (!due || t.next < due.next || (t.first && !due.first)) due = t;
      }
      if (!due) break;
      this.#now = due.next;
      due.next += due.interval;
      due.fn(this.#now);
    }
    if (toNs > this.#now) this.#now = toNs;
  }
}

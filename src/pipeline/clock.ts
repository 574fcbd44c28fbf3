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

interface Timer {
  interval: bigint;
  next: bigint;
  /** Fires before the timers without it at a tick they share. */
  first: boolean;
  fn: (tickNs: bigint) => void;
}

/** How a {@linkcode ManualClock} crosses time in which nothing was injected. */
export interface ManualClockOptions {
  /**
   * Jump over gaps (replay, where a record at 0 may be followed by one in 2026): a timer fires
   * at its first tick in the gap (what it held from before the gap is handled at its own
   * boundary), and again in the gap only after records moved since it last fired (a window
   * that another's tick fed closes at its next boundary); its other ticks are skipped, as they
   * would have found nothing to do. So a one-year gap costs a few calls per timer instead of
   * one per tick. `moved` returns a number that changes whenever records move between stages
   * (replay: the sum of every stage's `records_out`). Without `jump`, every tick fires.
   */
  jump?: { moved: () => bigint };
}

/** Whether timer `a` due at `atA` fires before `b` due at `atB` (a `first` timer wins a tie). */
function before(a: Timer, atA: bigint, b: Timer, atB: bigint): boolean {
  return atA < atB || (atA === atB && a.first && !b.first);
}

/** A clock that moves only through {@linkcode advance}: for tests and replay. */
export class ManualClock implements Clock {
  #now: bigint;
  #timers = new Set<Timer>();
  readonly #jump?: { moved: () => bigint };

  constructor(startNs = 0n, options: ManualClockOptions = {}) {
    this.#now = startNs;
    this.#jump = options.jump;
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

  /**
   * Moves time forward to `toNs`, firing the ticks passed on the way in time order: every one,
   * or with the `jump` option only those that may have work (see {@linkcode ManualClockOptions}).
   */
  advance(toNs: bigint): void {
    if (this.#jump) this.#jumpTo(toNs, this.#jump.moved);
    else this.#stepTo(toNs);
    if (toNs > this.#now) this.#now = toNs;
  }

  #stepTo(toNs: bigint): void {
    for (;;) {
      let due: Timer | undefined;
      for (const t of this.#timers) {
        if (t.next <= toNs && (!due || before(t, t.next, due, due.next))) due = t;
      }
      if (!due) return;
      this.#fire(due, due.next);
    }
  }

  #jumpTo(toNs: bigint, moved: () => bigint): void {
    // Per timer fired in this jump: the moved() count right after its last fire, and how often.
    const fired = new Map<Timer, { moved: bigint; times: number }>();
    // A timer fires again only after others moved records, so a chain of n windows needs at
    // most n rounds; the cap keeps a stage that emits on every tick from stepping the whole gap.
    const cap = this.#timers.size + 1;
    for (;;) {
      const now = moved();
      let due: Timer | undefined;
      let dueAt = 0n;
      for (const t of this.#timers) {
        const last = fired.get(t);
        if (last && (last.moved === now || last.times >= cap)) continue; // nothing new for it
        // Woken after skipped ticks: its first tick after now.
        const at = t.next > this.#now ? t.next : (this.#now / t.interval + 1n) * t.interval;
        if (at <= toNs && (!due || before(t, at, due, dueAt))) [due, dueAt] = [t, at];
      }
      if (!due) break;
      this.#fire(due, dueAt);
      fired.set(due, { moved: moved(), times: (fired.get(due)?.times ?? 0) + 1 });
    }
    // The skipped ticks: each timer goes on from its first tick after the gap.
    for (const t of this.#timers) {
      if (t.next <= toNs) t.next = (toNs / t.interval + 1n) * t.interval;
    }
  }

  #fire(timer: Timer, at: bigint): void {
    this.#now = at;
    timer.next = at + timer.interval;
    timer.fn(at);
  }
}

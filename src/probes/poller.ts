/**
 * What the probes that count in the kernel (netflow, dns, netdrop) share: a poll of the
 * kernel's counts every `poll`, aligned to the clock and run before the windows that close at
 * the same tick, its records stamped just inside the interval they cover (`tick - 1ns`). A
 * failed poll is counted (`poll_errors`) and logged, never thrown: the next one tries again.
 */
import { describeError } from "../errors.ts";
import type { StageContext } from "../pipeline/stage.ts";

/** What `clock.every` returns. */
type Cancel = { cancel(): void };

export class Poller {
  readonly #ctx: StageContext;
  readonly #poll: (time: bigint) => void;
  #timer: Cancel;

  constructor(ctx: StageContext, everyMs: number, poll: (time: bigint) => void) {
    this.#ctx = ctx;
    this.#poll = poll;
    this.#timer = this.#start(everyMs);
  }

  /** Polls at once (a flush: what the kernel counted since the last poll is not lost). */
  now(): void {
    this.#run(this.#ctx.clock.now());
  }

  /** Polls every `everyMs` from now on (a reload changed `poll`). */
  every(everyMs: number): void {
    this.#timer.cancel();
    this.#timer = this.#start(everyMs);
  }

  cancel(): void {
    this.#timer.cancel();
  }

  #start(everyMs: number): Cancel {
    return this.#ctx.clock.every(everyMs, (tick) => this.#run(tick - 1n), { first: true });
  }

  #run(time: bigint): void {
    try {
      this.#poll(time);
    } catch (e) {
      this.#ctx.counters.add("poll_errors");
      this.#ctx.log.warn(`${this.#ctx.name}: poll failed: ${describeError(e)}`);
    }
  }
}

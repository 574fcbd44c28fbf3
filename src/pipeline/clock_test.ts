import assert from "node:assert/strict";
import { LiveClock, ManualClock } from "./clock.ts";

Deno.test("ManualClock runs a `first` timer before others due at the same tick, whatever their order", () => {
  const clock = new ManualClock(0n);
  const order: string[] = [];
  clock.every(1000, (t) => order.push(`window@${t}`));
  clock.every(500, (t) => order.push(`poll@${t}`), { first: true });
  clock.advance(1_000_000_000n);
  assert.deepEqual(order, ["poll@500000000", "poll@1000000000", "window@1000000000"]);
});

Deno.test("LiveClock runs a `first` timer before others at a shared tick, once per tick", async () => {
  const clock = new LiveClock();
  const order: string[] = [];
  const window = clock.every(100, (t) => order.push(`window@${t}`));
  const poll = clock.every(100, (t) => order.push(`poll@${t}`), { first: true });
  await new Promise((r) => setTimeout(r, 450));
  window.cancel();
  poll.cancel();
  const ticks = [...new Set(order.map((o) => o.split("@")[1]))];
  assert.ok(ticks.length >= 3, order.join(" "));
  for (const tick of ticks.slice(0, -1)) {
    // Each tick: the poll exactly once, and before the window.
    const at = order.filter((o) => o.endsWith(`@${tick}`));
    assert.deepEqual(at, [`poll@${tick}`, `window@${tick}`], order.join(" "));
  }
});

const T0 = 1_767_225_600_000_000_000n; // on a minute
const S = 1_000_000_000n;
const YEAR = 365n * 86_400n * S;

Deno.test("ManualClock.advance() fires every tick passed, in time order, by default", () => {
  const clock = new ManualClock(T0);
  const ticks: string[] = [];
  clock.every(1000, (t) => ticks.push(`1s@${(t - T0) / S}`));
  clock.every(2000, (t) => ticks.push(`2s@${(t - T0) / S}`));
  clock.advance(T0 + 4n * S);
  assert.deepEqual(ticks, ["1s@1", "1s@2", "2s@2", "1s@3", "1s@4", "2s@4"]);
  assert.equal(clock.now(), T0 + 4n * S);
});

Deno.test("ManualClock with jump: periodic work in a one-year gap runs once, then keeps its schedule", () => {
  const clock = new ManualClock(T0, { jump: { moved: () => 0n } }); // no records move
  const ticks: bigint[][] = [[], []];
  clock.every(1000, (t) => ticks[0].push(t));
  clock.every(60_000, (t) => ticks[1].push(t));
  const started = performance.now();
  clock.advance(T0 + YEAR);
  assert.ok(performance.now() - started < 50, "a gap costs calls per timer, not per tick");
  assert.deepEqual(ticks, [[T0 + S], [T0 + 60n * S]], "each at its first tick in the gap");
  assert.equal(clock.now(), T0 + YEAR);
  clock.advance(T0 + YEAR + 2n * S);
  assert.deepEqual(ticks[0].slice(1), [T0 + YEAR + S], "on its schedule after the gap");
});

Deno.test("ManualClock with jump: a timer fed in the gap fires at its next tick after the records moved", () => {
  let moved = 0n;
  const clock = new ManualClock(T0, { jump: { moved: () => moved } });
  const fine: bigint[] = [];
  clock.every(10_000, (t) => fine.push(t)); // a 10 s window reading...
  clock.every(60_000, () => moved++); // ...a 60 s one, which emits at its tick
  clock.every(1000, () => {}); // a loss watch: moves nothing, wakes nobody
  clock.advance(T0 + YEAR);
  assert.deepEqual(fine, [T0 + 10n * S, T0 + 70n * S]);
});

Deno.test("ManualClock with jump: a stage that moves records on every tick cannot step through the gap", () => {
  let moved = 0n;
  const clock = new ManualClock(T0, { jump: { moved: () => moved } });
  const counts = [0, 0];
  clock.every(1000, () => (counts[0]++, moved++));
  clock.every(1000, () => (counts[1]++, moved++));
  clock.advance(T0 + YEAR);
  // Each wakes the other; the cap (timers + 1) ends it.
  assert.ok(counts.every((n) => n <= 3), `fired ${counts} times`);
});

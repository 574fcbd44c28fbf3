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

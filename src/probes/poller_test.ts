import assert from "node:assert/strict";
import { buildStage } from "../pipeline/testing.ts";
import type { StageDef } from "../pipeline/stage.ts";
import { Poller } from "./poller.ts";

const SECOND = 1_000_000_000n;

/** A probe whose poll records the times it was given, failing on the second call. */
async function pollingProbe() {
  const times: bigint[] = [];
  let poller: Poller | undefined;
  const def: StageDef = {
    type: "polling",
    kind: "probe",
    describe: "test",
    schema: {},
    example: {},
    build(_config, ctx) {
      poller = new Poller(ctx, 1000, (time) => {
        times.push(time);
        if (times.length === 2) throw new Error("map gone");
      });
      return { push() {}, flush() {}, close: () => poller!.cancel() };
    },
  };
  const built = await buildStage(def, {}, undefined);
  return { ...built, times, poller: () => poller! };
}

Deno.test("Poller polls at each aligned second, stamping just inside it; a failure is counted, not thrown", async () => {
  const { clock, times, counters, logs, poller } = await pollingProbe();
  const start = clock.now();
  const first = (start / SECOND + 1n) * SECOND;
  clock.advance(first + 2n * SECOND);
  assert.deepEqual(times, [first - 1n, first + SECOND - 1n, first + 2n * SECOND - 1n]);
  assert.equal(counters.get("poll_errors", { stage: "polling" }), 1n);
  assert.ok(
    logs.some((l) => l.includes("polling: poll failed: ") && l.includes("map gone")),
    logs.join("\n"),
  );

  poller().now(); // a flush
  assert.equal(times.at(-1), clock.now());
  poller().cancel();
  clock.advance(clock.now() + 5n * SECOND);
  assert.equal(times.length, 4, "no poll after cancel");
});

import assert from "node:assert/strict";
import { Counters } from "../counters.ts";
import { ManualClock } from "./clock.ts";
import { declaredLosses, lossMessage, watchLosses } from "./loss_watch.ts";
import { PROBES } from "../probes/mod.ts";
import { COMMON_DROPS } from "../probes/drops.ts";

const T = 1_767_225_600_000_000_000n;
const S = 1_000_000_000n;

function setup() {
  const counters = new Counters();
  const clock = new ManualClock(T);
  const warnings: string[] = [];
  const log = { info() {}, warn: (m: string) => warnings.push(m), debug() {} };
  return { counters, clock, warnings, watch: watchLosses(counters, log, clock) };
}

Deno.test("watchLosses() warns at the first loss, then at most once per 10 s with the count since", () => {
  const { counters, clock, warnings, watch } = setup();
  counters.set("sockets_full", 5n, { stage: "flows" });
  clock.advance(T + 1n * S);
  assert.deepEqual(warnings, [
    "flows: 5 events lost (no kernel memory for TCP socket storage: pid and direction of new " +
    "sockets unknown)",
  ]);
  for (let s = 2n; s <= 10n; s++) {
    counters.set("sockets_full", 5n + s, { stage: "flows" }); // grows every second
    clock.advance(T + s * S);
  }
  assert.equal(warnings.length, 1, "not per event: nothing within 10 s of the last warning");
  counters.set("sockets_full", 20n, { stage: "flows" });
  clock.advance(T + 11n * S);
  assert.equal(warnings.length, 2);
  assert.match(
    warnings[1],
    /^flows: 15 events lost \(no kernel memory for TCP socket.*\); 20 in all$/,
  );
  watch.stop();
});

Deno.test("watchLosses() limits each stage and kind on its own; the reason says why", () => {
  const { counters, clock, warnings, watch } = setup();
  counters.add("records_dropped", 3, { stage: "out", reason: "queue_full" });
  counters.add("records_dropped", 2, { stage: "out", reason: "buffer_full" });
  counters.add("decode_errors", 1, { stage: "dns" });
  counters.add("records_in", 9, { stage: "out" }); // not a loss
  counters.set("ring_lost", 0n, { stage: "bash" }); // a loss counter that has not moved
  clock.advance(T + 1n * S);
  assert.deepEqual(warnings.toSorted(), [
    "dns: 1 events not decoded (--debug shows each)",
    "out: 2 records dropped (buffer_full: memory buffer full while the receiver was slow or " +
    "down (when_full))",
    "out: 3 records dropped (queue_full: the stage could not keep up: its queue of 10000 " +
    "records was full)",
  ]);
  watch.stop();
});

Deno.test("watchLosses() stop() reports what the last seconds lost, limit or not", () => {
  const { counters, clock, warnings, watch } = setup();
  counters.add("spool_dropped_batches", 1, { stage: "influx" });
  clock.advance(T + 1n * S);
  counters.add("spool_dropped_batches", 4, { stage: "influx" });
  clock.advance(T + 2n * S);
  watch.stop();
  assert.deepEqual(warnings, [
    "influx: 1 spooled batches dropped (spool full, oldest first; raise spool_max_size)",
    "influx: 4 spooled batches dropped (spool full, oldest first; raise spool_max_size); 5 in all",
  ]);
  counters.add("spool_dropped_batches", 1, { stage: "influx" });
  clock.advance(T + 20n * S);
  assert.equal(warnings.length, 2, "stopped: no more checks");
});

Deno.test("watchLosses() takes a kernel total that starts again (a rebuilt probe) as new", () => {
  const { counters, clock, warnings, watch } = setup();
  counters.set("ring_lost", 7n, { stage: "bash" });
  clock.advance(T + 1n * S);
  counters.set("ring_lost", 2n, { stage: "bash" }); // the reload's new BPF object
  clock.advance(T + 12n * S);
  counters.set("ring_lost", 4n, { stage: "bash" });
  clock.advance(T + 13n * S);
  assert.deepEqual(warnings, [
    "bash: 7 events lost (ring buffer full, the reader fell behind)",
    "bash: 2 events lost (ring buffer full, the reader fell behind); 4 in all",
  ]);
  watch.stop();
});

Deno.test("each loss counter a stage type declares is warned about with its text, and means one thing", () => {
  const seen = new Map<string, string>();
  for (const loss of declaredLosses()) {
    const text = `${loss.what} (${loss.why})`;
    const before = seen.get(loss.counter);
    assert.ok(
      before === undefined || before === text,
      `${loss.counter} is declared twice with different texts: ${before} / ${text}`,
    );
    seen.set(loss.counter, text);
    const message = lossMessage({ name: loss.counter, labels: { stage: "p" }, value: 2n }, 2n, 2n);
    assert.equal(message, `p: 2 ${loss.what}${loss.why ? ` (${loss.why})` : ""}`);
  }
  // The dns probe's user-space table, declared with its def, not listed in the loss watch.
  assert.ok(seen.has("pending_dropped") && seen.has("flows_full"), [...seen.keys()].join());
});

Deno.test("every probe whose BPF counts drops declares what its drops map counts, the shared reasons first", () => {
  for (const def of PROBES.values()) {
    if (!def.bpfObject) continue;
    const source = Deno.readTextFileSync(
      new URL(`../../bpf/${def.bpfObject}.bpf.c`, import.meta.url),
    );
    if (!source.includes("count_drop(")) continue; // netdrop counts its own way, in its maps
    assert.ok(
      def.drops,
      `${def.type}: bpf/${def.bpfObject}.bpf.c counts drops, its def lists none`,
    );
    assert.deepEqual(def.drops.slice(0, COMMON_DROPS.length), COMMON_DROPS, def.type);
  }
});

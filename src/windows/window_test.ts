import assert from "node:assert/strict";
import type { FieldValue, Record } from "../record.ts";
import { buildStage, configureStage } from "../pipeline/testing.ts";
import type { ConfigError } from "../errors.ts";
import { ManualClock } from "../pipeline/clock.ts";
import { OTHER, windowStage } from "./window.ts";

const START = 1_764_000_000_000_000_000n; // buildStage's clock; a multiple of 60s
const SECOND = 1_000_000_000n;

function rec(
  tags: { [key: string]: string },
  fields: { [key: string]: FieldValue },
  measurement = "bash",
): Record {
  return { measurement, tags: { host: "h1", source: "bash", ...tags }, fields, time: START };
}

function errorsOf(options: { [key: string]: unknown }): ConfigError[] {
  return configureStage(windowStage, options).errors;
}

const ALL_AGGS = {
  n: { agg: "count" },
  total: { from: "lat", agg: "sum" },
  avg: { from: "lat", agg: "mean" },
  top: { from: "lat", agg: "max" },
  bottom: { from: "lat", agg: "min" },
  latest: { from: "lat", agg: "last" },
};

Deno.test("window() computes count, sum, mean, max, min and last of one integer field", async () => {
  const { stage, emitted, clock } = await buildStage(windowStage, {
    every: "60s",
    fields: ALL_AGGS,
  });
  for (const lat of [10n, 20n, 5n, 7n]) stage.push(rec({}, { lat }));
  clock.advance(START + 60n * SECOND);
  assert.deepEqual(emitted, [{
    measurement: "bash",
    tags: { host: "h1", source: "bash" },
    // 42 / 4 = 10.5 rounds half away from zero to 11.
    fields: { n: 4n, total: 42n, avg: 11n, top: 20n, bottom: 5n, latest: 7n },
    time: START + 60n * SECOND,
  }]);
});

Deno.test("window() rounds an integer mean half away from zero", async () => {
  const { stage, emitted } = await buildStage(windowStage, {
    every: "60s",
    group_by: ["k"],
    fields: { avg: { from: "v", agg: "mean" } },
  });
  const cases: [string, bigint[], bigint][] = [
    ["up", [1n, 2n], 2n],
    ["down", [-1n, -2n], -2n],
    ["third", [1n, 1n, 2n], 1n],
    ["two_thirds", [1n, 2n, 2n], 2n],
  ];
  for (const [k, values] of cases) for (const v of values) stage.push(rec({ k }, { v }));
  await stage.flush("shutdown");
  assert.deepEqual(
    emitted.map((r) => [r.tags.k, r.fields.avg]),
    cases.map(([k, , mean]) => [k, mean]),
  );
});

Deno.test("window() takes a mean of totals with per: the sum of a total over the sum of its counts", async () => {
  const { stage, emitted } = await buildStage(windowStage, {
    every: "60s",
    fields: {
      latency: { from: "latency_sum", agg: "mean", per: "count" },
      naive: { from: "latency", agg: "mean" },
    },
  });
  // One row of 1,000 requests at 10 each, one of a single request at 1,000.
  stage.push(rec({}, { latency_sum: 10_000n, count: 1000n, latency: 10n }));
  stage.push(rec({}, { latency_sum: 1000n, count: 1n, latency: 1000n }));
  stage.push(rec({}, { latency_sum: 5n })); // no count: skipped, counted
  await stage.flush("shutdown");
  // 11,000 / 1,001 = 10.99 → 11; the mean of the two means would say 505.
  assert.deepEqual(emitted[0].fields, { latency: 11n, naive: 505n });
});

Deno.test("window() refuses per with any aggregation but mean", () => {
  const [e] = errorsOf({
    every: "60s",
    fields: { x: { from: "a", agg: "sum", per: "count" } },
  });
  assert.equal(e.path, "test.window.fields.x.per");
  assert.match(e.message, /per goes with agg: mean/);
});

Deno.test("window() aggregates float fields as floats", async () => {
  const { stage, emitted } = await buildStage(windowStage, { every: "60s", fields: ALL_AGGS });
  for (const lat of [1.5, 2.5, 0.25]) stage.push(rec({}, { lat }));
  await stage.flush("shutdown");
  assert.deepEqual(emitted[0].fields, {
    n: 3n,
    total: 4.25,
    avg: 4.25 / 3,
    top: 2.5,
    bottom: 0.25,
    latest: 0.25,
  });
});

Deno.test("window() gives floats when a series sees integers and floats", async () => {
  const { stage, emitted } = await buildStage(windowStage, { every: "60s", fields: ALL_AGGS });
  stage.push(rec({}, { lat: 3n }));
  stage.push(rec({}, { lat: 1.5 }));
  await stage.flush("shutdown");
  assert.deepEqual(emitted[0].fields, {
    n: 2n,
    total: 4.5,
    avg: 2.25,
    top: 3,
    bottom: 1.5,
    latest: 1.5,
  });
});

Deno.test("window() skips missing and non-numeric values and counts them", async () => {
  const { stage, emitted, counters } = await buildStage(windowStage, {
    every: "60s",
    fields: {
      n: { agg: "count" },
      total: { from: "lat", agg: "sum" },
      latest: { from: "lat", agg: "last" },
    },
  });
  stage.push(rec({}, { lat: 2n }));
  stage.push(rec({}, { lat: "slow" })); // skipped by sum, kept by last
  stage.push(rec({}, { other: 1n })); // skipped by both
  await stage.flush("shutdown");
  assert.deepEqual(emitted[0].fields, { n: 3n, total: 2n, latest: "slow" });
  assert.equal(counters.get("values_skipped", { stage: "window" }), 3n);
});

Deno.test("window() omits an output that saw no value but always writes count", async () => {
  const { stage, emitted } = await buildStage(windowStage, { every: "60s", fields: ALL_AGGS });
  stage.push(rec({}, { cmd: "ls" }));
  await stage.flush("shutdown");
  assert.deepEqual(emitted[0].fields, { n: 1n });
});

Deno.test("window() emits nothing for a series whose outputs all saw no value", async () => {
  const { stage, emitted } = await buildStage(windowStage, {
    every: "60s",
    fields: { total: { from: "lat", agg: "sum" } },
  });
  stage.push(rec({}, { cmd: "ls" }));
  await stage.flush("shutdown");
  assert.deepEqual(emitted, []);
});

Deno.test("window() folds keys beyond max_series into ~other and conserves sums", async () => {
  const { stage, emitted, counters } = await buildStage(windowStage, {
    every: "60s",
    group_by: ["user", "tty"],
    max_series: 100,
    fields: { n: { agg: "count" }, bytes: { from: "bytes", agg: "sum" } },
  });
  const KEYS = 10_000, PER_KEY = 3;
  let inputSum = 0n;
  for (let round = 0; round < PER_KEY; round++) {
    for (let i = 0; i < KEYS; i++) {
      const bytes = BigInt(i * PER_KEY + round);
      inputSum += bytes;
      stage.push(rec({ user: `u${i}`, tty: "pts/0" }, { bytes }));
    }
  }
  await stage.flush("shutdown");
  assert.equal(emitted.length, 101);
  const others = emitted.filter((r) => r.tags.user === OTHER);
  assert.equal(others.length, 1);
  assert.deepEqual(others[0].tags, { host: "h1", source: "bash", user: OTHER, tty: OTHER });
  assert.equal(others[0].fields.n, BigInt((KEYS - 100) * PER_KEY));
  assert.equal(emitted.reduce((sum, r) => sum + (r.fields.bytes as bigint), 0n), inputSum);
  assert.equal(
    emitted.reduce((sum, r) => sum + (r.fields.n as bigint), 0n),
    BigInt(KEYS * PER_KEY),
  );
  assert.equal(counters.get("series_folded", { stage: "window" }), BigInt((KEYS - 100) * PER_KEY));
});

Deno.test("window() starts the budget afresh each window", async () => {
  const { stage, emitted, clock } = await buildStage(windowStage, {
    every: "60s",
    group_by: ["user"],
    max_series: 1,
    fields: { n: { agg: "count" } },
  });
  stage.push(rec({ user: "a" }, {}));
  stage.push(rec({ user: "b" }, {}));
  clock.advance(START + 60n * SECOND);
  stage.push(rec({ user: "b" }, {}));
  clock.advance(START + 120n * SECOND);
  assert.deepEqual(emitted.map((r) => r.tags.user), ["a", OTHER, "b"]);
});

Deno.test("window() stamps every record of one flush with the tick time", async () => {
  const { stage, emitted, clock } = await buildStage(windowStage, {
    every: "10s",
    group_by: ["user"],
    fields: { n: { agg: "count" } },
  });
  clock.advance(START + 3n * SECOND);
  stage.push(rec({ user: "a" }, {}));
  clock.advance(START + 7n * SECOND);
  stage.push(rec({ user: "b" }, {}));
  stage.push(rec({ user: "c" }, {}));
  clock.advance(START + 15n * SECOND);
  assert.equal(emitted.length, 3);
  for (const r of emitted) assert.equal(r.time, START + 10n * SECOND);
});

Deno.test("window() emits the partial window on flush and starts empty afterwards", async () => {
  const { stage, emitted, clock } = await buildStage(windowStage, {
    every: "60s",
    fields: { n: { agg: "count" } },
  });
  clock.advance(START + 25n * SECOND);
  stage.push(rec({}, {}));
  stage.push(rec({}, {}));
  await stage.flush("shutdown");
  assert.deepEqual(emitted.map((r) => [r.fields.n, r.time]), [[2n, START + 25n * SECOND]]);
  await stage.flush("shutdown");
  clock.advance(START + 60n * SECOND);
  assert.equal(emitted.length, 1);
});

Deno.test("window() emits nothing for an empty window or a series without records", async () => {
  const { stage, emitted, clock } = await buildStage(windowStage, {
    every: "60s",
    group_by: ["user"],
    fields: { n: { agg: "count" } },
  });
  clock.advance(START + 300n * SECOND);
  assert.equal(emitted.length, 0);
  stage.push(rec({ user: "a" }, {}));
  stage.push(rec({ user: "b" }, {}));
  clock.advance(START + 360n * SECOND);
  stage.push(rec({ user: "b" }, {}));
  clock.advance(START + 420n * SECOND);
  clock.advance(START + 600n * SECOND);
  assert.deepEqual(emitted.map((r) => [r.tags.user, r.time]), [
    ["a", START + 360n * SECOND],
    ["b", START + 360n * SECOND],
    ["b", START + 420n * SECOND],
  ]);
});

Deno.test("window() never mixes measurements, hosts or sources", async () => {
  const { stage, emitted } = await buildStage(windowStage, {
    every: "60s",
    group_by: ["host"], // already in the key: changes nothing
    fields: { n: { agg: "count" } },
  });
  stage.push(rec({}, {}));
  stage.push(rec({}, {}, "netflow"));
  stage.push(rec({ host: "h2" }, {}));
  stage.push(rec({ source: "other" }, {}));
  stage.push(rec({}, {}));
  await stage.flush("shutdown");
  assert.deepEqual(
    emitted.map((r) => [r.measurement, r.tags, r.fields.n]),
    [
      ["bash", { host: "h1", source: "bash" }, 2n],
      ["netflow", { host: "h1", source: "bash" }, 1n],
      ["bash", { host: "h2", source: "bash" }, 1n],
      ["bash", { host: "h1", source: "other" }, 1n],
    ],
  );
});

Deno.test("window() omits a group_by tag the series' records lack", async () => {
  const { stage, emitted } = await buildStage(windowStage, {
    every: "60s",
    group_by: ["user"],
    fields: { n: { agg: "count" } },
  });
  stage.push(rec({}, {}));
  stage.push(rec({ user: "" }, {}));
  await stage.flush("shutdown");
  assert.deepEqual(emitted.map((r) => r.tags), [
    { host: "h1", source: "bash" },
    { host: "h1", source: "bash", user: "" },
  ]);
});

Deno.test("window() leaves input records unchanged", async () => {
  const { stage } = await buildStage(windowStage, { every: "60s", fields: ALL_AGGS });
  const records = [rec({ user: "a" }, { lat: 1n }), rec({}, { lat: "x" })];
  const copies = structuredClone(records);
  for (const r of records) stage.push(r);
  await stage.flush("shutdown");
  assert.deepEqual(records, copies);
});

Deno.test("window() stops ticking after close", async () => {
  const { stage, emitted, clock } = await buildStage(windowStage, {
    every: "60s",
    fields: { n: { agg: "count" } },
  });
  stage.push(rec({}, {}));
  await stage.close();
  clock.advance(START + 600n * SECOND);
  assert.deepEqual(emitted, []);
});

Deno.test("window() rejects an unknown aggregation with its position and a suggestion", () => {
  const errors = errorsOf({ every: "60s", fields: { lat: { from: "latency", agg: "meen" } } });
  assert.equal(errors.length, 1);
  const [e] = errors;
  assert.equal(e.path, "test.window.fields.lat.agg");
  assert.match(e.message, /unknown aggregation "meen" \(did you mean "mean"\?\)/);
  assert.ok(e.line > 0 && e.column > 0, `${e.line}:${e.column}`);
});

Deno.test("window() reports every problem in fields at once", () => {
  const errors = errorsOf({
    every: "60s",
    fields: {
      a: { agg: "sum" }, // no from
      b: { from: "x", agg: "count" }, // count takes no from
      c: { frm: "x", agg: "max" }, // typo
      d: "sum", // not a mapping
      e: { from: "x" }, // no agg
    },
  });
  assert.deepEqual(errors.map((e) => [e.path, e.reason]), [
    ["test.window.fields.a", "needs from: the field to aggregate"],
    ["test.window.fields.b.from", "count counts records and reads no field; remove from"],
    // No "needs from" for c: the did-you-mean already says it.
    ["test.window.fields.c.frm", 'unknown key "frm" (did you mean "from"?); known: from, agg, per'],
    ["test.window.fields.d", 'expected {from: <field>, agg: <aggregation>}, got "sum"'],
    ["test.window.fields.e", "needs agg: one of count, sum, mean, max, min, last"],
  ]);
  for (const e of errors) assert.ok(e.line > 0 && e.column > 0, e.message);
});

Deno.test("window() requires a non-empty fields mapping and a whole-millisecond every", () => {
  assert.deepEqual(errorsOf({ every: "60s", fields: {} }).map((e) => e.path), [
    "test.window.fields",
  ]);
  assert.deepEqual(errorsOf({ fields: { n: { agg: "count" } } }).map((e) => e.path), [
    "test.window.every",
  ]);
  assert.deepEqual(
    errorsOf({ every: "1.0005s", fields: { n: { agg: "count" } } }).map((e) => e.reason),
    ['expected whole milliseconds, got "1.0005s"'],
  );
  assert.deepEqual(
    errorsOf({ every: "60s", max_series: 0, fields: { n: { agg: "count" } } }).map((e) => e.path),
    ["test.window.max_series"],
  );
});

Deno.test("window() example validates and explains itself", () => {
  const { config, errors } = configureStage(windowStage, windowStage.example);
  assert.deepEqual(errors, []);
  // deno-lint-ignore no-explicit-any
  assert.deepEqual(windowStage.explain!(config as any), {
    details: ["every 1m by [user] → commands=count(), longest=max(cmd_length); max 10000 series"],
  });
});

Deno.test("window() counts records older than the window they arrive in as late_records", async () => {
  const { stage, emitted, counters, clock } = await buildStage(windowStage, {
    every: "60s",
    fields: { n: { agg: "count" } },
  });
  stage.push(rec({}, {})); // at START, in the window [START, START+60s)
  clock.advance(START + 60n * SECOND);
  // Arrives after its window closed (a DNS answer after the tick): counted in the new one.
  stage.push({ ...rec({}, {}), time: START + 59n * SECOND });
  stage.push({ ...rec({}, {}), time: START + 61n * SECOND });
  await stage.flush("shutdown");
  assert.deepEqual(emitted.map((r) => r.fields.n), [1n, 2n]);
  assert.equal(counters.get("late_records", { stage: "window" }), 1n);
});

Deno.test("window() reports how late the last window closed as window_lag_ms", async () => {
  // A clock whose timers fire 250 ms after their tick, like a busy event loop.
  class LateClock extends ManualClock {
    override now(): bigint {
      return super.now() + 250_000_000n;
    }
  }
  const clock = new LateClock(START);
  const { stage, counters } = await buildStage(windowStage, {
    every: "60s",
    fields: { n: { agg: "count" } },
  }, clock);
  stage.push({ ...rec({}, {}), time: clock.now() });
  clock.advance(START + 60n * SECOND);
  assert.equal(counters.get("window_lag_ms", { stage: "window" }), 250n);
  await stage.close();
});

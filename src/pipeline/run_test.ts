/**
 * The runtime without a kernel: probes are injected, outputs capture. Covers reload (kept
 * stages keep state, added stages start, removed ones flush, a failed reload changes nothing)
 * and feeding a slow output without loss.
 */
import assert from "node:assert/strict";
import { Counters } from "../counters.ts";
import type { Logger } from "../log.ts";
import type { Record } from "../record.ts";
import { ManualClock } from "./clock.ts";
import { parsePipeline } from "./load.ts";
import { REGISTRY } from "./registry.ts";
import { startPipeline } from "./run.ts";
import type { StageContext, StageDef } from "./stage.ts";

/** Records each `capture` output received, by output name; `delay_ms` makes it slow. */
const captured = new Map<string, Record[]>();
const contexts = new Map<string, StageContext>();
const captureOutput: StageDef = {
  type: "capture",
  kind: "output",
  describe: "Test-only: keeps every record it gets.",
  schema: {
    delay_ms: { type: "integer", default: 0, min: 0, doc: "wait this long on every 100th push" },
  },
  example: {},
  build(config, ctx) {
    const got: Record[] = [];
    captured.set(ctx.name, got);
    contexts.set(ctx.name, ctx);
    return {
      push(r) {
        got.push(r);
        // Every 100th record, push back for a while: the runtime must queue, not drop.
        if (config.delay_ms && got.length % 100 === 0) {
          return new Promise((ok) => setTimeout(ok, config.delay_ms));
        }
      },
      flush() {},
      close() {},
    };
  },
};
(REGISTRY.outputs as Map<string, StageDef>).set("capture", captureOutput);

const cmd = (c: string, t: bigint): Record => ({
  measurement: "bash",
  tags: { host: "h", source: "bash" },
  fields: { cmd: c, message: c, pid: "1", user: "root" },
  time: t,
});
const T = 1_767_225_600_000_000_000n; // 2026-01-01T00:00:00Z
const S = 1_000_000_000n;
const quiet = { info() {}, warn() {}, debug() {} };

const BASE = `version: 1
probes:
  bash: { type: bash }
windows:
  per_hour: { inputs: [bash], every: 1h, fields: { n: { agg: count } } }
outputs:
  out: { type: capture, inputs: [bash] }
  hourly: { type: capture, inputs: [per_hour] }
`;
const WITH_FILTER = BASE.replace(
  "outputs:",
  "transforms:\n  no_ls: { type: filter, inputs: [bash], drop: { field: cmd, equals: ls } }\noutputs:",
).replace("out: { type: capture, inputs: [bash] }", "out: { type: capture, inputs: [no_ls] }");

async function start(text: string, clock = new ManualClock(T), log: Logger = quiet) {
  const counters = new Counters();
  const running = await startPipeline(parsePipeline("p.yaml", text), {
    host: "h",
    counters,
    log,
    clock,
  }, {
    probes: "injected",
  });
  return { running, counters, clock };
}

Deno.test("reload adds a filter: records before pass, records after are filtered, each exactly once", async () => {
  const { running, counters } = await start(BASE);
  const out = () => captured.get("out")!.map((r) => r.fields.cmd);
  running.inject("bash", cmd("ls", T));
  running.inject("bash", cmd("make", T + S));
  const report = await running.reload(parsePipeline("p.yaml", WITH_FILTER));
  assert.deepEqual(report.started, ["no_ls"]);
  assert.deepEqual(report.stopped, []);
  assert.deepEqual(report.kept.sort(), ["bash", "hourly", "out", "per_hour"]);
  running.inject("bash", cmd("ls", T + 2n * S));
  running.inject("bash", cmd("make test", T + 3n * S));
  await running.stop();
  assert.deepEqual(out(), ["ls", "make", "make test"]);
  assert.equal(counters.get("records_filtered", { stage: "no_ls" }), 1n);
  assert.equal(counters.get("reloads", { result: "ok" }), 1n);
});

Deno.test("reload keeps an unchanged window's state: its sums span the reload", async () => {
  const { running } = await start(BASE);
  for (let i = 0; i < 3; i++) running.inject("bash", cmd("a", T + BigInt(i) * S));
  await running.reload(parsePipeline("p.yaml", WITH_FILTER));
  for (let i = 3; i < 5; i++) running.inject("bash", cmd("b", T + BigInt(i) * S));
  await running.stop();
  const hourly = captured.get("hourly")!;
  assert.equal(hourly.length, 1, "one window, emitted once at shutdown");
  assert.equal(hourly[0].fields.n, 5n, "3 before the reload + 2 after");
});

Deno.test("reload removes a window: it flushes what it holds before it stops", async () => {
  const { running } = await start(BASE);
  running.inject("bash", cmd("a", T));
  running.inject("bash", cmd("b", T + S));
  const without = BASE.replace(/ {2}per_hour:.*\n/, "").replace(/windows:\n/, "").replace(
    / {2}hourly:.*\n/,
    "",
  );
  const report = await running.reload(parsePipeline("p.yaml", without));
  assert.deepEqual(report.stopped.sort(), ["hourly", "per_hour"]);
  assert.equal(captured.get("hourly")![0].fields.n, 2n, "the partial window reached its output");
  await running.stop();
});

Deno.test("a reload whose new stage cannot start changes nothing", async () => {
  const { running } = await start(BASE);
  running.inject("bash", cmd("before", T));
  const broken = BASE.replace(
    "outputs:",
    "outputs:\n  f: { type: file, inputs: [bash], path: /nonexistent-dir-for-test/x.jsonl }",
  );
  await assert.rejects(running.reload(parsePipeline("p.yaml", broken)), /nonexistent-dir-for-test/);
  running.inject("bash", cmd("after", T + S));
  await running.stop();
  assert.deepEqual(captured.get("out")!.map((r) => r.fields.cmd), ["before", "after"]);
  assert.equal(captured.get("hourly")![0].fields.n, 2n);
});

Deno.test("a feeder that waits while busy loses nothing to a slow output", async () => {
  const { running, counters } = await start(
    BASE.replace(
      "out: { type: capture, inputs: [bash] }",
      "out: { type: capture, inputs: [bash], delay_ms: 2 }",
    ),
  );
  const n = 25_000; // more than the 10,000-record queue
  for (let i = 0; i < n; i++) {
    running.inject("bash", cmd(`c${i}`, T + BigInt(i)));
    if (running.busy) await running.idle();
  }
  await running.stop();
  assert.equal(captured.get("out")!.length, n);
  assert.equal(counters.get("records_dropped", { stage: "out", reason: "queue_full" }), 0n);
});

Deno.test("without waiting, a slow output's queue is bounded and the overflow is counted", async () => {
  const { running, counters } = await start(
    BASE.replace(
      "out: { type: capture, inputs: [bash] }",
      "out: { type: capture, inputs: [bash], delay_ms: 5 }",
    ),
  );
  const n = 12_000; // the 10,000-record queue overflows
  for (let i = 0; i < n; i++) running.inject("bash", cmd(`c${i}`, T + BigInt(i)));
  await running.stop();
  const got = captured.get("out")!.length;
  const dropped = counters.get("records_dropped", { stage: "out", reason: "queue_full" });
  assert.ok(dropped > 0n, "the queue overflowed");
  assert.equal(BigInt(got) + dropped, BigInt(n), "every record is either delivered or counted");
});

Deno.test("a queue's length is a gauge when counters are read; its overflow is one warning", async () => {
  const warnings: string[] = [];
  const { running, counters } = await start(
    BASE.replace(
      "out: { type: capture, inputs: [bash] }",
      "out: { type: capture, inputs: [bash], delay_ms: 5 }",
    ),
    new ManualClock(T),
    { ...quiet, warn: (m: string) => void warnings.push(m) },
  );
  for (let i = 0; i < 12_000; i++) running.inject("bash", cmd(`c${i}`, T + BigInt(i)));
  // What the collector probe (or a /metrics scrape) reads while the output is behind.
  const length = contexts.get("out")!.counterSnapshot()
    .find((c) => c.name === "queue_length" && c.labels.stage === "out");
  assert.equal(length?.value, 10_000n);
  await running.stop();
  const dropped = counters.get("records_dropped", { stage: "out", reason: "queue_full" });
  assert.deepEqual(warnings, [
    `out: ${dropped} records dropped (queue_full: the stage could not keep up: its queue of ` +
    `10000 records was full)`,
  ]);
  assert.equal(counters.get("queue_length", { stage: "out" }), 0n, "drained by the stop");
});

Deno.test("a chain of 998 transforms hands each record on without recursion, in order", async () => {
  const chain = Array.from(
    { length: 998 },
    (_, i) =>
      `  t${i}: { type: filter, inputs: [${
        i ? `t${i - 1}` : "bash"
      }], drop: { field: x, exists: true } }`,
  );
  const text = `version: 1\nprobes:\n  bash: { type: bash }\ntransforms:\n${chain.join("\n")}\n` +
    "outputs:\n  out: { type: capture, inputs: [t997] }\n";
  const { running, counters } = await start(text);
  // Called with 1,000 frames of stack left (a probe's poll callback may be that deep): enough
  // for a loop, not for 998 stages handing the record on by recursion (4 frames each).
  let depth = 0;
  const down = (n: number, then: () => void): void => {
    depth++;
    if (n <= 0) then();
    else down(n - 1, then);
  };
  try {
    down(Infinity, () => {}); // how deep it can go
  } catch { /* RangeError: the stack is full */ }
  down(depth - 1000, () => running.inject("bash", cmd("a", T)));
  running.inject("bash", cmd("b", T + S));
  await running.stop();
  assert.deepEqual(captured.get("out")!.map((r) => r.fields.cmd), ["a", "b"]);
  assert.equal(counters.get("records_dropped", { stage: "t500", reason: "error" }), 0n);
});

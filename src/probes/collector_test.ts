import assert from "node:assert/strict";
import { buildStage } from "../pipeline/testing.ts";
import { collectorProbe, collectorRecords } from "./collector.ts";

const PROCESS = {
  rss: 60_000_000,
  heapUsed: 9_000_000,
  userUs: 1500.4,
  systemUs: 700,
  uptimeMs: 42_000,
};

Deno.test("collectorRecords(): one record per stage with its counters, one for the process", () => {
  const records = collectorRecords(
    [
      { name: "records_in", labels: { stage: "out" }, value: 12n },
      { name: "ring_lost", labels: { stage: "netflow" }, value: 3n },
      { name: "records_dropped", labels: { stage: "out", reason: "queue_full" }, value: 2n },
      { name: "reloads", labels: { result: "ok" }, value: 1n }, // not a stage's: left out
    ],
    PROCESS,
    "h",
    7n,
  );
  assert.deepEqual(records.map((r) => [r.tags.stage, r.fields]), [
    ["netflow", { ring_lost: 3n }],
    ["out", { records_in: 12n, records_dropped_queue_full: 2n }],
    ["_process", {
      rss_bytes: 60_000_000n,
      heap_used_bytes: 9_000_000n,
      cpu_user_us: 1500n,
      cpu_system_us: 700n,
      uptime_ms: 42_000n,
    }],
  ]);
  for (const r of records) {
    assert.equal(r.measurement, "ebpf_collector");
    assert.equal(r.tags.source, "ebpf_collector");
    assert.equal(r.time, 7n);
  }
});

Deno.test("collector probe reports on every tick of its clock, aligned", async () => {
  const under = await buildStage(collectorProbe, { every: "10s" });
  under.counters.add("records_in", 5, { stage: "console" });
  const t0 = under.clock.now();
  const next = (t0 / 10_000_000_000n + 1n) * 10_000_000_000n;
  under.clock.advance(next + 25_000_000_000n); // 3 ticks
  await under.stage.close();
  const processRows = under.emitted.filter((r) => r.tags.stage === "_process");
  assert.equal(processRows.length, 3);
  assert.deepEqual(processRows.map((r) => r.time), [
    next,
    next + 10_000_000_000n,
    next + 20_000_000_000n,
  ]);
  const consoleRow = under.emitted.find((r) => r.tags.stage === "console");
  assert.equal(consoleRow?.fields.records_in, 5n);
  assert.ok(Number(processRows[0].fields.rss_bytes) > 10_000_000, "a real RSS");
});

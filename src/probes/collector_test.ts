import assert from "node:assert/strict";
import { buildStage } from "../pipeline/testing.ts";
import type { StageContext } from "../pipeline/stage.ts";
import { collectorProbe, collectorRecords } from "./collector.ts";
import { watchMapFill } from "./map_fill.ts";

const PROCESS = {
  rss: 60_000_000,
  heapUsed: 9_000_000,
  userUs: 1500.4,
  systemUs: 700,
  cpuPercent: 1.25,
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
      cpu_percent: 1.25,
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

Deno.test("collectorRecords(): each map's entries and capacity give its fill ratio, a float", () => {
  const [flows] = collectorRecords(
    [
      { name: "map_capacity", labels: { stage: "flows", map: "tcp_socks" }, value: 16n },
      { name: "map_entries", labels: { stage: "flows", map: "tcp_socks" }, value: 16n },
      { name: "map_capacity", labels: { stage: "flows", map: "udp_flows" }, value: 64n },
      { name: "map_entries", labels: { stage: "flows", map: "udp_flows" }, value: 16n },
    ],
    PROCESS,
    "h",
    7n,
  );
  assert.deepEqual(flows.fields, {
    map_capacity_tcp_socks: 16n,
    map_entries_tcp_socks: 16n,
    map_fill_tcp_socks: 1,
    map_capacity_udp_flows: 64n,
    map_entries_udp_flows: 16n,
    map_fill_udp_flows: 0.25,
  });
});

Deno.test("collector probe counts watched maps just before each report", async () => {
  const under = await buildStage(collectorProbe, { every: "1s" });
  let entries = 3;
  const ctx = {
    name: "flows",
    counters: under.counters.bound({ stage: "flows" }),
    log: { info() {}, warn() {}, debug() {} },
  } as unknown as StageContext;
  const fill = watchMapFill(ctx, [{ map: "pending", capacity: 4, entries: () => entries }]);
  entries = 4; // changes after the last count: the report must count again
  under.clock.advance(under.clock.now() + 1_000_000_000n);
  fill.stop();
  await under.stage.close();
  const row = under.emitted.find((r) => r.tags.stage === "flows");
  assert.equal(row?.fields.map_entries_pending, 4n);
  assert.equal(row?.fields.map_fill_pending, 1);
  const own = under.emitted.find((r) => r.tags.stage === "_process");
  assert.equal(typeof own?.fields.cpu_percent, "number");
});

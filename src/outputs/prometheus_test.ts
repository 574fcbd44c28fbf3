import assert from "node:assert/strict";
import type { Record } from "../record.ts";
import { labelValue, metricName, MetricsStore } from "./prometheus.ts";

const T = 1_795_622_040_000_000_000n;

function flow(port: string, read: bigint, rtt: bigint): Record {
  return {
    measurement: "netflow",
    tags: { host: "web-1", dst_port: port, direction: "outgoing", dst_domain: "" },
    fields: { bytes_read: read, rtt, process: "curl" }, // a string field: not a metric
    time: T,
  };
}

Deno.test("MetricsStore: counted fields add up as _total counters, the rest are last-value gauges", () => {
  const store = new MetricsStore({ maxSeries: 100, idleMs: 60_000 });
  store.add(flow("443", 100n, 30n), 0);
  store.add(flow("443", 50n, 40n), 1);
  store.add(flow("80", 7n, 5n), 2);
  assert.equal(
    store.render(),
    [
      "# HELP netflow_bytes_read_total Sum of bytes_read of the netflow records this output received.",
      "# TYPE netflow_bytes_read_total counter",
      'netflow_bytes_read_total{direction="outgoing",dst_port="443",host="web-1"} 150',
      'netflow_bytes_read_total{direction="outgoing",dst_port="80",host="web-1"} 7',
      "# HELP netflow_rtt Last rtt of the netflow records this output received.",
      "# TYPE netflow_rtt gauge",
      'netflow_rtt{direction="outgoing",dst_port="443",host="web-1"} 40',
      'netflow_rtt{direction="outgoing",dst_port="80",host="web-1"} 5',
      "",
    ].join("\n"),
  );
});

Deno.test("MetricsStore: netflow's failed connects and resets are counters", () => {
  const store = new MetricsStore({ maxSeries: 100, idleMs: 60_000 });
  const failures = { tcp_connect_refused: 2n, tcp_connect_timeouts: 1n, tcp_resets_sent: 3n };
  store.add({ measurement: "netflow", tags: { host: "h" }, fields: failures, time: T }, 0);
  store.add({ measurement: "netflow", tags: { host: "h" }, fields: failures, time: T }, 1);
  const text = store.render();
  for (const [name, per] of Object.entries(failures)) {
    assert.match(text, new RegExp(`# TYPE netflow_${name}_total counter`));
    assert.match(text, new RegExp(`netflow_${name}_total\\{host="h"\\} ${per * 2n}\n`));
  }
});

Deno.test("MetricsStore: idle series expire, and max_series refuses new ones, counted", () => {
  const store = new MetricsStore({ maxSeries: 3, idleMs: 1000 });
  store.add(flow("443", 1n, 1n), 0); // 2 series
  store.add(flow("80", 1n, 1n), 500); // 1 more fits, 1 refused
  assert.equal(store.size, 3);
  assert.equal(store.dropped, 1);
  assert.equal(store.expire(1400), 2, "the two of port 443 are idle for 1.4 s");
  assert.equal(store.size, 1);
  assert.equal(store.expire(1500), 0);
});

Deno.test("names and label values are made valid and escaped", () => {
  assert.equal(metricName("dns flow.latency-max"), "dns_flow_latency_max");
  assert.equal(metricName("9lives"), "_9lives");
  assert.equal(labelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
});

Deno.test("the collector's own counters are exposed as untyped ebpf_collector_*", () => {
  const store = new MetricsStore({ maxSeries: 10, idleMs: 1000 });
  const text = store.render([
    { name: "records_in", labels: { stage: "console" }, value: 12n },
    { name: "records_in", labels: { stage: "window" }, value: 3n },
  ]);
  assert.equal(
    text,
    [
      "# HELP ebpf_collector_records_in The collector's own records_in counter.",
      "# TYPE ebpf_collector_records_in untyped",
      'ebpf_collector_records_in{stage="console"} 12',
      'ebpf_collector_records_in{stage="window"} 3',
      "",
    ].join("\n"),
  );
});

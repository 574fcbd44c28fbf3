import assert from "node:assert/strict";
import { Counters } from "../counters.ts";
import { configureStage } from "../pipeline/testing.ts";
import type { Record } from "../record.ts";
import { VERSION } from "../version.ts";
import {
  bodyOf,
  DEFAULT_SUM_FIELDS,
  LOGS_PATH,
  METRICS_PATH,
  type OtlpItem,
  otlpOutput,
  otlpProtocol,
  partialSuccess,
} from "./otlp.ts";

const T0 = 1_795_622_018_000_000_000n;

function protocol(headers: { [name: string]: string } = {}) {
  const counters = new Counters();
  const p = otlpProtocol(
    { headers, sum_fields: [...DEFAULT_SUM_FIELDS] },
    counters.bound({}),
    "ctx-host",
  );
  return { p, counters };
}

/** The request body for `records` (one path), as the sender posts it. */
function body(records: Record[]): string {
  const { p } = protocol();
  const items = records.map((r) => p.encode(r)).filter((i): i is OtlpItem => i !== undefined);
  return p.bodyOf(items, p.pathOf(records[0]));
}

const resource = (host: string) => ({
  attributes: [
    { key: "host.name", value: { stringValue: host } },
    { key: "service.name", value: { stringValue: "ebpf-collector" } },
    { key: "service.version", value: { stringValue: VERSION } },
  ],
});

const NETFLOW: Record = {
  measurement: "netflow",
  tags: { host: "web-1", source: "netflow", dst_ip: "10.0.0.1", dst_port: "443", transport: "tcp" },
  fields: { bytes_read: 7n, bytes_written: 14n, rtt: 31n, comm: "curl" },
  time: T0 + 7n,
};

Deno.test("otlp bodyOf() builds the exact ExportMetricsServiceRequest JSON for a netflow record", () => {
  const attributes = [
    { key: "source", value: { stringValue: "netflow" } },
    { key: "dst_ip", value: { stringValue: "10.0.0.1" } },
    { key: "dst_port", value: { stringValue: "443" } },
    { key: "transport", value: { stringValue: "tcp" } },
  ];
  const point = (asInt: string) => ({ attributes, timeUnixNano: "1795622018000000007", asInt });
  const expected = {
    resourceMetrics: [{
      resource: resource("web-1"),
      scopeMetrics: [{
        scope: { name: "ebpf-collector" },
        metrics: [
          {
            name: "netflow.bytes_read",
            unit: "By",
            sum: { dataPoints: [point("7")], aggregationTemporality: 1, isMonotonic: true },
          },
          {
            name: "netflow.bytes_written",
            unit: "By",
            sum: { dataPoints: [point("14")], aggregationTemporality: 1, isMonotonic: true },
          },
          { name: "netflow.rtt", unit: "us", gauge: { dataPoints: [point("31")] } },
        ],
      }],
    }],
  };
  // Exact bytes, not only equal JSON: field order included.
  assert.equal(body([NETFLOW]), JSON.stringify(expected));
});

Deno.test("otlp bodyOf() builds the exact ExportLogsServiceRequest JSON for a bash record", () => {
  const cmd = 'echo "a b" \\ back\nslash héllo 世界 🎉';
  const bash: Record = {
    measurement: "bash",
    tags: { host: "web 1,x=y", source: "bash" },
    fields: { cmd, pid: "4242", user: "root" },
    time: T0 + 1000n,
  };
  const expected = {
    resourceLogs: [{
      resource: resource("web 1,x=y"),
      scopeLogs: [{
        scope: { name: "ebpf-collector" },
        logRecords: [{
          timeUnixNano: "1795622018000001000",
          severityNumber: 9,
          body: { stringValue: cmd },
          attributes: [
            { key: "pid", value: { stringValue: "4242" } },
            { key: "user", value: { stringValue: "root" } },
            { key: "source", value: { stringValue: "bash" } },
          ],
        }],
      }],
    }],
  };
  assert.equal(body([bash]), JSON.stringify(expected));
  assert.equal(protocol().p.pathOf(bash), LOGS_PATH);
});

Deno.test("otlp encode() sends floats as asDouble, skips strings and booleans, counts them", () => {
  const { p, counters } = protocol();
  const dns: Record = {
    measurement: "dnsflow",
    tags: { host: "h", source: "dnsflow" },
    fields: { count: 2n, rcode: 3n, latency: 1.5, name: "example.com", truncated: false },
    time: T0,
  };
  assert.equal(p.pathOf(dns), METRICS_PATH);
  const item = p.encode(dns)!;
  assert.ok("points" in item);
  assert.deepEqual(
    item.points.map((pt) => [pt.name, pt.sum, JSON.parse(pt.point).asInt ?? JSON.parse(pt.point)]),
    [
      ["dnsflow.count", true, "2"],
      ["dnsflow.rcode", false, "3"],
      ["dnsflow.latency", false, {
        attributes: [{ key: "source", value: { stringValue: "dnsflow" } }],
        timeUnixNano: "1795622018000000000",
        asDouble: 1.5,
      }],
    ],
  );
  assert.equal(counters.get("fields_skipped", {}), 2n);

  // Nothing numeric: nothing to send, counted.
  const none = p.encode({ ...dns, fields: { name: "example.com" } });
  assert.equal(none, undefined);
  assert.equal(counters.get("records_dropped", { reason: "no_metrics" }), 1n);
});

Deno.test("otlp encode() writes int64 exactly, skips integers beyond it, and non-finite doubles as strings", () => {
  const { p, counters } = protocol();
  const item = p.encode({
    measurement: "netflow",
    tags: { host: "h" },
    fields: {
      big: 2n ** 63n - 1n,
      neg: -(2n ** 63n),
      over: 2n ** 64n,
      nan: NaN,
      inf: -Infinity,
    },
    time: T0,
  })!;
  assert.ok("points" in item);
  assert.deepEqual(item.points.map((pt) => JSON.parse(pt.point)), [
    { attributes: [], timeUnixNano: String(T0), asInt: "9223372036854775807" },
    { attributes: [], timeUnixNano: String(T0), asInt: "-9223372036854775808" },
    { attributes: [], timeUnixNano: String(T0), asDouble: "NaN" },
    { attributes: [], timeUnixNano: String(T0), asDouble: "-Infinity" },
  ]);
  assert.equal(counters.get("fields_skipped", {}), 1n);
});

Deno.test("otlp encode() keeps log attribute keys unique: a tag named like a field gives way", () => {
  const { p } = protocol();
  const item = p.encode({
    measurement: "bash",
    tags: { host: "h", source: "bash", user: "tag-user" },
    fields: { cmd: "ls", user: "root", big: 2n ** 64n, n: 5n },
    time: T0,
  })!;
  assert.ok("log" in item);
  assert.deepEqual(JSON.parse(item.log).attributes, [
    { key: "user", value: { stringValue: "root" } },
    { key: "big", value: { stringValue: "18446744073709551616" } },
    { key: "n", value: { intValue: "5" } },
    { key: "source", value: { stringValue: "bash" } },
  ]);
});

Deno.test("otlp sends a bash_activity record as a log too: its cmd the body, what it did attributes", () => {
  const { p } = protocol();
  const record: Record = {
    measurement: "bash_activity",
    tags: { host: "h", source: "bash", user: "root" },
    fields: { cmd: "curl -s http://x | sh", cmd_id: "4619-1", exit_code: 0n, bytes_read: 5n },
    time: T0,
  };
  const item = p.encode(record)!;
  assert.ok("log" in item, "one log per command, not metrics summed across commands");
  assert.equal(p.pathOf(record), LOGS_PATH);
  const log = JSON.parse(item.log);
  assert.deepEqual(log.body, { stringValue: "curl -s http://x | sh" });
  assert.deepEqual(log.attributes.slice(0, 3), [
    { key: "cmd_id", value: { stringValue: "4619-1" } },
    { key: "exit_code", value: { intValue: "0" } },
    { key: "bytes_read", value: { intValue: "5" } },
  ]);
});

Deno.test("otlp bodyOf() groups a batch by host, then by metric name, in arrival order", () => {
  const flow = (host: string, n: bigint): Record => ({
    measurement: "netflow",
    tags: { host, source: "netflow" },
    fields: { bytes_read: n, rtt: n },
    time: T0 + n,
  });
  const { p } = protocol();
  const items = [flow("a", 1n), flow("b", 2n), flow("a", 3n)].map((r) => p.encode(r)!);
  const parsed = JSON.parse(bodyOf(items, METRICS_PATH));
  assert.deepEqual(
    parsed.resourceMetrics.map((rm: { resource: { attributes: { value: unknown }[] } }) =>
      rm.resource.attributes[0].value
    ),
    [{ stringValue: "a" }, { stringValue: "b" }],
  );
  const [a] = parsed.resourceMetrics[0].scopeMetrics;
  assert.deepEqual(
    a.metrics.map((m: { name: string; sum?: { dataPoints: [] }; gauge?: { dataPoints: [] } }) => [
      m.name,
      (m.sum ?? m.gauge)!.dataPoints.map((d: { asInt: string }) => d.asInt),
    ]),
    [["netflow.bytes_read", ["1", "3"]], ["netflow.rtt", ["1", "3"]]],
  );
});

Deno.test("otlp encode() takes the stage's host when a record has no host tag", () => {
  const { p } = protocol();
  const item = p.encode({ measurement: "x", tags: {}, fields: { v: 1n }, time: T0 })!;
  assert.equal(item.host, "ctx-host");
});

Deno.test("otlp headers() are JSON plus the configured ones", () => {
  const { p } = protocol({ "api-key": "s3cr3t", "X-Scope": "team" });
  const h = p.headers();
  assert.equal(h.get("content-type"), "application/json");
  assert.equal(h.get("api-key"), "s3cr3t");
  assert.equal(h.get("x-scope"), "team");
  assert.equal(h.get("content-encoding"), null, "the sender adds gzip itself");
});

Deno.test("otlp partialSuccess() counts rejected points and log records and says why", () => {
  const counters = new Counters();
  const c = counters.bound({});
  assert.equal(partialSuccess("", c), undefined);
  assert.equal(partialSuccess("{}", c), undefined);
  assert.equal(partialSuccess('{"partialSuccess":{}}', c), undefined);
  assert.equal(
    partialSuccess('{"partialSuccess":{"rejectedDataPoints":"3","errorMessage":"too old"}}', c),
    "partial success: rejected 3 data points: too old",
  );
  assert.equal(
    partialSuccess('{"partialSuccess":{"rejectedLogRecords":"2"}}', c),
    "partial success: rejected 2 log records",
  );
  assert.equal(counters.get("points_rejected", {}), 3n);
  assert.equal(counters.get("logs_rejected", {}), 2n);
});

Deno.test("otlp partialSuccess() ignores counts that are not counts and shows the message on one line", () => {
  const counters = new Counters();
  const c = counters.bound({});
  for (const n of ["1e400", '"18446744073709551616"', "-3", '"x"', "null", "2.5"]) {
    assert.equal(
      partialSuccess(`{"partialSuccess":{"rejectedDataPoints":${n}}}`, c),
      undefined,
      `${n}: not a count`,
    );
  }
  assert.equal(counters.get("points_rejected", {}), 0n);
  assert.equal(
    partialSuccess('{"partialSuccess":{"errorMessage":"bad\\npoint \\u001b[31m"}}', c),
    "partial success: rejected nothing: bad\\npoint \\u001b[31m",
  );
});

Deno.test("otlp config: the example validates; headers it sets itself or cannot send are rejected, values never shown", () => {
  assert.deepEqual(configureStage(otlpOutput, otlpOutput.example).errors, []);
  const { config, errors } = configureStage(otlpOutput, {
    headers: { "Content-Type": "text/plain", "bad name": "s3cr3t", "x-key": "line\nbreak-s3cr3t" },
  });
  assert.deepEqual(errors.map((e) => `${e.path}: ${e.reason}`), [
    "test.otlp.headers.Content-Type: is set by the output itself",
    "test.otlp.headers.bad name: not a valid HTTP header name and value",
    "test.otlp.headers.x-key: not a valid HTTP header name and value",
  ]);
  assert.ok(!errors.some((e) => e.message.includes("s3cr3t")));
  const defaults = configureStage(otlpOutput, {}).config as { url: string; batch_size: number };
  assert.equal(defaults.batch_size, 1000);
  assert.ok(config);
});

Deno.test("otlp explain() names the endpoints and the collector's host:port, not header values", () => {
  const { config } = configureStage(otlpOutput, { headers: { "api-key": "s3cr3t" } });
  const explained = otlpOutput.explain!(config as never);
  assert.deepEqual(explained.net, ["127.0.0.1:4318"]);
  assert.match(explained.details![0], /http:\/\/127\.0\.0\.1:4318\/v1\/metrics .*\/v1\/logs/);
  assert.match(explained.details![0], /headers api-key/);
  assert.ok(!JSON.stringify(explained).includes("s3cr3t"));
});

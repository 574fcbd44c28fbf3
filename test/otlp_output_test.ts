/**
 * The `otlp` output through the real stage (buildStage) against a stand-in OpenTelemetry
 * collector on loopback: no collector is packaged here, so test/_otlp_standin.ts receives the
 * requests and checks each against the official OTLP protos (see there), then these tests check
 * names, attributes, values and times of what arrived.
 */
import assert from "node:assert/strict";
import { buildStage } from "../src/pipeline/testing.ts";
import { otlpOutput } from "../src/outputs/otlp.ts";
import type { Record } from "../src/record.ts";
import { VERSION } from "../src/version.ts";
import { checkRequest, startOtlpStandin } from "./_otlp_standin.ts";

const T0 = 1_795_622_018_000_000_000n;
const TRICKY = 'echo "a b",c=d \\ back\nslash héllo 世界 🎉';

const NETFLOW_TAGS = {
  host: "web-1",
  source: "netflow",
  direction: "outgoing",
  family: "IPv4",
  pid: "4242",
  src_ip: "10.0.0.2",
  src_ip_type: "private",
  src_port: "*",
  dst_ip: "93.184.216.34",
  dst_ip_type: "other",
  dst_port: "443",
  transport: "tcp",
};

function netflow(i: number): Record {
  return {
    measurement: "netflow",
    tags: { ...NETFLOW_TAGS, dst_port: String(1000 + i) },
    fields: {
      bytes_read: BigInt(i) * 1000n,
      bytes_written: 2n ** 40n + BigInt(i),
      retransmits: 1n,
      tcp_established: 1n,
      tcp_closed: 0n,
      rtt: 31n,
      rtt_var: 4n,
    },
    time: T0 + BigInt(i),
  };
}

const DNSFLOW: Record = {
  measurement: "dnsflow",
  tags: {
    host: "web-1",
    source: "dnsflow",
    direction: "outgoing",
    dst_domain: "example.com",
    dst_ip: "1.1.1.1",
    dst_port: "53",
    transport: "udp",
  },
  // latency a float, as a window's mean is
  fields: { count: 3n, rcode: 3n, latency: 1_500_000.5, latency_max: 2_000_000n, qname: "x" },
  time: T0 + 5_000n,
};

const BASH: Record = {
  measurement: "bash",
  tags: { host: "web 2", source: "bash" },
  fields: { cmd: TRICKY, pid: "777", user: "root", message: "root ran a command" },
  time: T0 + 9_000n,
};

async function output(options: { [key: string]: unknown }) {
  // 10s: a loaded CI machine took over 2s to gzip and check a 1,000-record request; the tests of
  // timeouts set their own.
  return await buildStage(otlpOutput, { batch_age: "50ms", timeout: "10s", ...options });
}

Deno.test("otlp output (stand-in collector checking the official OTLP protos): netflow, dnsflow and bash arrive as metrics and logs with their names, attributes, values and times", async () => {
  await using collector = startOtlpStandin();
  const out = await output({ url: collector.url });
  await out.stage.push(netflow(1));
  await out.stage.push(DNSFLOW);
  await out.stage.push(BASH);
  await out.stage.flush("shutdown");
  await out.stage.close();

  assert.deepEqual(collector.problems, []);
  assert.deepEqual(collector.requests.map((r) => r.path).sort(), ["/v1/logs", "/v1/metrics"]);
  for (const r of collector.requests) {
    assert.equal(r.method, "POST");
    assert.equal(r.headers.get("content-type"), "application/json");
    assert.equal(r.headers.get("content-encoding"), "gzip", "gzip by default");
  }

  const points = collector.points();
  const resource = {
    "host.name": "web-1",
    "service.name": "ebpf-collector",
    "service.version": VERSION,
  };
  const { host: _, ...netflowAttributes } = NETFLOW_TAGS;
  const netflowPoint = (field: string, sum: boolean, value: string, unit?: string) => ({
    metric: `netflow.${field}`,
    kind: sum ? "sum" : "gauge",
    ...(unit ? { unit } : {}),
    ...(sum ? { aggregationTemporality: 1, isMonotonic: true } : {}),
    resource,
    scope: "ebpf-collector",
    attributes: { ...netflowAttributes, dst_port: "1001" },
    timeUnixNano: "1795622018000000001",
    value,
    valueKind: "asInt",
  });
  assert.deepEqual(points.filter((p) => p.metric.startsWith("netflow.")), [
    netflowPoint("bytes_read", true, "1000", "By"),
    netflowPoint("bytes_written", true, "1099511627777", "By"),
    netflowPoint("retransmits", true, "1"),
    netflowPoint("tcp_established", true, "1"),
    netflowPoint("tcp_closed", true, "0"),
    netflowPoint("rtt", false, "31", "us"),
    netflowPoint("rtt_var", false, "4", "us"),
  ]);

  const { host: __, ...dnsAttributes } = DNSFLOW.tags;
  const dns = points.filter((p) => p.metric.startsWith("dnsflow."));
  assert.deepEqual(
    dns.map((p) => [p.metric, p.kind, p.unit, p.valueKind, p.value]),
    [
      ["dnsflow.count", "sum", undefined, "asInt", "3"],
      ["dnsflow.rcode", "gauge", undefined, "asInt", "3"],
      ["dnsflow.latency", "gauge", "ns", "asDouble", 1_500_000.5],
      ["dnsflow.latency_max", "gauge", "ns", "asInt", "2000000"],
    ],
  );
  for (const p of dns) {
    assert.deepEqual(p.attributes, dnsAttributes);
    assert.deepEqual(p.resource, resource);
    assert.equal(p.timeUnixNano, "1795622018000005000");
  }
  assert.equal(out.counters.get("fields_skipped", { stage: "otlp" }), 1n, "qname is a string");

  assert.deepEqual(collector.logs(), [{
    resource: { ...resource, "host.name": "web 2" },
    scope: "ebpf-collector",
    timeUnixNano: "1795622018000009000",
    severityNumber: 9,
    body: TRICKY,
    attributes: { pid: "777", user: "root", message: "root ran a command", source: "bash" },
  }]);
  assert.equal(out.counters.get("records_sent", { stage: "otlp" }), 3n);
  assert.equal(out.counters.get("batches_sent", { stage: "otlp" }), 2n);
});

Deno.test("otlp output (stand-in collector): configured headers go with every request, are never logged", async () => {
  await using collector = startOtlpStandin();
  const out = await output({
    url: collector.url,
    headers: { "api-key": "s3cr3t", "X-Scope-OrgID": "team-a" },
    gzip: false,
  });
  await out.stage.push(netflow(1));
  await out.stage.push(BASH);
  await out.stage.flush("shutdown");
  await out.stage.close();
  assert.equal(collector.requests.length, 2);
  for (const r of collector.requests) {
    assert.equal(r.headers.get("api-key"), "s3cr3t");
    assert.equal(r.headers.get("x-scope-orgid"), "team-a");
    assert.equal(r.headers.get("content-encoding"), null);
  }
  assert.ok(!out.logs.some((l) => l.includes("s3cr3t")));
});

Deno.test("otlp output (stand-in collector): 2,500 records in batches of 1,000, every data point once, grouped by metric", async () => {
  await using collector = startOtlpStandin();
  const out = await output({ url: collector.url, batch_size: 1000 });
  for (let i = 0; i < 2500; i++) await out.stage.push(netflow(i));
  await out.stage.flush("shutdown");
  await out.stage.close();
  assert.equal(collector.requests.length, 3);
  // Each request: one resource (one host), seven metrics, each with all the batch's points.
  const first = JSON.parse(collector.requests[0].body);
  assert.equal(first.resourceMetrics.length, 1);
  const metrics = first.resourceMetrics[0].scopeMetrics[0].metrics;
  assert.equal(metrics.length, 7);
  assert.equal(metrics[0].sum.dataPoints.length, 1000);
  const bytes = collector.points().filter((p) => p.metric === "netflow.bytes_read");
  assert.equal(bytes.length, 2500);
  assert.deepEqual(
    bytes.map((p) => p.timeUnixNano),
    Array.from({ length: 2500 }, (_, i) => String(T0 + BigInt(i))),
  );
  assert.equal(out.counters.get("records_sent", { stage: "otlp" }), 2500n);
});

Deno.test("otlp output (stand-in collector): 429 with Retry-After is retried, a 400 is final", async () => {
  await using collector = startOtlpStandin((_req, n) => {
    if (n === 0) return new Response("slow down", { status: 429, headers: { "Retry-After": "1" } });
    if (n === 2) return new Response("bad", { status: 400 });
    return Response.json({});
  });
  const out = await output({ url: collector.url, batch_size: 1 });
  await out.stage.push(netflow(1)); // request 0: 429, then 1: ok
  await collector.waitFor(2, 5000);
  await out.stage.push(netflow(2)); // 2: rejected, dropped
  await out.stage.push(netflow(3)); // 3: ok
  await out.stage.flush("shutdown");
  await out.stage.close();
  assert.equal(collector.requests.length, 4);
  const [first, second] = collector.requests;
  assert.ok(second.at - first.at >= 950, `retried after ${second.at - first.at} ms`);
  assert.equal(second.body, first.body);
  const c = (name: string, labels = {}) => out.counters.get(name, { stage: "otlp", ...labels });
  assert.equal(c("retries"), 1n);
  assert.equal(c("records_dropped", { reason: "rejected" }), 1n);
  assert.equal(c("records_sent"), 2n);
  // Only what was accepted: dst_port 1001 once (not its 429) and 1003; 1002 was refused.
  const ports = collector.points().filter((p) => p.metric === "netflow.rtt")
    .map((p) => p.attributes.dst_port);
  assert.deepEqual(ports, ["1001", "1003"]);
});

Deno.test("otlp output (stand-in collector): a partial success is counted and logged, not sent again", async () => {
  await using collector = startOtlpStandin(() =>
    Response.json({ partialSuccess: { rejectedDataPoints: "2", errorMessage: "2 points too old" } })
  );
  const out = await output({ url: collector.url });
  await out.stage.push(netflow(1));
  await out.stage.flush("shutdown");
  await out.stage.close();
  assert.equal(collector.requests.length, 1);
  assert.equal(out.counters.get("points_rejected", { stage: "otlp" }), 2n);
  assert.equal(out.counters.get("records_sent", { stage: "otlp" }), 1n);
  assert.ok(
    out.logs.some((l) =>
      /\/v1\/metrics: partial success: rejected 2 data points: 2 points too old/.test(l)
    ),
    out.logs.join("\n"),
  );
});

Deno.test("otlp output (stand-in collector down, then back): spooled OTLP batches arrive, each record once", async () => {
  const spool = await Deno.makeTempDir();
  try {
    let up = false;
    await using collector = startOtlpStandin(() =>
      up ? Response.json({}) : new Response("unavailable", { status: 503 })
    );
    const out = await output({
      url: collector.url,
      batch_size: 10,
      buffer_records: 20,
      spool_dir: spool,
      max_backoff: "100ms",
    });
    for (let i = 0; i < 200; i++) {
      await out.stage.push(netflow(i));
      if (i % 20 === 0) await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(
      Number(out.counters.get("spooled_batches", { stage: "otlp" })) > 0,
      "batches were spooled during the outage",
    );
    up = true;
    await out.stage.push(BASH);
    await out.stage.flush("shutdown");
    await out.stage.close();
    // Shutdown spools what it could not send yet; a second stage on the same spool drains it.
    const again = await output({ url: collector.url, spool_dir: spool, max_backoff: "100ms" });
    await again.stage.flush("shutdown");
    await again.stage.close();
    const ports = collector.points().filter((p) => p.metric === "netflow.bytes_read")
      .map((p) => Number(p.attributes.dst_port) - 1000);
    assert.deepEqual(ports, Array.from({ length: 200 }, (_, i) => i), "all, in order, once");
    assert.equal(collector.logs().length, 1);
    assert.deepEqual([...Deno.readDirSync(spool)], [], "the spool drained");
  } finally {
    await Deno.remove(spool, { recursive: true });
  }
});

Deno.test("the OTLP stand-in refuses what the official protos do not allow (so its approval means something)", () => {
  const request = (path: string, body: unknown, type = "application/json") => ({
    method: "POST",
    path,
    headers: new Headers({ "content-type": type }),
    body: JSON.stringify(body),
  });
  const metric = (m: unknown) => ({
    resourceMetrics: [{ scopeMetrics: [{ scope: { name: "s" }, metrics: [m] }] }],
  });
  const point = { timeUnixNano: "1795622018000000000", asInt: "1" };
  const good = metric({ name: "a.b", gauge: { dataPoints: [point] } });
  assert.deepEqual(checkRequest(request("/v1/metrics", good)).problems, []);

  const refused: [string, ReturnType<typeof request>][] = [
    ["snake_case names", request("/v1/metrics", { resource_metrics: [] })],
    ["a misspelt field", request("/v1/metrics", metric({ name: "a", gauge: { datapoints: [] } }))],
    [
      "int64 as a JSON number",
      request(
        "/v1/metrics",
        metric({ name: "a", gauge: { dataPoints: [{ ...point, asInt: 1 }] } }),
      ),
    ],
    [
      "an enum by name",
      request(
        "/v1/metrics",
        metric({
          name: "a",
          sum: { dataPoints: [point], aggregationTemporality: "AGGREGATION_TEMPORALITY_DELTA" },
        }),
      ),
    ],
    [
      "sum and gauge in one metric",
      request(
        "/v1/metrics",
        metric({ name: "a", gauge: { dataPoints: [point] }, sum: { aggregationTemporality: 1 } }),
      ),
    ],
    [
      "a sum without temporality",
      request("/v1/metrics", metric({ name: "a", sum: { dataPoints: [point] } })),
    ],
    ["metrics posted to /v1/logs", request("/v1/logs", good)],
    ["protobuf content type", request("/v1/metrics", good, "application/x-protobuf")],
    ["an unknown path", request("/v1/metric", good)],
  ];
  for (const [what, req] of refused) {
    assert.notDeepEqual(checkRequest(req).problems, [], `refuses ${what}`);
  }
});

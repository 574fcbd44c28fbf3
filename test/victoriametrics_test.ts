/**
 * The `http` output (preset `influxdb`) against a real VictoriaMetrics (Debian's 1.79.5, started
 * by the test on loopback), the scale-out store of docs/fleet.md: an hour of netflow and dnsflow
 * windows, replayed through the collector run with the permissions `--explain` prints, reads back
 * through the Prometheus API series for series and value for value. Also: what VictoriaMetrics
 * makes of string fields, and that the pipelines in docs/fleet.md load.
 */
import assert from "node:assert/strict";
import { endpoint, type HttpConfig, httpOutput } from "../src/outputs/http.ts";
import { parsePipeline } from "../src/pipeline/load.ts";
import { encodeRecorded } from "../src/pipeline/recording.ts";
import { buildStage } from "../src/pipeline/testing.ts";
import type { Record } from "../src/record.ts";
import { explainedCommand, output, ROOT, tempPipeline } from "./_run_command.ts";
import {
  type ExportedSeries,
  labelKey,
  startVictoriametrics,
  victoriaTest,
} from "./_victoriametrics.ts";

const MINUTE = 60_000_000_000n;
const SECOND = 1_000_000_000n;
/** The hour replayed: whole minutes, ending well before now (VictoriaMetrics keeps 1y here). */
const T0 = (BigInt(Date.now()) * 1_000_000n / MINUTE - 120n) * MINUTE;
const HOST = "web-1";

/** A small deterministic generator (mulberry32), so each run replays the same hour. */
function random(seed: number): (n: number) => number {
  let a = seed;
  return (n) => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** A probe's netflow record, as the netflow probe emits it (no dst_domain yet). */
function flow(
  time: bigint,
  t: { [tag: string]: string },
  fields: { [field: string]: bigint },
): Record {
  const v6 = t.dst_ip.includes(":");
  const src = t.src_ip ?? (v6 ? "2001:db8::5" : "10.0.0.5");
  return {
    measurement: "netflow",
    tags: {
      host: HOST,
      source: "netflow",
      dst_domain: "",
      dst_ip_type: t.dst_ip.startsWith("203.") ? "other" : "private",
      family: v6 ? "IPv6" : "IPv4",
      src_ip: src,
      src_ip_type: "private",
      ...t,
    },
    fields,
    time,
  };
}

/** psql's connection to the database: one socket, open all hour. */
const DB_SOCKET = {
  direction: "outgoing",
  dst_ip: "10.0.0.12",
  dst_port: "5432",
  pid: "8121",
  process_name: "psql",
  src_port: "41002",
  transport: "tcp",
};

/**
 * An hour of what the probes of a busy web host emit, as a recording (`--record`'s format):
 * DNS requests and their answers (some NXDOMAIN, some timing out), short HTTPS connections out
 * from ephemeral ports, a long-lived database connection polled every 10 s, clients coming in
 * to nginx from rotating addresses, NTP over UDP. Returns the lines and the raw totals.
 */
function recordedHour(): { lines: string[]; bytesWritten: bigint; requests: bigint } {
  const rnd = random(11);
  const lines: string[] = [];
  let bytesWritten = 0n, requests = 0n;
  const add = (probe: string, r: Record, side = false) => {
    lines.push(encodeRecorded(probe, r, side));
    if (r.measurement === "netflow") bytesWritten += r.fields.bytes_written as bigint;
    if (r.measurement === "dnsflow") requests += r.fields.count as bigint;
  };
  const names = [
    { name: "api.example.com", ip: "10.0.3.7", qtype: "A", pid: "8130", comm: "curl" },
    { name: "db.internal", ip: "10.0.0.12", qtype: "A", pid: "8121", comm: "psql" },
    { name: "cdn.example.net", ip: "2001:db8::10", qtype: "AAAA", pid: "8130", comm: "curl" },
  ];
  for (let m = 0n; m < 60n; m++) {
    const at = (s: bigint) => T0 + m * MINUTE + s * SECOND;
    for (const [i, n] of names.entries()) {
      const t = at(BigInt(1 + i));
      add("dns", {
        measurement: "dns_answer",
        tags: { host: HOST },
        fields: { name: n.name, address: n.ip, ttl: 30n },
        time: t,
      }, true);
      const latency = BigInt(200_000 + rnd(800_000));
      add("dns", dnsRequest(t, n.name, n.qtype, n.pid, n.comm, 0, latency, rnd));
    }
    if (m % 10n === 3n) {
      add("dns", dnsRequest(at(7n), "nope.example", "A", "8130", "curl", 3, 310_000n, rnd));
    }
    if (m % 15n === 9n) {
      add("dns", dnsRequest(at(8n), "slow.example", "A", "8130", "curl", -1, undefined, rnd));
    }
    // Two short HTTPS connections a minute to each of the two web names, each closed at once.
    for (const [dst, s] of [["10.0.3.7", 10n], ["10.0.3.7", 40n], ["2001:db8::10", 20n]] as const) {
      add(
        "netflow",
        flow(at(s), {
          direction: "outgoing",
          dst_ip: dst,
          dst_port: "443",
          pid: "8130",
          process_name: "curl",
          src_port: String(32768 + rnd(28000)),
          transport: "tcp",
        }, {
          bytes_read: BigInt(4000 + rnd(60_000)),
          bytes_written: BigInt(300 + rnd(900)),
          retransmits: BigInt(rnd(10) === 0 ? 1 : 0),
          tcp_established: 1n,
          tcp_closed: 1n,
          ...rtt(BigInt(400 + rnd(600)), BigInt(100 + rnd(200))),
        }),
      );
    }
    // The database connection: one socket for the hour, its deltas every poll (10 s).
    for (let s = 5n; s < 60n; s += 10n) {
      add(
        "netflow",
        flow(at(s), DB_SOCKET, {
          bytes_read: BigInt(rnd(20_000)),
          bytes_written: BigInt(rnd(3000)),
          retransmits: 0n,
          tcp_established: m === 0n && s === 5n ? 1n : 0n,
          tcp_closed: 0n,
          ...rtt(BigInt(150 + rnd(100)), BigInt(40 + rnd(40))),
        }),
      );
    }
    // Clients of nginx: three of eight addresses a minute, from their own ephemeral ports.
    for (let c = 0; c < 3; c++) {
      add(
        "netflow",
        flow(at(BigInt(30 + c)), {
          direction: "incoming",
          dst_ip: `203.0.113.${1 + (Number(m) * 3 + c) % 8}`,
          dst_port: String(32768 + rnd(28000)),
          pid: "1207",
          process_name: "nginx",
          src_port: "443",
          transport: "tcp",
        }, {
          bytes_read: BigInt(500 + rnd(2000)),
          bytes_written: BigInt(10_000 + rnd(200_000)),
          retransmits: 0n,
          tcp_established: 1n,
          tcp_closed: 1n,
          ...rtt(BigInt(20_000 + rnd(30_000)), BigInt(5000 + rnd(5000))),
        }),
      );
    }
    // NTP: a bound port on both ends, UDP (bytes only).
    add(
      "netflow",
      flow(at(50n), {
        direction: "outgoing",
        dst_ip: "10.0.0.2",
        dst_port: "123",
        pid: "640",
        process_name: "chronyd",
        src_port: "123",
        transport: "udp",
      }, { bytes_read: 48n, bytes_written: 48n }),
    );
  }
  // The last poll of the hour, on its last second: the partial window flushed at the end.
  add(
    "netflow",
    flow(T0 + 60n * MINUTE - SECOND, DB_SOCKET, {
      bytes_read: 1n,
      bytes_written: 2n,
      retransmits: 0n,
      tcp_established: 0n,
      tcp_closed: 1n,
    }),
  );
  return { lines, bytesWritten, requests };
}

/** A socket's RTT fields as the netflow probe reports them: one sample. */
function rtt(rtt: bigint, rttVar: bigint) {
  return { rtt, rtt_var: rttVar, rtt_sum: rtt, rtt_var_sum: rttVar, rtt_samples: 1n };
}

/** A request as the dns probe reports it (count 1; no latency when it timed out). */
function dnsRequest(
  time: bigint,
  name: string,
  qtype: string,
  pid: string,
  comm: string,
  rcode: number,
  latency: bigint | undefined,
  rnd: (n: number) => number,
): Record {
  const v6 = qtype === "AAAA";
  const rcodeName = ({ 0: "NOERROR", 3: "NXDOMAIN", [-1]: "TIMEOUT" } as { [c: number]: string })[
    rcode
  ];
  return {
    measurement: "dnsflow",
    tags: {
      host: HOST,
      source: "dnsflow",
      direction: "outgoing",
      dst_domain: name,
      dst_ip: v6 ? "fd00::53" : "10.0.0.2",
      dst_ip_type: "private",
      dst_port: "53",
      family: v6 ? "IPv6" : "IPv4",
      pid,
      process_name: comm,
      qtype,
      rcode_name: rcodeName,
      src_ip: v6 ? "fd00::5" : "10.0.0.5",
      src_ip_type: "private",
      src_port: String(32768 + rnd(28000)),
      transport: "udp",
    },
    fields: latency === undefined
      ? { count: 1n, rcode: BigInt(rcode) }
      : { count: 1n, latency, latency_sum: latency, latency_max: latency, rcode: BigInt(rcode) },
    time,
  };
}

/** The pipeline: the default pipeline's netflow and dnsflow path, sent to VictoriaMetrics. */
function pipelineTo(url: string): string {
  return `version: 1
probes:
  netflow: { type: netflow }
  dns: { type: dns }
transforms:
  named: { type: dns_domain, inputs: [netflow], answers_from: dns }
  flows: { type: ephemeral_port, inputs: [named], range: "32768-60999" }
  requests: { type: ephemeral_port, inputs: [dns], range: "32768-60999" }
windows:
  netflow_per_minute:
    inputs: [flows]
    every: 60s
    group_by: [direction, dst_domain, dst_ip, dst_ip_type, dst_port, family, pid, process_name,
      src_ip, src_ip_type, src_port, transport]
    fields:
      bytes_read: { from: bytes_read, agg: sum }
      bytes_written: { from: bytes_written, agg: sum }
      retransmits: { from: retransmits, agg: sum }
      tcp_established: { from: tcp_established, agg: sum }
      tcp_closed: { from: tcp_closed, agg: sum }
      rtt: { from: rtt_sum, agg: mean, per: rtt_samples }
      rtt_var: { from: rtt_var_sum, agg: mean, per: rtt_samples }
  dnsflow_per_minute:
    inputs: [requests]
    every: 60s
    group_by: [direction, dst_domain, dst_ip, dst_ip_type, dst_port, family, pid, process_name,
      qtype, rcode_name, src_ip, src_ip_type, src_port, transport, truncated]
    fields:
      count: { from: count, agg: sum }
      latency: { from: latency_sum, agg: mean, per: count }
      latency_max: { from: latency_max, agg: max }
      rcode: { from: rcode, agg: last }
outputs:
  vm:
    type: http
    inputs: [netflow_per_minute, dnsflow_per_minute]
    preset: influxdb
    url: ${url}
    database: ebpf
  # What was sent, to compare with what VictoriaMetrics serves.
  sent: { type: stdout, inputs: [netflow_per_minute, dnsflow_per_minute], format: json }
`;
}

/** A stdout JSON line back to a record; `time` exact (ns beyond 2^53), fields as numbers. */
function parseSent(line: string): Record {
  return JSON.parse(
    line,
    (key, value, context?: { source?: string }) =>
      key === "time" && context?.source ? BigInt(context.source) : value,
  );
}

/**
 * What VictoriaMetrics should hold for `records` written with `?db=<db>`: one series per numeric
 * field, `<measurement>_<field>` with the tags (empty ones are not sent) and `db` as labels,
 * float64 values at millisecond times.
 */
function expectedSeries(records: Record[], db: string): Map<string, ExportedSeries> {
  const series = new Map<string, ExportedSeries>();
  for (const r of records) {
    for (const [field, value] of Object.entries(r.fields)) {
      const metric: { [label: string]: string } = { __name__: `${r.measurement}_${field}`, db };
      for (const [k, v] of Object.entries(r.tags)) if (v !== "") metric[k] = v;
      const key = labelKey(metric);
      const s = series.get(key) ?? { metric, values: [], timestamps: [] };
      s.values.push(Number(value));
      s.timestamps.push(Number(r.time / 1_000_000n));
      series.set(key, s);
    }
  }
  return series;
}

victoriaTest(
  "a replayed hour of netflow and dnsflow windows reads back from VictoriaMetrics series for series, value for value",
  async () => {
    await using vm = await startVictoriametrics();
    const hour = recordedHour();
    const recording = tempPipeline(hour.lines.join("\n") + "\n");
    const pipeline = tempPipeline(pipelineTo(vm.url));
    // Exactly the command --explain prints for this replay (the recording's read included).
    const command = await explainedCommand(pipeline, ["--replay", recording]);
    assert.ok(command.includes(`--allow-net=127.0.0.1:${vm.port}`), command.join(" "));
    const run = await output(Deno.execPath(), command.slice(1));
    const stderr = run.stderr;
    assert.equal(run.code, 0, stderr);
    const sent = run.stdout.split("\n").filter(Boolean).map(parseSent);

    // An hour of windows of both sets: 59 closed on the minute, the last one flushed at the end.
    const times = new Set(sent.map((r) => r.time));
    assert.equal(times.size, 60);
    assert.deepEqual(new Set(sent.map((r) => r.measurement)), new Set(["netflow", "dnsflow"]));
    assert.match(stderr, new RegExp(`records_sent\\{stage=vm\\}=${sent.length}( |$)`));

    await vm.flush();
    const stored = await vm.export('{db="ebpf"}');
    const expected = expectedSeries(sent, "ebpf");
    assert.ok(expected.size > 100, `${expected.size} series`);
    assert.deepEqual(
      stored.map((s) => labelKey(s.metric)),
      [...expected.keys()].sort(),
      "the same series",
    );
    for (const s of stored) {
      const want = expected.get(labelKey(s.metric))!;
      assert.deepEqual(s, want, `series ${labelKey(s.metric)}`);
    }

    // The Prometheus API agrees: the series list, and PromQL sums over the hour equal the raw
    // records' totals (bytes written by every flow, DNS requests made), ephemeral ports merged.
    assert.equal((await vm.series('{db="ebpf"}')).length, expected.size);
    const at = Number((T0 + 61n * MINUTE) / SECOND);
    const total = async (metric: string) => {
      const [only] = await vm.query(`sum(sum_over_time(${metric}{db="ebpf"}[2h]))`, at);
      return BigInt(only.value[1]);
    };
    assert.equal(await total("netflow_bytes_written"), hour.bytesWritten);
    assert.equal(await total("dnsflow_count"), hour.requests);
    const clients = await vm.series('netflow_bytes_read{db="ebpf",process_name="nginx"}');
    assert.equal(clients.length, 8, "one series per client address, its ports merged");
    assert.ok(clients.every((c) => c.dst_port === "*" && c.src_port === "443"));
  },
);

victoriaTest(
  "VictoriaMetrics 1.79 keeps a string field as a number: its value when it reads as one, else 0",
  async () => {
    await using vm = await startVictoriametrics();
    // Under /influx, as vminsert's /insert/<account>/influx: the base URL may carry a path.
    const out = await buildStage(httpOutput, {
      preset: "influxdb",
      url: `${vm.url}/influx`,
      database: "ebpf",
      batch_age: "50ms",
    });
    await out.stage.push({
      measurement: "bash",
      tags: { host: HOST, source: "bash" },
      fields: { cmd: "ls -l /etc", pid: "4619", user: "root" },
      time: T0,
    });
    await out.stage.flush("shutdown");
    await out.stage.close();
    assert.equal(out.counters.get("records_sent", { stage: "http" }), 1n);
    await vm.flush();
    const values = Object.fromEntries(
      (await vm.export('{db="ebpf"}')).map((s) => [s.metric.__name__, s.values]),
    );
    // The command and user are lost (0); pid survives only because it is digits.
    assert.deepEqual(values, { bash_cmd: [0], bash_pid: [4619], bash_user: [0] });
  },
);

victoriaTest(
  "a batch sent twice (at-least-once) is one sample in VictoriaMetrics run with -dedup.minScrapeInterval=1ms",
  async () => {
    const window: Record = {
      measurement: "netflow",
      tags: { host: HOST, source: "netflow", dst_ip: "10.0.3.7", dst_port: "443", src_port: "*" },
      fields: { bytes_written: 1200n, tcp_established: 2n },
      time: T0,
    };
    const sums: { [flags: string]: string } = {};
    for (const flags of [[], ["-dedup.minScrapeInterval=1ms"]]) {
      await using vm = await startVictoriametrics(flags);
      // The same batch twice, as when its 2xx was lost and the sender tried again.
      for (let attempt = 0; attempt < 2; attempt++) {
        const out = await buildStage(httpOutput, {
          preset: "influxdb",
          url: vm.url,
          database: "ebpf",
          batch_age: "50ms",
        });
        await out.stage.push(window);
        await out.stage.flush("shutdown");
        await out.stage.close();
      }
      await vm.flush();
      const [sum] = await vm.query(
        'sum_over_time(netflow_bytes_written{db="ebpf"}[1h])',
        Number((T0 + MINUTE) / SECOND),
      );
      sums[flags.join(" ") || "no flags"] = sum.value[1];
    }
    assert.deepEqual(sums, { "no flags": "2400", "-dedup.minScrapeInterval=1ms": "1200" });
  },
);

victoriaTest(
  "docs/fleet.md's per-Service queries sum each Service's and each pod's bytes over three nodes",
  async () => {
    await using vm = await startVictoriametrics();
    const out = await buildStage(httpOutput, {
      preset: "influxdb",
      url: vm.url,
      database: "ebpf",
      batch_age: "50ms",
    });
    // Windows of three nodes' flows: to cart's ClusterIP (DNAT to two pods, or folded closes
    // that could not be split: no pod), to kube-dns, and to an address of no Service.
    const dests: { [tag: string]: string }[] = [
      {
        dst_ip: "10.96.4.2",
        dst_k8s_namespace: "shop",
        dst_k8s_service: "cart",
        dst_k8s_pod: "cart-x2",
      },
      {
        dst_ip: "10.96.4.2",
        dst_k8s_namespace: "shop",
        dst_k8s_service: "cart",
        dst_k8s_pod: "cart-q8",
      },
      { dst_ip: "10.96.4.2", dst_k8s_namespace: "shop", dst_k8s_service: "cart" },
      { dst_ip: "10.96.0.10", dst_k8s_namespace: "kube-system", dst_k8s_service: "kube-dns" },
      { dst_ip: "203.0.113.9" },
    ];
    const rnd = random(23);
    const want = new Map<string, bigint>();
    const add = (key: string, n: bigint) => want.set(key, (want.get(key) ?? 0n) + n);
    for (let m = 0n; m < 60n; m++) {
      for (const host of ["node-a", "node-b", "node-c"]) {
        for (const d of dests) {
          const bytes = BigInt(1 + rnd(100_000));
          await out.stage.push({
            measurement: "netflow",
            tags: { host, source: "netflow", direction: "outgoing", dst_port: "80", ...d },
            fields: { bytes_written: bytes },
            time: T0 + m * MINUTE,
          });
          if (!d.dst_k8s_service) continue;
          add(`${d.dst_k8s_namespace}/${d.dst_k8s_service}`, bytes);
          add(`${d.dst_k8s_namespace}/${d.dst_k8s_service}/${d.dst_k8s_pod ?? ""}`, bytes);
        }
      }
    }
    await out.stage.flush("shutdown");
    await out.stage.close();
    await vm.flush();

    const queries = [
      ...Deno.readTextFileSync(`${ROOT}docs/fleet.md`).matchAll(
        /```promql\n(.*)\n```/g,
      ),
    ].map((m) => m[1]);
    assert.equal(queries.length, 2, "the two queries of the section");
    const at = Number((T0 + 59n * MINUTE + 30n * SECOND) / SECOND); // [1h] holds the hour
    const got = new Map<string, bigint>();
    // The first sums by Service, the second by Service and pod (no label: "").
    for (const [i, query] of queries.entries()) {
      for (const { metric: m, value } of await vm.query(query, at)) {
        const parts = [m.dst_k8s_namespace, m.dst_k8s_service, ...(i ? [m.dst_k8s_pod ?? ""] : [])];
        got.set(parts.join("/"), BigInt(value[1]));
      }
    }
    assert.deepEqual(
      [...got.entries()].sort(),
      [...want.entries()].sort(),
    );
  },
);

Deno.test("docs/fleet.md: each pipeline loads cleanly; the vminsert one posts to /insert/<account>/influx/write", () => {
  const text = Deno.readTextFileSync(`${ROOT}docs/fleet.md`);
  const blocks = [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.ok(blocks.length >= 3, `${blocks.length} yaml blocks`);
  const urls: string[] = [];
  for (const [i, yaml] of blocks.entries()) {
    const pipeline = parsePipeline(`docs/fleet.md block ${i + 1}`, yaml);
    assert.deepEqual(pipeline.warnings.map((w) => w.message), [], `block ${i + 1}: no warnings`);
    for (const stage of pipeline.stages.filter((s) => s.def === httpOutput)) {
      const config = stage.config as unknown as HttpConfig;
      urls.push(`${config.url}${endpoint(config, "netflow")}`);
    }
  }
  assert.ok(
    urls.includes("http://vminsert:8480/insert/0/influx/write?db=ebpf&precision=ns"),
    urls.join("\n"),
  );
});

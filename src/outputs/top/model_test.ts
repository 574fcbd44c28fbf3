import assert from "node:assert/strict";
import type { Record } from "../../record.ts";
import { IDLE_KEEP_MS, type ModelOptions, TopModel } from "./model.ts";

const T0 = 1_764_000_000_000; // ms

function flow(tMs: number, port: number, read: number, written: number, extra = {}): Record {
  return {
    measurement: "netflow",
    tags: {
      host: "h",
      source: "netflow",
      direction: "outgoing",
      dst_domain: "",
      dst_ip: "127.0.0.1",
      dst_port: String(port),
      pid: "42",
      process_name: "iperf3",
      transport: "tcp",
      ...extra,
    },
    fields: { bytes_read: BigInt(read), bytes_written: BigInt(written), retransmits: 1n, rtt: 80n },
    time: BigInt(tMs) * 1_000_000n,
  };
}

function dns(
  tMs: number,
  name: string,
  rcode: string,
  count: number,
  latencyNs?: number,
  pid = "7",
): Record {
  const fields: Record["fields"] = { count: BigInt(count), rcode: 0n };
  if (latencyNs !== undefined) {
    fields.latency_sum = BigInt(latencyNs * count);
    fields.latency_max = BigInt(latencyNs * 2);
  }
  return {
    measurement: "dnsflow",
    tags: { dst_domain: name, qtype: "A", pid, process_name: "curl", rcode_name: rcode },
    fields,
    time: BigInt(tMs) * 1_000_000n,
  };
}

const OPTIONS: ModelOptions = { windowMs: 5000, spanMs: 1000, maxRows: 100, maxCommands: 3 };

Deno.test("TopModel: a rate is the window's bytes over the time it covers, young flows included", () => {
  const m = new TopModel(OPTIONS);
  m.add(flow(T0, 5201, 1000, 5_000_000)); // 5 MB in the poll that ended at T0
  m.add(flow(T0 + 1000, 5201, 1000, 5_000_000));
  let [row] = m.snapshot(T0 + 1000).flows;
  assert.equal(row.outRate, 5_000_000, "two polls over the 2 s they cover");
  assert.equal(row.inRate, 1000);
  for (let s = 2; s <= 9; s++) m.add(flow(T0 + s * 1000, 5201, 1000, 5_000_000));
  [row] = m.snapshot(T0 + 9000).flows;
  assert.equal(row.outRate, 5_000_000, "five polls over the 5 s window");
  assert.equal(row.retransmits, 5);
  assert.equal(row.rttUs, 80);
  assert.equal(row.peer, "127.0.0.1:5201");
  assert.equal(row.direction, "out");
});

Deno.test("TopModel: a frame drawn just before a poll's records still shows the whole rate", () => {
  const m = new TopModel(OPTIONS);
  for (let s = 0; s <= 9; s++) m.add(flow(T0 + s * 1000, 5201, 0, 5_000_000));
  // The next poll is due at T0 + 10 s; a frame at T0 + 9.99 s has not seen it yet.
  assert.equal(m.snapshot(T0 + 9990).flows[0].outRate, 5_000_000);
});

Deno.test("TopModel: an IPv6 peer is bracketed and a name replaces the address", () => {
  const m = new TopModel(OPTIONS);
  m.add(flow(T0, 443, 1, 1, { dst_ip: "::1", dst_port: "443" }));
  m.add(flow(T0, 80, 1, 1, { dst_domain: "example.test" }));
  const peers = m.snapshot(T0).flows.map((r) => r.peer).sort();
  assert.deepEqual(peers, ["[::1]:443", "example.test:80"]);
});

Deno.test("TopModel: a DNS row counts queries, errors by rcode and latency; its rate is windowed", () => {
  const m = new TopModel(OPTIONS);
  m.add(dns(T0, "a.test", "NOERROR", 4, 1_000_000));
  m.add(dns(T0 + 1000, "a.test", "NXDOMAIN", 2, 3_000_000));
  m.add(dns(T0 + 1000, "a.test", "TIMEOUT", 1));
  m.add(dns(T0 + 1000, "a.test", "NOERROR", 1, 1_000_000, "8")); // another dig, same row
  const [row] = m.snapshot(T0 + 1000).dns;
  assert.equal(m.snapshot(T0 + 1000).dns.length, 1);
  assert.equal(row.pid, "8");
  assert.equal(row.total, 8);
  assert.equal(row.qps, 4); // 8 queries over 2 s
  assert.equal(row.errors, "NXDOMAIN:2 TIMEOUT:1");
  assert.equal(row.errorCount, 3);
  assert.equal(row.meanNs, (5 * 1e6 + 2 * 3e6) / 7, "timeouts have no latency");
  // Later the rate falls out of the window; the totals stay.
  const later = m.snapshot(T0 + 20_000).dns[0];
  assert.equal(later.qps, 0);
  assert.equal(later.total, 8);
  assert.equal(later.maxNs, 6e6);
  assert.equal(row.maxNs, 6e6);
  assert.equal(row.process, "curl");
});

Deno.test("TopModel: rows are bounded, refused ones counted, idle ones leave", () => {
  const full: string[] = [];
  const m = new TopModel({ ...OPTIONS, onFull: (t) => full.push(t) });
  for (let port = 1; port <= 150; port++) m.add(flow(T0, port, 1, 1));
  assert.equal(m.size.flows, 100);
  assert.equal(full.length, 50);
  assert.equal(m.snapshot(T0).flows.length, 100);
  m.snapshot(T0 + IDLE_KEEP_MS + 1);
  assert.equal(m.size.flows, 0);
});

Deno.test("TopModel: the latest commands, newest first, and the collector's CPU and memory", () => {
  const m = new TopModel(OPTIONS);
  for (let i = 0; i < 10; i++) {
    m.add({
      measurement: "bash",
      tags: { host: "h", source: "bash" },
      fields: { cmd: `echo ${i}`, pid: "9", user: "root", message: "" },
      time: BigInt(T0 + i) * 1_000_000n,
    });
  }
  m.add({
    measurement: "ebpf_collector",
    tags: { stage: "_process" },
    fields: { cpu_percent: 2.5, rss_bytes: 90_000_000n },
    time: BigInt(T0) * 1_000_000n,
  });
  const snap = m.snapshot(T0 + 10);
  assert.deepEqual(snap.commands.map((c) => c.cmd), ["echo 9", "echo 8", "echo 7"]);
  assert.equal(snap.cpuPercent, 2.5);
  assert.equal(snap.rssBytes, 90_000_000);
});

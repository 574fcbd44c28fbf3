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

Deno.test("TopModel: connect failures and resets are a flow's failures, over the window", () => {
  const m = new TopModel(OPTIONS);
  const refused = { tcp_connect_refused: 2n, tcp_resets_received: 1n, tcp_resets_sent: 1n };
  m.add({ ...flow(T0, 9, 0, 0), fields: refused });
  m.add({ ...flow(T0 + 1000, 9, 0, 0), fields: { tcp_connect_timeouts: 1n } });
  m.add(flow(T0 + 1000, 5201, 10, 10)); // a flow without failures has none
  const rows = m.snapshot(T0 + 1000).flows;
  assert.equal(rows.find((r) => r.peer === "127.0.0.1:9")?.failures, 5);
  assert.equal(rows.find((r) => r.peer === "127.0.0.1:5201")?.failures, 0);
  m.add(flow(T0 + 20_000, 5201, 10, 10));
  assert.equal(m.snapshot(T0 + 20_000).flows.find((r) => r.peer === "127.0.0.1:9")?.failures, 0);
});

Deno.test("TopModel: a Service or pod name, else the NAT destination, instead of a ClusterIP", () => {
  const m = new TopModel(OPTIONS);
  const clusterIp = { dst_ip: "10.96.0.10", dst_port: "80" };
  m.add(flow(T0, 80, 1, 1, { ...clusterIp, dst_k8s_service: "cart", dst_k8s_namespace: "shop" }));
  m.add(flow(T0, 80, 1, 1, { ...clusterIp, dst_ip: "10.96.0.11", dst_k8s_pod: "cart-7d9f-x2" }));
  m.add(flow(T0, 80, 1, 1, { ...clusterIp, dst_nat_ip: "10.244.1.5", dst_nat_port: "8080" }));
  m.add(flow(T0, 80, 1, 1, { dst_ip: "10.1.2.3", dst_port: "80" }));
  const peers = m.snapshot(T0).flows.map((r) => r.peer).sort();
  assert.deepEqual(peers, ["10.1.2.3:80", "cart-7d9f-x2:80", "cart.shop:80", "→10.244.1.5:8080"]);
});

Deno.test("TopModel: the same flow in two network namespaces is two rows", () => {
  const m = new TopModel(OPTIONS);
  m.add(flow(T0, 80, 1, 1, { netns: "4026531840" }));
  m.add(flow(T0, 80, 1, 1, { netns: "4026532500" }));
  assert.deepEqual(m.snapshot(T0).flows.map((r) => r.netns).sort(), ["4026531840", "4026532500"]);
});

function drop(tMs: number, reason: string, packets: number, bytes: number, extra = {}): Record {
  return {
    measurement: "netdrop",
    tags: {
      host: "h",
      source: "netdrop",
      reason,
      direction: "ingress",
      transport: "tcp",
      src_ip: "127.0.0.1",
      src_port: "9",
      dst_ip: "127.0.0.1",
      dst_port: "*",
      ...extra,
    },
    fields: { packets: BigInt(packets), bytes: BigInt(bytes), cgroup_id: 1n },
    time: BigInt(tMs) * 1_000_000n,
  };
}

Deno.test("TopModel: drops a second by reason, direction, ends and process; their sum for the status line", () => {
  const full: string[] = [];
  const m = new TopModel({ ...OPTIONS, maxRows: 2, onFull: (t) => full.push(t) });
  m.add(drop(T0, "NO_SOCKET", 10, 600));
  m.add(drop(T0 + 1000, "NO_SOCKET", 10, 600));
  m.add(drop(T0 + 1000, "NETFILTER_DROP", 3, 3000, {
    direction: "egress",
    src_port: "*",
    dst_ip: "198.18.0.2",
    dst_port: "80",
    pid: "88",
    process_name: "curl",
  }));
  m.add(drop(T0 + 1000, "SOCKET_RCVBUFF", 1, 100)); // a third kind: over maxRows
  assert.deepEqual(full, ["drops"]);
  const snap = m.snapshot(T0 + 1000);
  const bySocket = snap.drops.find((r) => r.reason === "NO_SOCKET")!;
  assert.equal(bySocket.packetRate, 10, "20 packets over the 2 s they cover");
  assert.equal(bySocket.byteRate, 600);
  assert.equal(bySocket.direction, "in");
  assert.equal(bySocket.localPort, "9");
  assert.equal(bySocket.peer, "127.0.0.1:*");
  const filtered = snap.drops.find((r) => r.reason === "NETFILTER_DROP")!;
  assert.deepEqual(
    [filtered.direction, filtered.process, filtered.pid, filtered.peer, filtered.packetRate],
    ["out", "curl", "88", "198.18.0.2:80", 3],
    "a new row's first poll covers its span (1 s)",
  );
  assert.equal(snap.dropRate, 13);
  assert.equal(m.snapshot(T0 + IDLE_KEEP_MS + 2000).dropRate, 0, "idle rows leave");
  assert.equal(m.size.drops, 0);
});

function typed(tMs: number, cmd: string, cmdId: string): Record {
  return {
    measurement: "bash",
    tags: { host: "h", source: "bash" },
    fields: { cmd, pid: "9", user: "root", cmd_id: cmdId },
    time: BigInt(tMs) * 1_000_000n,
  };
}

function activity(tMs: number, cmdId: string, fields: Record["fields"]): Record {
  return {
    measurement: "bash_activity",
    tags: { host: "h", source: "bash", user: "root" },
    fields: { cmd: "false", cmd_id: cmdId, pid: "9", ...fields },
    time: BigInt(tMs) * 1_000_000n,
  };
}

Deno.test("TopModel: a typed command shows at once; its bash_activity fills it in by cmd_id", () => {
  const m = new TopModel(OPTIONS);
  m.add(typed(T0, "false", "9-1"));
  m.add(typed(T0 + 10, "curl -s http://127.0.0.1:9/", "9-2"));
  let [curl, no] = m.snapshot(T0 + 10).commands;
  assert.equal(no.cmd, "false");
  assert.equal(no.exitCode, undefined, "nothing known yet");
  m.add(activity(T0 + 5, "9-1", { exit_code: 1n, duration: 5_000_000n, final: true }));
  m.add(activity(T0 + 500, "9-2", {
    cmd: "curl -s http://127.0.0.1:9/",
    exit_code: 7n,
    duration: 490_000_000n,
    processes: 1n,
    bytes_read: 0n,
    bytes_written: 0n,
    dns_queries: 0n,
    connect_failures: 1n,
    final: false,
  }));
  // Its process still ran: later records add what it did since.
  m.add(activity(T0 + 60_000, "9-2", {
    cmd: "curl -s http://127.0.0.1:9/",
    processes: 0n,
    bytes_read: 300n,
    bytes_written: 200n,
    dns_queries: 2n,
    final: true,
  }));
  [curl, no] = m.snapshot(T0 + 60_000).commands;
  assert.equal(m.snapshot(T0 + 60_000).commands.length, 2, "joined, not added");
  assert.deepEqual([no.exitCode, no.durationNs, no.running], [1, 5_000_000, false]);
  assert.deepEqual(
    [curl.exitCode, curl.durationNs, curl.processes, curl.bytes, curl.dnsQueries],
    [7, 490_000_000, 1, 500, 2],
  );
  assert.equal(curl.connectFailures, 1);
  assert.equal(curl.running, false);
});

Deno.test("TopModel: a command's continuation lines are one row; activity of an unseen command is its own", () => {
  const m = new TopModel(OPTIONS);
  m.add(typed(T0, "for i in 1 2; do", "9-1"));
  m.add(typed(T0 + 1, "echo $i; done", "9-1"));
  m.add(activity(T0 + 5000, "9-0", { cmd: "sleep 5", exit_code: 0n, duration: 5e9, final: true }));
  const rows = m.snapshot(T0 + 5000).commands;
  assert.deepEqual(rows.map((r) => r.cmd), ["sleep 5", "for i in 1 2; do ↵ echo $i; done"]);
  assert.equal(rows[0].timeMs, T0, "it began its duration before its record");
});

Deno.test("TopModel: commands beyond max_commands go, and so does their cmd_id", () => {
  const m = new TopModel(OPTIONS); // maxCommands 3
  for (let i = 0; i < 10; i++) m.add(typed(T0 + i, `echo ${i}`, `9-${i}`));
  m.add(activity(T0 + 20, "9-0", { cmd: "echo 0", exit_code: 0n, final: true }));
  const rows = m.snapshot(T0 + 20).commands;
  assert.deepEqual(rows.map((r) => r.cmd), ["echo 0", "echo 9", "echo 8"], "a row of its own");
});

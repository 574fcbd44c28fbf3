import assert from "node:assert/strict";
import { SERVER, SUCCESS, T0 } from "./_dns_testing.ts";
import { answerRecord, dnsflowRecord, type DnsRow, DnsRows } from "./dns_rows.ts";
import type { DnsAnswer, DnsRequest } from "./dns_tracker.ts";

const ROW: DnsRow = {
  side: "client",
  family: "IPv4",
  transport: "udp",
  localIp: "10.0.0.5",
  localPort: 0,
  remoteIp: "10.0.0.2",
  remotePort: 53,
  pid: 4242,
  comm: "curl",
  name: "www.example.com",
  qtype: "A",
  rcode: 0,
  truncated: false,
  cgroupId: 9n,
  count: 3n,
  latencySum: 3_000_001n,
  latencyMax: 2_000_000n,
  retransmits: 1n,
};

Deno.test("DnsRows sums rows of one series and keeps series apart", () => {
  const rows = new DnsRows();
  rows.add(ROW);
  rows.add({ ...ROW, count: 1n, latencySum: 5_000_000n, latencyMax: 5_000_000n, retransmits: 0n });
  rows.add({ ...ROW, rcode: 3 });
  const taken = rows.take();
  assert.equal(taken.length, 2);
  assert.deepEqual(taken[0], {
    ...ROW,
    count: 4n,
    latencySum: 8_000_001n,
    latencyMax: 5_000_000n,
    retransmits: 1n,
  });
  assert.equal(ROW.count, 3n, "the row added is not changed");
  assert.deepEqual(rows.take(), [], "take() starts afresh");
});

Deno.test("dnsflowRecord() writes a row: * for a folded port, the mean beside the sum, no latency on timeouts", () => {
  const r = dnsflowRecord(ROW, "web-1", 7n);
  assert.equal(r.tags.src_port, "*");
  assert.equal(r.tags.dst_port, "53");
  assert.deepEqual(r.fields, {
    count: 3n,
    rcode: 0n,
    latency: 1_000_000n, // 3,000,001 / 3, rounded
    latency_sum: 3_000_001n,
    latency_max: 2_000_000n,
    retransmits: 1n,
    cgroup_id: 9n,
  });
  const timeout = dnsflowRecord({ ...ROW, rcode: -1, latencySum: 0n, latencyMax: 0n }, "h", 7n);
  assert.deepEqual(timeout.fields, { count: 3n, rcode: -1n, retransmits: 1n, cgroup_id: 9n });
  assert.equal(timeout.tags.rcode_name, "TIMEOUT");
});

Deno.test("dnsflowRecord() writes a successful request's tags and fields", () => {
  assert.deepEqual(dnsflowRecord(SUCCESS, "web-1", T0), {
    measurement: "dnsflow",
    tags: {
      host: "web-1",
      source: "dnsflow",
      direction: "outgoing",
      dst_domain: "www.example.com",
      dst_ip: "10.0.0.2",
      dst_ip_type: "private",
      dst_port: "53",
      family: "IPv4",
      pid: "4242",
      process_name: "curl",
      qtype: "AAAA",
      rcode_name: "NOERROR",
      src_ip: "10.0.0.5",
      src_ip_type: "private",
      src_port: "40000",
      transport: "udp",
      truncated: "true",
    },
    fields: {
      count: 1n,
      rcode: 0n,
      latency: 2_500_000n,
      latency_sum: 2_500_000n,
      latency_max: 2_500_000n,
      retransmits: 2n,
    },
    time: T0,
  });
});

Deno.test("dnsflowRecord() writes a timeout without latency or truncated", () => {
  const timeout: DnsRequest = {
    ...SERVER,
    transport: "tcp",
    family: "IPv6",
    localIp: "::1",
    remoteIp: "2001:db8::7",
    name: "",
    qtype: "NS",
    rcode: -1,
    truncated: false,
    retransmits: 0,
  };

  assert.deepEqual(dnsflowRecord(timeout, "ns-1", T0 + 1n), {
    measurement: "dnsflow",
    tags: {
      host: "ns-1",
      source: "dnsflow",
      direction: "incoming",
      dst_domain: "",
      dst_ip: "2001:db8::7",
      dst_ip_type: "other",
      dst_port: "51234",
      family: "IPv6",
      pid: "700",
      process_name: "named",
      qtype: "NS",
      rcode_name: "TIMEOUT",
      src_ip: "::1",
      src_ip_type: "loopback",
      src_port: "53",
      transport: "tcp",
    },
    fields: { count: 1n, rcode: -1n, retransmits: 0n },
    time: T0 + 1n,
  });
});

Deno.test("answerRecord() writes a dns_answer record", () => {
  const a: DnsAnswer = { name: "www.example.com", address: "198.51.100.1", ttl: 20 };

  assert.deepEqual(answerRecord(a, "web-1", T0), {
    measurement: "dns_answer",
    tags: { host: "web-1" },
    fields: { name: "www.example.com", address: "198.51.100.1", ttl: 20n },
    time: T0,
  });
});

Deno.test("DnsRows keeps rows of different network namespaces apart, and dnsflowRecord() tags netns", () => {
  const rows = new DnsRows();
  rows.add({ ...ROW, netns: 4026531992 });
  rows.add({ ...ROW, netns: 4026532300 });
  rows.add({ ...ROW, netns: 4026531992 });

  const taken = rows.take();
  assert.deepEqual(taken.map((r) => [r.netns, r.count]), [[4026531992, 6n], [4026532300, 3n]]);
  assert.equal(dnsflowRecord(taken[1], "h", 0n).tags.netns, "4026532300");
  assert.equal(dnsflowRecord(ROW, "h", 0n).tags.netns, undefined, "unknown: no tag");
});

Deno.test("dnsflowRecord() carries the asking command's cmd_id as a field; commands are rows apart", () => {
  const rows = new DnsRows();
  rows.add({ ...ROW, cmdId: "4100-5" });
  rows.add(ROW);
  rows.add({ ...ROW, cmdId: "4100-5" });
  const taken = rows.take();
  assert.deepEqual(taken.map((r) => [r.cmdId, r.count]), [["4100-5", 6n], [undefined, 3n]]);
  const r = dnsflowRecord(taken[0], "web-1", 7n);
  assert.equal(r.fields.cmd_id, "4100-5");
  assert.equal(r.tags.cmd_id, undefined);
});

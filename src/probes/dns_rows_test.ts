import assert from "node:assert/strict";
import { dnsflowRecord, type DnsRow, DnsRows } from "./dns_rows.ts";

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

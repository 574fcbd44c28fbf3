import assert from "node:assert/strict";
import type { FlowKey } from "./netflow_event.ts";
import {
  ANY_PORT,
  FlowAccounts,
  type FlowDelta,
  flowId,
  flowRecord,
  foldClientPort,
  mergeDeltas,
} from "./netflow_flows.ts";

const KEY: FlowKey = {
  pid: 4242,
  family: "IPv4",
  transport: "tcp",
  direction: "outgoing",
  localPort: 54321,
  remotePort: 443,
  localIp: "10.0.0.5",
  remoteIp: "93.184.216.34",
  netns: 4026531992,
};

const UDP_KEY: FlowKey = {
  ...KEY,
  transport: "udp",
  localPort: 40000,
  remotePort: 53,
  remoteIp: "10.0.0.2",
};

/** A TCP socket's delta as the kernel reports it. */
const TCP_DELTA: FlowDelta = {
  key: KEY,
  comm: "curl",
  bytesRead: 5000n,
  bytesWritten: 1000n,
  retransmits: 2n,
  established: 1n,
  closed: 0n,
  rttSumUs: 1500n,
  rttVarSumUs: 250n,
  rttSamples: 1n,
};

Deno.test("FlowAccounts.udp() passes the flow's cgroup id on with the delta", () => {
  const accounts = new FlowAccounts();

  const udp = accounts.udp(flowId(UDP_KEY), UDP_KEY, "dig", {
    bytesRead: 1n,
    bytesWritten: 0n,
    cgroupId: 77n,
  }, 3);
  assert.equal(udp.delta?.cgroupId, 77n);
});

Deno.test("mergeDeltas() keeps flows of different cgroups apart (containers can share a 4-tuple)", () => {
  const pidUnknown = { ...KEY, pid: 0, direction: "incoming" };
  const merged = mergeDeltas([
    { key: pidUnknown, comm: "", cgroupId: 10n, bytesRead: 1n, bytesWritten: 0n },
    { key: pidUnknown, comm: "", cgroupId: 11n, bytesRead: 2n, bytesWritten: 0n },
    { key: pidUnknown, comm: "", cgroupId: 10n, bytesRead: 4n, bytesWritten: 0n },
  ]);

  assert.deepEqual(merged.map((d) => [d.cgroupId, d.bytesRead]), [[10n, 5n], [11n, 2n]]);
});

Deno.test("flowRecord() carries the cgroup id as the integer field cgroup_id, not a tag", () => {
  const record = flowRecord(
    { key: UDP_KEY, comm: "dig", cgroupId: 9_000_000_001n, bytesRead: 1n, bytesWritten: 0n },
    "web-1",
    1n,
  );

  assert.equal(record.fields.cgroup_id, 9_000_000_001n);
  assert.equal(record.tags.cgroup_id, undefined);
  const unknown = flowRecord(
    { key: UDP_KEY, comm: "dig", bytesRead: 1n, bytesWritten: 0n },
    "h",
    1n,
  );
  assert.equal(unknown.fields.cgroup_id, undefined);
});

Deno.test("FlowAccounts.udp() gives deltas between totals, and nothing when none", () => {
  const accounts = new FlowAccounts();
  const id = flowId(UDP_KEY);

  assert.deepEqual(
    accounts.udp(id, UDP_KEY, "dig", { bytesRead: 100n, bytesWritten: 40n }, 3),
    {
      delta: { key: UDP_KEY, comm: "dig", bytesRead: 100n, bytesWritten: 40n },
      idle: false,
    },
  );
  assert.deepEqual(
    accounts.udp(id, UDP_KEY, "dig", { bytesRead: 160n, bytesWritten: 40n }, 3),
    {
      delta: { key: UDP_KEY, comm: "dig", bytesRead: 60n, bytesWritten: 0n },
      idle: false,
    },
  );
  assert.deepEqual(
    accounts.udp(id, UDP_KEY, "dig", { bytesRead: 160n, bytesWritten: 40n }, 3),
    { delta: undefined, idle: false },
  );
  assert.equal(accounts.udpFlows, 1);
});

Deno.test("FlowAccounts.udp() says idle after N polls in a row without bytes, and forgetUdp() starts it over", () => {
  const accounts = new FlowAccounts();
  const id = flowId(UDP_KEY);
  const poll = (read: bigint) =>
    accounts.udp(id, UDP_KEY, "dig", { bytesRead: read, bytesWritten: 0n }, 3);

  poll(100n);
  assert.equal(poll(100n).idle, false); // 1
  assert.equal(poll(100n).idle, false); // 2
  assert.equal(poll(110n).idle, false); // bytes: the count starts again
  assert.equal(poll(110n).idle, false); // 1
  assert.equal(poll(110n).idle, false); // 2
  const third = poll(110n);
  assert.equal(third.idle, true);
  assert.equal(third.delta, undefined);

  // The caller deleted the kernel entry: the flow's next totals count from zero.
  accounts.forgetUdp(id);
  assert.equal(accounts.udpFlows, 0);
  const again = poll(7n);
  assert.equal(again.delta?.bytesRead, 7n);
  assert.equal(again.idle, false);
});

Deno.test("mergeDeltas() sums the deltas of one flow, RTT sums and samples included", () => {
  const a: FlowDelta = { ...TCP_DELTA, bytesRead: 10n, bytesWritten: 1n, retransmits: 1n };
  const b: FlowDelta = {
    ...a,
    bytesRead: 20n,
    bytesWritten: 2n,
    closed: 1n,
    rttSumUs: 300n,
    rttVarSumUs: 30n,
  };
  const c: FlowDelta = { ...a, retransmits: 4n, rttSumUs: 200n, rttVarSumUs: 20n, rttSamples: 2n };
  const other: FlowDelta = { ...a, key: { ...KEY, localPort: 54322 } };

  const merged = mergeDeltas([a, other, b, c]);

  assert.deepEqual(merged, [
    {
      ...TCP_DELTA,
      bytesRead: 40n,
      bytesWritten: 4n,
      retransmits: 6n,
      established: 3n,
      closed: 1n,
      rttSumUs: 2000n,
      rttVarSumUs: 300n,
      rttSamples: 4n,
    },
    other,
  ]);
  assert.equal(a.bytesRead, 10n); // the input is not changed
  assert.equal(a.rttSumUs, 1500n);
});

Deno.test("mergeDeltas() keeps flows of different network namespaces apart (each pod has a loopback)", () => {
  const base: FlowDelta = { key: KEY, comm: "curl", cgroupId: 5n, bytesRead: 1n, bytesWritten: 0n };

  const merged = mergeDeltas([base, { ...base, key: { ...KEY, netns: 4026532400 } }, base]);

  assert.deepEqual(merged.map((d) => [d.key.netns, d.bytesRead]), [
    [4026531992, 2n],
    [4026532400, 1n],
  ]);
  assert.deepEqual(merged.map((d) => flowRecord(d, "h", 0n).tags.netns), [
    "4026531992",
    "4026532400",
  ]);
});

Deno.test("mergeDeltas() keeps flows that differ in pid, direction or transport apart", () => {
  const base: FlowDelta = { key: UDP_KEY, comm: "dig", bytesRead: 1n, bytesWritten: 1n };

  const merged = mergeDeltas([
    base,
    { ...base, key: { ...UDP_KEY, pid: 1 } },
    { ...base, key: { ...UDP_KEY, direction: "incoming" } },
    { ...base, key: { ...UDP_KEY, transport: "tcp" } },
    base,
  ]);

  assert.equal(merged.length, 4);
  assert.equal(merged[0].bytesRead, 2n);
  assert.equal(merged[0].retransmits, undefined); // UDP stays without TCP counters
});

Deno.test("flowRecord() makes a TCP delta a netflow record with the spec's tags and integer fields", () => {
  assert.deepEqual(flowRecord(TCP_DELTA, "web-1", 1_764_085_464_123_456_789n), {
    measurement: "netflow",
    tags: {
      host: "web-1",
      source: "netflow",
      direction: "outgoing",
      dst_domain: "",
      dst_ip: "93.184.216.34",
      dst_ip_type: "other",
      dst_port: "443",
      family: "IPv4",
      netns: "4026531992",
      pid: "4242",
      process_name: "curl",
      src_ip: "10.0.0.5",
      src_ip_type: "private",
      src_port: "54321",
      transport: "tcp",
    },
    fields: {
      bytes_read: 5000n,
      bytes_written: 1000n,
      retransmits: 2n,
      tcp_established: 1n,
      tcp_closed: 0n,
      rtt: 1500n,
      rtt_var: 250n,
      rtt_sum: 1500n,
      rtt_var_sum: 250n,
      rtt_samples: 1n,
      tcp_connect_refused: 0n,
      tcp_connect_timeouts: 0n,
      tcp_connect_unreachable: 0n,
      tcp_connect_aborted: 0n,
      tcp_resets_received: 0n,
      tcp_resets_sent: 0n,
    },
    time: 1_764_085_464_123_456_789n,
  });
});

Deno.test("mergeDeltas() sums failed connects and resets, and flowRecord() names each field", () => {
  // Two refused connects and a timed-out one to a flow, and later a connection of it reset.
  const failed: FlowDelta = {
    ...TCP_DELTA,
    bytesRead: 0n,
    bytesWritten: 0n,
    established: 0n,
    rttSamples: 0n,
    connectRefused: 2n,
    connectTimeouts: 0n,
    connectUnreachable: 0n,
    connectAborted: 0n,
    resetsReceived: 0n,
    resetsSent: 0n,
  };
  const [merged] = mergeDeltas([
    failed,
    { ...failed, connectRefused: 0n, connectTimeouts: 1n, connectAborted: 3n },
    { ...TCP_DELTA, closed: 1n, resetsReceived: 1n, resetsSent: 4n, connectUnreachable: 5n },
  ]);

  const f = flowRecord(merged, "h", 0n).fields;
  assert.deepEqual(
    [
      f.tcp_connect_refused,
      f.tcp_connect_timeouts,
      f.tcp_connect_unreachable,
      f.tcp_connect_aborted,
      f.tcp_resets_received,
      f.tcp_resets_sent,
      f.tcp_established,
      f.tcp_closed,
    ],
    [2n, 1n, 5n, 3n, 1n, 4n, 1n, 1n],
  );
  assert.equal(failed.connectRefused, 2n, "the input is not changed");
});

Deno.test("flowRecord() gives UDP no TCP failure fields", () => {
  const udp = flowRecord({ key: UDP_KEY, comm: "dig", bytesRead: 1n, bytesWritten: 1n }, "h", 0n);
  assert.equal(udp.fields.tcp_connect_refused, undefined);
  assert.equal(udp.fields.tcp_resets_sent, undefined);
});

Deno.test("flowRecord() gives a row of several sockets their mean RTT beside the sums", () => {
  const fields = flowRecord(
    { ...TCP_DELTA, closed: 3n, rttSumUs: 301n, rttVarSumUs: 30n, rttSamples: 3n },
    "h",
    0n,
  ).fields;
  assert.deepEqual(
    [fields.rtt, fields.rtt_var, fields.rtt_sum, fields.rtt_samples],
    [100n, 10n, 301n, 3n],
  );
});

Deno.test("foldClientPort() writes the client's port as * where ephemeral_port would", () => {
  const range = { low: 32768, high: 60999 };
  const out = foldClientPort(TCP_DELTA, range)!; // outgoing: our port
  assert.equal(out.key.localPort, ANY_PORT);
  assert.equal(flowRecord(out, "h", 0n).tags.src_port, "*");
  assert.equal(TCP_DELTA.key.localPort, 54321, "the input is not changed");
  const incoming = { ...TCP_DELTA, key: { ...KEY, direction: "incoming", remotePort: 40000 } };
  assert.equal(flowRecord(foldClientPort(incoming, range)!, "h", 0n).tags.dst_port, "*");
  // Outside the range, or no direction: unchanged.
  assert.equal(
    foldClientPort({ ...TCP_DELTA, key: { ...KEY, localPort: 1000 } }, range),
    undefined,
  );
  assert.equal(foldClientPort({ ...TCP_DELTA, key: { ...KEY, direction: "" } }, range), undefined);
  // Folded by the kernel already (port 0 on the client's side): `*` too.
  const kernel = { ...TCP_DELTA, key: { ...KEY, localPort: 0 } };
  assert.equal(foldClientPort(kernel, range, true)?.key.localPort, ANY_PORT);
});

Deno.test("flowRecord() gives a UDP record only bytes_read and bytes_written", () => {
  const key: FlowKey = {
    pid: 77,
    family: "IPv6",
    transport: "udp",
    direction: "incoming",
    localPort: 5353,
    remotePort: 5353,
    localIp: "fd00::5",
    remoteIp: "ff02::fb",
    netns: 4026532300,
  };

  const record = flowRecord(
    { key, comm: "avahi-daemon", bytesRead: 300n, bytesWritten: 0n },
    "web-1",
    5n,
  );

  assert.deepEqual(record, {
    measurement: "netflow",
    tags: {
      host: "web-1",
      source: "netflow",
      direction: "incoming",
      dst_domain: "",
      dst_ip: "ff02::fb",
      dst_ip_type: "multicast",
      dst_port: "5353",
      family: "IPv6",
      netns: "4026532300",
      pid: "77",
      process_name: "avahi-daemon",
      src_ip: "fd00::5",
      src_ip_type: "private",
      src_port: "5353",
      transport: "udp",
    },
    fields: { bytes_read: 300n, bytes_written: 0n },
    time: 5n,
  });
});

Deno.test("flowRecord() tags a flow of unknown direction `unknown`", () => {
  const record = flowRecord(
    { key: { ...UDP_KEY, direction: "" }, comm: "x", bytesRead: 1n, bytesWritten: 0n },
    "h",
    0n,
  );

  assert.equal(record.tags.direction, "unknown");
});

/** The tags of a one-byte UDP record between `localIp` and `remoteIp`. */
function udpTags(localIp: string, remoteIp: string, family: FlowKey["family"]) {
  return flowRecord(
    {
      key: { ...UDP_KEY, family, localIp, remoteIp },
      comm: "dig",
      bytesRead: 1n,
      bytesWritten: 1n,
    },
    "h",
    0n,
  ).tags;
}

Deno.test("flowRecord() gives a wildcard local address the loopback one when the peer is loopback", () => {
  const v4 = udpTags("0.0.0.0", "127.0.0.53", "IPv4");
  assert.equal(v4.src_ip, "127.0.0.1");
  assert.equal(v4.src_ip_type, "loopback");
  assert.equal(v4.dst_ip, "127.0.0.53");

  const v6 = udpTags("::", "::1", "IPv6");
  assert.equal(v6.src_ip, "::1");
  assert.equal(v6.src_ip_type, "loopback");
});

Deno.test("flowRecord() leaves a wildcard local address as it is when the peer is not loopback", () => {
  const v4 = udpTags("0.0.0.0", "8.8.8.8", "IPv4");
  assert.equal(v4.src_ip, "0.0.0.0");
  assert.equal(v4.src_ip_type, "other");

  const v6 = udpTags("::", "2001:4860:4860::8888", "IPv6");
  assert.equal(v6.src_ip, "::");

  // Only the wildcard is replaced: a real local address stays, even to a loopback peer.
  assert.equal(udpTags("127.0.0.2", "127.0.0.1", "IPv4").src_ip, "127.0.0.2");
  assert.equal(udpTags("10.0.0.5", "10.0.0.6", "IPv4").src_ip, "10.0.0.5");
});

Deno.test("flowRecord() tags a translated flow's dst_nat_ip/dst_nat_port, and mergeDeltas() keeps backends apart", () => {
  const toA = { ...TCP_DELTA, dstNat: { ip: "198.19.0.2", port: 8080 } };
  const toB = { ...TCP_DELTA, dstNat: { ip: "198.19.0.3", port: 8080 } };

  const merged = mergeDeltas([toA, toB, toA, TCP_DELTA]);

  assert.deepEqual(
    merged.map((d) => [d.dstNat?.ip, d.bytesRead]),
    [["198.19.0.2", 10000n], ["198.19.0.3", 5000n], [undefined, 5000n]],
  );
  const tags = merged.map((d) => flowRecord(d, "h", 0n).tags);
  assert.equal(tags[0].dst_nat_ip, "198.19.0.2");
  assert.equal(tags[0].dst_nat_port, "8080");
  assert.equal(tags[0].dst_ip, "93.184.216.34"); // the address the socket connected to
  assert.ok(!("dst_nat_ip" in tags[2]) && !("dst_nat_port" in tags[2]));
});

Deno.test("flowRecord() carries the kernel's cmd_id as a field; UDP totals and merges keep it", () => {
  const accounts = new FlowAccounts();
  const udp = accounts.udp(flowId(UDP_KEY), UDP_KEY, "dig", {
    bytesRead: 1n,
    bytesWritten: 0n,
    cmdId: "4100-77",
  }, 3);
  assert.equal(udp.delta?.cmdId, "4100-77");
  const [merged] = mergeDeltas([
    { key: KEY, comm: "curl", bytesRead: 1n, bytesWritten: 0n },
    { key: KEY, comm: "curl", cmdId: "4100-78", bytesRead: 2n, bytesWritten: 0n },
  ]);
  assert.equal(merged.cmdId, "4100-78", "a socket seen without a command takes its flow's");
  const record = flowRecord(merged, "web-1", 1n);
  assert.equal(record.fields.cmd_id, "4100-78");
  assert.equal(record.tags.cmd_id, undefined, "never a tag: no series per command");
  assert.equal(flowRecord(TCP_DELTA, "h", 1n).fields.cmd_id, undefined, "in no command");
});

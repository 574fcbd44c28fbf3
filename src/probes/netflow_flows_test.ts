import assert from "node:assert/strict";
import type { FlowKey, TcpSocketCounters } from "./netflow_event.ts";
import { FlowAccounts, type FlowDelta, flowId, flowRecord, mergeDeltas } from "./netflow_flows.ts";

const KEY: FlowKey = {
  pid: 4242,
  family: "IPv4",
  transport: "tcp",
  direction: "outgoing",
  localPort: 54321,
  remotePort: 443,
  localIp: "10.0.0.5",
  remoteIp: "93.184.216.34",
};

const UDP_KEY: FlowKey = {
  ...KEY,
  transport: "udp",
  localPort: 40000,
  remotePort: 53,
  remoteIp: "10.0.0.2",
};

/** A socket's totals as the decoder gives them; a socket open before us by default. */
function sock(s: Partial<TcpSocketCounters> = {}): TcpSocketCounters {
  return {
    key: KEY,
    cookie: 1n,
    bytesWritten: 0n,
    bytesRead: 0n,
    retransmits: 0,
    rttUs: 1500,
    rttVarUs: 250,
    handshakeSeen: false,
    closed: false,
    comm: "curl",
    cgroupId: 0n,
    ...s,
  };
}

/** The counting part of a delta, for short assertions. */
function counts(d: FlowDelta | undefined) {
  assert.ok(d, "a delta");
  return {
    read: d.bytesRead,
    written: d.bytesWritten,
    retransmits: d.retransmits,
    established: d.established,
    closed: d.closed,
  };
}

Deno.test("FlowAccounts.tcp() reports a first-seen socket's totals from zero, with its key, comm and RTT", () => {
  const accounts = new FlowAccounts();

  const delta = accounts.tcp(sock({ bytesWritten: 1000n, bytesRead: 5000n, retransmits: 2 }));

  assert.deepEqual(delta, {
    key: KEY,
    comm: "curl",
    cgroupId: 0n,
    bytesRead: 5000n,
    bytesWritten: 1000n,
    retransmits: 2n,
    established: 0n, // a handshake the kernel did not see is not counted
    closed: 0n,
    rttUs: 1500n,
    rttVarUs: 250n,
  });
  assert.equal(accounts.size.tcpSockets, 1);
});

Deno.test("FlowAccounts.tcp() and udp() pass the socket's cgroup id on with the delta", () => {
  const accounts = new FlowAccounts();

  assert.equal(accounts.tcp(sock({ bytesRead: 1n, cgroupId: 4242n }))?.cgroupId, 4242n);
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

Deno.test("FlowAccounts.tcp() gives the difference between successive totals of a socket", () => {
  const accounts = new FlowAccounts();
  accounts.tcp(sock({ bytesWritten: 1000n, bytesRead: 5000n, retransmits: 2 }));

  const second = accounts.tcp(
    sock({ bytesWritten: 1500n, bytesRead: 5000n, retransmits: 5, rttUs: 900, rttVarUs: 40 }),
  );
  assert.deepEqual(counts(second), {
    read: 0n,
    written: 500n,
    retransmits: 3n,
    established: 0n,
    closed: 0n,
  });
  assert.equal(second?.rttUs, 900n); // the latest RTT, not a difference
  assert.equal(second?.rttVarUs, 40n);

  const third = accounts.tcp(sock({ bytesWritten: 1500n, bytesRead: 7000n, retransmits: 5 }));
  assert.deepEqual(counts(third), {
    read: 2000n,
    written: 0n,
    retransmits: 0n,
    established: 0n,
    closed: 0n,
  });
});

Deno.test("FlowAccounts.tcp() keeps each socket's totals apart by cookie, even on one flow key", () => {
  const accounts = new FlowAccounts();
  accounts.tcp(sock({ cookie: 1n, bytesWritten: 100n }));
  accounts.tcp(sock({ cookie: 2n, bytesWritten: 10n }));

  assert.equal(accounts.tcp(sock({ cookie: 1n, bytesWritten: 150n }))?.bytesWritten, 50n);
  assert.equal(accounts.tcp(sock({ cookie: 2n, bytesWritten: 15n }))?.bytesWritten, 5n);
  assert.equal(accounts.size.tcpSockets, 2);
});

Deno.test("FlowAccounts.tcp() returns nothing when no counter changed, even if the RTT did", () => {
  const accounts = new FlowAccounts();
  accounts.tcp(sock({ bytesWritten: 100n, bytesRead: 200n, retransmits: 1, handshakeSeen: true }));

  assert.equal(
    accounts.tcp(
      sock({ bytesWritten: 100n, bytesRead: 200n, retransmits: 1, handshakeSeen: true }),
    ),
    undefined,
  );
  assert.equal(
    accounts.tcp(sock({ bytesWritten: 100n, bytesRead: 200n, retransmits: 1, rttUs: 99 })),
    undefined,
  );
  // A first-seen idle socket that was open before us has nothing to report either.
  assert.equal(accounts.tcp(sock({ cookie: 9n })), undefined);
});

Deno.test("FlowAccounts.tcp() counts tcp_established once per socket, and only for a handshake it saw", () => {
  const accounts = new FlowAccounts();

  // Handshake seen: counted at the first report, even with no bytes yet.
  assert.deepEqual(counts(accounts.tcp(sock({ cookie: 1n, handshakeSeen: true }))), {
    read: 0n,
    written: 0n,
    retransmits: 0n,
    established: 1n,
    closed: 0n,
  });
  assert.equal(
    accounts.tcp(sock({ cookie: 1n, handshakeSeen: true, bytesWritten: 10n }))?.established,
    0n,
  );
  assert.equal(
    accounts.tcp(sock({ cookie: 1n, handshakeSeen: true, bytesWritten: 20n, closed: true }))
      ?.established,
    0n,
  );

  // A socket open before the collector: its handshake is not counted.
  assert.equal(
    accounts.tcp(sock({ cookie: 2n, handshakeSeen: false, bytesRead: 10n }))?.established,
    0n,
  );
  assert.equal(
    accounts.tcp(sock({ cookie: 2n, handshakeSeen: false, bytesRead: 20n }))?.established,
    0n,
  );
});

Deno.test("FlowAccounts.tcp() reports a close as tcp_closed 1 with its last bytes, then forgets the socket", () => {
  const accounts = new FlowAccounts();
  accounts.tcp(sock({ cookie: 1n, bytesWritten: 100n, bytesRead: 50n, handshakeSeen: true }));

  const last = accounts.tcp(
    sock({ cookie: 1n, bytesWritten: 130n, bytesRead: 50n, handshakeSeen: true, closed: true }),
  );
  assert.deepEqual(counts(last), {
    read: 0n,
    written: 30n,
    retransmits: 0n,
    established: 0n,
    closed: 1n,
  });
  assert.equal(accounts.size.tcpSockets, 0);

  // A new socket on the same 4-tuple and pid starts again from zero, with its own handshake.
  assert.deepEqual(
    counts(accounts.tcp(sock({ cookie: 2n, bytesWritten: 40n, handshakeSeen: true }))),
    { read: 0n, written: 40n, retransmits: 0n, established: 1n, closed: 0n },
  );
});

Deno.test("FlowAccounts.tcp() reports a socket seen only at its close whole, established and closed", () => {
  const accounts = new FlowAccounts();

  // Shorter than a poll: the iterator never listed it.
  assert.deepEqual(
    counts(
      accounts.tcp(
        sock({ bytesWritten: 300n, bytesRead: 20n, handshakeSeen: true, closed: true }),
      ),
    ),
    { read: 20n, written: 300n, retransmits: 0n, established: 1n, closed: 1n },
  );
  assert.equal(accounts.size.tcpSockets, 0);
});

Deno.test("FlowAccounts.tcp() counts retransmits across the u32 wrap", () => {
  const accounts = new FlowAccounts();
  accounts.tcp(sock({ retransmits: 0xffff_fffe }));

  assert.equal(accounts.tcp(sock({ retransmits: 1 }))?.retransmits, 3n);
  assert.equal(accounts.tcp(sock({ retransmits: 4 }))?.retransmits, 3n);
});

Deno.test("FlowAccounts.tcp() never gives a negative delta when the FIN's byte is taken back", () => {
  const accounts = new FlowAccounts();
  // A poll counted our FIN (1001 for 1000 bytes written), the close takes it back.
  accounts.tcp(sock({ bytesWritten: 1001n, bytesRead: 501n }));

  const last = accounts.tcp(sock({ bytesWritten: 1000n, bytesRead: 500n, closed: true }));
  assert.deepEqual(counts(last), {
    read: 0n,
    written: 0n,
    retransmits: 0n,
    established: 0n,
    closed: 1n,
  });
});

Deno.test("FlowAccounts.tcp() does not count the taken-back byte twice when the total rises again", () => {
  const accounts = new FlowAccounts();
  accounts.tcp(sock({ bytesWritten: 1001n }));

  assert.equal(accounts.tcp(sock({ bytesWritten: 1000n })), undefined);
  // Measured from the highest total reported, 1001, not from 1000.
  assert.equal(accounts.tcp(sock({ bytesWritten: 1010n }))?.bytesWritten, 9n);
});

Deno.test("FlowAccounts.endTcpPass() keeps a socket missed once, so a late close has its baseline", () => {
  const accounts = new FlowAccounts();
  accounts.tcp(sock({ bytesWritten: 100n }));
  accounts.endTcpPass(); // listed
  accounts.endTcpPass(); // missed once: it closed during this pass

  assert.equal(accounts.size.tcpSockets, 1);
  assert.equal(accounts.tcp(sock({ bytesWritten: 120n, closed: true }))?.bytesWritten, 20n);
});

Deno.test("FlowAccounts.endTcpPass() forgets a socket two passes did not list", () => {
  const accounts = new FlowAccounts();
  accounts.tcp(sock({ cookie: 1n, bytesWritten: 100n })); // its close record was lost
  accounts.tcp(sock({ cookie: 2n, bytesWritten: 100n }));
  accounts.endTcpPass();
  for (let pass = 0; pass < 2; pass++) {
    accounts.tcp(sock({ cookie: 2n, bytesWritten: 100n })); // listed, unchanged
    accounts.endTcpPass();
  }

  assert.equal(accounts.size.tcpSockets, 1);
  // Listed again: socket 1 counts from zero, socket 2 from its baseline.
  assert.equal(accounts.tcp(sock({ cookie: 1n, bytesWritten: 150n }))?.bytesWritten, 150n);
  assert.equal(accounts.tcp(sock({ cookie: 2n, bytesWritten: 150n }))?.bytesWritten, 50n);
});

Deno.test("FlowAccounts.endTcpPass() keeps a socket listed in every pass however many there are", () => {
  const accounts = new FlowAccounts();
  for (let pass = 1; pass <= 5; pass++) {
    const delta = accounts.tcp(sock({ bytesWritten: BigInt(pass * 10) }));
    assert.equal(delta?.bytesWritten, 10n, `pass ${pass}`);
    accounts.endTcpPass();
  }
  assert.equal(accounts.size.tcpSockets, 1);
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
  assert.equal(accounts.size.udpFlows, 1);
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
  assert.equal(accounts.size.udpFlows, 0);
  const again = poll(7n);
  assert.equal(again.delta?.bytesRead, 7n);
  assert.equal(again.idle, false);
});

Deno.test("mergeDeltas() sums the deltas of one flow and keeps the last RTT", () => {
  const a: FlowDelta = {
    key: KEY,
    comm: "curl",
    bytesRead: 10n,
    bytesWritten: 1n,
    retransmits: 1n,
    established: 1n,
    closed: 0n,
    rttUs: 100n,
    rttVarUs: 10n,
  };
  const b: FlowDelta = {
    ...a,
    bytesRead: 20n,
    bytesWritten: 2n,
    closed: 1n,
    rttUs: 300n,
    rttVarUs: 30n,
  };
  const c: FlowDelta = { ...a, established: 1n, retransmits: 4n, rttUs: 200n, rttVarUs: 20n };
  const other: FlowDelta = { ...a, key: { ...KEY, localPort: 54322 } };

  const merged = mergeDeltas([a, other, b, c]);

  assert.deepEqual(merged, [
    {
      key: KEY,
      comm: "curl",
      bytesRead: 40n,
      bytesWritten: 4n,
      retransmits: 6n,
      established: 3n,
      closed: 1n,
      rttUs: 200n,
      rttVarUs: 20n,
    },
    other,
  ]);
  assert.equal(a.bytesRead, 10n); // the input is not changed
  assert.equal(a.rttUs, 100n);
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
  const accounts = new FlowAccounts();
  const delta = accounts.tcp(
    sock({ bytesWritten: 1000n, bytesRead: 5000n, retransmits: 2, handshakeSeen: true }),
  );
  assert.ok(delta);

  assert.deepEqual(flowRecord(delta, "web-1", 1_764_085_464_123_456_789n), {
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
    },
    time: 1_764_085_464_123_456_789n,
  });
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

Deno.test("FlowAccounts.tcp() takes a connected UDP socket's own counters: bytes only, counted as a UDP flow until it closes", () => {
  const accounts = new FlowAccounts();
  const udp = (s: Partial<TcpSocketCounters>) =>
    sock({ key: UDP_KEY, cookie: 7n, rttUs: 0, rttVarUs: 0, cgroupId: 9n, ...s });

  assert.deepEqual(accounts.tcp(udp({ bytesWritten: 100n, bytesRead: 40n })), {
    key: UDP_KEY,
    comm: "curl",
    cgroupId: 9n,
    bytesRead: 40n,
    bytesWritten: 100n,
  });
  assert.deepEqual(accounts.size, { tcpSockets: 0, udpFlows: 1 });
  accounts.endTcpPass();
  assert.equal(accounts.tcp(udp({ bytesWritten: 100n, bytesRead: 40n })), undefined, "idle");
  const last = accounts.tcp(udp({ bytesWritten: 164n, bytesRead: 40n, closed: true }));
  assert.deepEqual([last?.bytesWritten, last?.bytesRead, last?.closed], [64n, 0n, undefined]);
  assert.deepEqual(accounts.size, { tcpSockets: 0, udpFlows: 0 });
});

Deno.test("FlowAccounts forgets a UDP socket no pass lists, and the gauge follows", () => {
  const accounts = new FlowAccounts();
  accounts.tcp(sock({ key: UDP_KEY, cookie: 7n, bytesWritten: 1n }));
  accounts.tcp(sock({ cookie: 8n, bytesWritten: 1n }));
  assert.deepEqual(accounts.size, { tcpSockets: 1, udpFlows: 1 });
  for (let i = 0; i < 3; i++) accounts.endTcpPass();
  assert.deepEqual(accounts.size, { tcpSockets: 0, udpFlows: 0 });
});

import assert from "node:assert/strict";
import {
  AF_INET,
  AF_INET6,
  CIDR_KEY,
  cidrKey,
  decodeClosedFlow,
  DecodeError,
  decodeFlowDelta,
  decodeFlowKey,
  FLOW_COUNTS,
  FLOW_DELTA,
  FLOW_ID,
  FLOW_KEY,
  formatAddress,
  IPPROTO_TCP,
  IPPROTO_UDP,
  sumUdpCounts,
  UDP_COUNTS,
} from "./netflow_event.ts";
import { COMMAND_REF } from "./commands.ts";

// Fields are written at the offsets of the exported layouts, so these tests follow the layout;
// src/probes/layout_test.ts checks those offsets against the object's BTF.

interface KeyFixture {
  pid: number;
  family: number;
  transport: number;
  direction: number;
  localPort: number;
  remotePort: number;
  localAddr: number[];
  remoteAddr: number[];
  netns: number;
}

/** A 16-byte IPv4-mapped address (::ffff:a.b.c.d), as the kernel stores IPv4. */
function mapped(a: number, b: number, c: number, d: number): number[] {
  return [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d];
}

/** 16 bytes from eight 16-bit groups. */
function v6(...groups: number[]): number[] {
  assert.equal(groups.length, 8);
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

const KEY: KeyFixture = {
  pid: 4242,
  family: AF_INET,
  transport: IPPROTO_TCP,
  direction: 1,
  localPort: 54321, // above 2^15: must be read unsigned
  remotePort: 443, // 0x01bb: big-endian would read 47873
  localAddr: mapped(10, 0, 0, 5),
  remoteAddr: mapped(93, 184, 216, 34),
  netns: 0xf000_0098, // a network namespace inode (4026531992 is the host's, often): unsigned
};

/** {@linkcode KEY} as the decoder gives it back. */
const KEY_DECODED = {
  pid: 4242,
  family: "IPv4",
  transport: "tcp",
  direction: "outgoing",
  localPort: 54321,
  remotePort: 443,
  localIp: "10.0.0.5",
  remoteIp: "93.184.216.34",
  netns: 0xf000_0098,
};

/**
 * A buffer of garbage (0xAA) with a DataView that starts 64 bytes into it (as a view on a
 * mapped ring may); padding bytes keep the garbage.
 */
function garbage(size: number): DataView {
  const buffer = new ArrayBuffer(64 + size);
  new Uint8Array(buffer).fill(0xaa);
  return new DataView(buffer, 64, size);
}

function writeKey(view: DataView, at: number, k: KeyFixture): void {
  const L = FLOW_KEY.offsets;
  view.setUint32(at + L.pid, k.pid, true);
  view.setUint8(at + L.family, k.family);
  view.setUint8(at + L.transport, k.transport);
  view.setUint8(at + L.direction, k.direction);
  view.setUint16(at + L.local_port, k.localPort, true);
  view.setUint16(at + L.remote_port, k.remotePort, true);
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  bytes.set(k.localAddr, at + L.local_addr);
  bytes.set(k.remoteAddr, at + L.remote_addr);
  view.setUint32(at + L.netns, k.netns, true);
}

/** A view holding one flow key at `at`. */
function keyView(k: Partial<KeyFixture> = {}, at = 0): DataView {
  const view = garbage(at + FLOW_KEY.size + 16);
  writeKey(view, at, { ...KEY, ...k });
  return view;
}

interface DeltaFixture {
  key: KeyFixture;
  cgroupId: bigint;
  bytesWritten: bigint;
  bytesRead: bigint;
  rttSumUs: bigint;
  rttVarSumUs: bigint;
  retransmits: number;
  established: number;
  closed: number;
  rttSamples: number;
  comm: Uint8Array;
  /** connect_refused, connect_timeouts, connect_unreachable, connect_aborted, resets_received, resets_sent */
  failures: number[];
  /** The typed command (struct command_ref): its bash's pid and first line's boot ns; 0: none. */
  cmd?: { shellPid: number; bootNs: bigint };
}

const FAILURE_MEMBERS = [
  "connect_refused",
  "connect_timeouts",
  "connect_unreachable",
  "connect_aborted",
  "resets_received",
  "resets_sent",
] as const;

function writeDelta(view: DataView, at: number, e: DeltaFixture): void {
  writeKey(view, at + FLOW_DELTA.offsets.id + FLOW_ID.offsets.key, e.key);
  view.setBigUint64(at + FLOW_DELTA.offsets.id + FLOW_ID.offsets.cgroup_id, e.cgroupId, true);
  const c = at + FLOW_DELTA.offsets.counts, L = FLOW_COUNTS.offsets;
  view.setBigUint64(c + L.bytes_written, e.bytesWritten, true);
  view.setBigUint64(c + L.bytes_read, e.bytesRead, true);
  view.setBigUint64(c + L.rtt_sum_us, e.rttSumUs, true);
  view.setBigUint64(c + L.rtt_var_sum_us, e.rttVarSumUs, true);
  view.setUint32(c + L.retransmits, e.retransmits, true);
  view.setUint32(c + L.established, e.established, true);
  view.setUint32(c + L.closed, e.closed, true);
  view.setUint32(c + L.rtt_samples, e.rttSamples, true);
  new Uint8Array(view.buffer, view.byteOffset + c + L.comm, e.comm.length).set(e.comm);
  FAILURE_MEMBERS.forEach((m, i) => view.setUint32(c + L[m], e.failures[i], true));
  view.setBigUint64(c + L.cmd + COMMAND_REF.offsets.boot_ns, e.cmd?.bootNs ?? 0n, true);
  view.setUint32(c + L.cmd + COMMAND_REF.offsets.shell_pid, e.cmd?.shellPid ?? 0, true);
}

const encoder = new TextEncoder();

/** A `char[16]` comm: the name, NUL, then garbage the decoder must not read. */
function comm(name: string): Uint8Array {
  const field = new Uint8Array(16).fill(0xaa);
  const bytes = encoder.encode(name);
  field.set(bytes);
  if (bytes.length < 16) field[bytes.length] = 0;
  return field;
}

const DELTA: DeltaFixture = {
  key: KEY,
  cgroupId: 0x8000_0000_0000_1234n, // needs all 64 unsigned bits
  bytesWritten: 0x1_0000_0001n, // above 2^32
  bytesRead: 123_456n,
  rttSumUs: 3000n,
  rttVarSumUs: 500n,
  retransmits: 4_000_000_000, // above 2^31: must be read unsigned
  established: 2,
  closed: 1,
  rttSamples: 2,
  comm: comm("curl"),
  failures: [20, 5, 3, 1, 4_000_000_001, 7], // each its own, one above 2^31
};

Deno.test("decodeFlowKey() reads an IPv4 key stored as IPv4-mapped addresses at a non-zero offset", () => {
  const view = keyView({}, 24);

  assert.deepEqual(decodeFlowKey(view, 24), KEY_DECODED);
});

Deno.test("decodeFlowKey() reads an IPv6 UDP key in RFC 5952 form", () => {
  const view = keyView({
    family: AF_INET6,
    transport: IPPROTO_UDP,
    direction: 2,
    localPort: 53,
    remotePort: 40000,
    localAddr: v6(0x2001, 0x0db8, 0, 0, 0, 0, 0, 0x0001),
    remoteAddr: v6(0xfe80, 0, 0, 0, 0x0a00, 0x27ff, 0xfe4e, 0x66a1),
  });

  assert.deepEqual(decodeFlowKey(view, 0), {
    pid: 4242,
    family: "IPv6",
    transport: "udp",
    direction: "incoming",
    localPort: 53,
    remotePort: 40000,
    localIp: "2001:db8::1",
    remoteIp: "fe80::a00:27ff:fe4e:66a1",
    netns: 0xf000_0098,
  });
});

Deno.test("decodeFlowKey() gives direction 0 as an empty string and the wildcard addresses as text", () => {
  const v4 = decodeFlowKey(keyView({ direction: 0, localAddr: mapped(0, 0, 0, 0) }), 0);
  assert.equal(v4.direction, "");
  assert.equal(v4.localIp, "0.0.0.0");

  const v6key = decodeFlowKey(
    keyView({ family: AF_INET6, direction: 0, localAddr: v6(0, 0, 0, 0, 0, 0, 0, 0) }),
    0,
  );
  assert.equal(v6key.direction, "");
  assert.equal(v6key.localIp, "::");
});

Deno.test("decodeFlowKey() rejects a key cut short with a DecodeError", () => {
  const view = keyView();
  const short = new DataView(view.buffer, view.byteOffset, FLOW_KEY.size - 1);

  assert.throws(() => decodeFlowKey(short, 0), (e) => {
    assert.ok(e instanceof DecodeError);
    assert.match(e.message, /cut short: 47 bytes/);
    return true;
  });
  // A whole key that starts too late in the view is cut short too.
  assert.throws(() => decodeFlowKey(keyView({}, 8), 8 + 17), DecodeError);
  // The boundary itself is fine.
  const exact = new DataView(view.buffer, view.byteOffset, FLOW_KEY.size);
  assert.equal(decodeFlowKey(exact, 0).remoteIp, "93.184.216.34");
});

Deno.test("decodeFlowKey() rejects an unknown family, transport or direction with a DecodeError", () => {
  const rejects = (k: Partial<KeyFixture>, message: RegExp) =>
    assert.throws(() => decodeFlowKey(keyView(k), 0), (e) => {
      assert.ok(e instanceof DecodeError);
      assert.match(e.message, message);
      return true;
    });

  rejects({ family: 0 }, /unknown address family 0/);
  rejects({ family: 1 }, /unknown address family 1/); // AF_UNIX
  rejects({ transport: 1 }, /unknown transport 1/); // ICMP
  rejects({ transport: 0 }, /unknown transport 0/);
  rejects({ direction: 3 }, /unknown direction 3/);
  rejects({ direction: 255 }, /unknown direction 255/);
});

Deno.test("decodeFlowDelta() reads every field of a TCP delta at a non-zero offset in a larger view", () => {
  const view = garbage(16 + FLOW_DELTA.size + 32);
  writeDelta(view, 16, { ...DELTA, cmd: { shellPid: 4100, bootNs: 0x8000_0000_0000_0007n } });

  assert.deepEqual(decodeFlowDelta(view, 16), {
    key: KEY_DECODED,
    comm: "curl",
    cgroupId: 0x8000_0000_0000_1234n,
    cmdId: "4100-9223372036854775815", // the bash's pid, its command's boot ns (all 64 bits)
    bytesWritten: 0x1_0000_0001n,
    bytesRead: 123_456n,
    retransmits: 4_000_000_000n,
    established: 2n,
    closed: 1n,
    rttSumUs: 3000n,
    rttVarSumUs: 500n,
    rttSamples: 2n,
    connectRefused: 20n,
    connectTimeouts: 5n,
    connectUnreachable: 3n,
    connectAborted: 1n,
    resetsReceived: 4_000_000_001n,
    resetsSent: 7n,
  });
});

Deno.test("decodeFlowDelta() gives a UDP delta bytes only, and a comm of a full 16 bytes", () => {
  const view = garbage(2 * FLOW_DELTA.size);
  writeDelta(view, 0, {
    ...DELTA,
    key: { ...KEY, transport: IPPROTO_UDP },
    comm: comm("abcdefghijklmnop"),
  });
  writeDelta(view, FLOW_DELTA.size, { ...DELTA, comm: comm(""), cgroupId: 0n });

  assert.deepEqual(decodeFlowDelta(view, 0), {
    key: { ...KEY_DECODED, transport: "udp" },
    comm: "abcdefghijklmnop", // no NUL: all 16, nothing of the next record
    cgroupId: 0x8000_0000_0000_1234n,
    bytesWritten: 0x1_0000_0001n,
    bytesRead: 123_456n,
  });
  const second = decodeFlowDelta(view, FLOW_DELTA.size);
  assert.equal(second.comm, "");
  assert.equal(second.cgroupId, undefined); // unknown: none
});

Deno.test("decodeClosedFlow() reads a closed-flows entry, its key and value apart", () => {
  const view = garbage(FLOW_DELTA.size);
  writeDelta(view, 0, DELTA);
  const bytes = new Uint8Array(view.buffer, view.byteOffset, FLOW_DELTA.size);
  assert.deepEqual(
    decodeClosedFlow(bytes.slice(0, FLOW_ID.size), bytes.slice(FLOW_ID.size)),
    decodeFlowDelta(view, 0),
  );
});

Deno.test("decodeFlowDelta() rejects a record cut short, or a bad key in it, with a DecodeError", () => {
  const view = garbage(FLOW_DELTA.size);
  writeDelta(view, 0, DELTA);
  const short = new DataView(view.buffer, view.byteOffset, FLOW_DELTA.size - 1);

  assert.throws(() => decodeFlowDelta(short, 0), (e) => {
    assert.ok(e instanceof DecodeError);
    assert.match(e.message, /cut short: 159 of 160 bytes/);
    return true;
  });
  assert.throws(() => decodeFlowDelta(view, 8), DecodeError);

  writeDelta(view, 0, { ...DELTA, key: { ...KEY, transport: 132 } }); // SCTP
  assert.throws(() => decodeFlowDelta(view, 0), /unknown transport 132/);
});

/** A per-CPU value: one 56-byte `struct udp_counts` per CPU, inside a larger buffer. */
function perCpu(
  slots: { read: bigint; written: bigint; comm: string; cgroup?: bigint; cmdBootNs?: bigint }[],
): Uint8Array {
  const buffer = new ArrayBuffer(8 + slots.length * UDP_COUNTS.size + 8);
  new Uint8Array(buffer).fill(0xaa);
  const value = new Uint8Array(buffer, 8, slots.length * UDP_COUNTS.size);
  const view = new DataView(buffer, 8);
  slots.forEach((s, cpu) => {
    const at = cpu * UDP_COUNTS.size;
    view.setBigUint64(at + UDP_COUNTS.offsets.bytes_read, s.read, true);
    view.setBigUint64(at + UDP_COUNTS.offsets.bytes_written, s.written, true);
    value.set(s.comm ? comm(s.comm) : new Uint8Array(16), at + UDP_COUNTS.offsets.comm);
    view.setBigUint64(at + UDP_COUNTS.offsets.cgroup_id, s.cgroup ?? 0n, true);
    view.setBigUint64(at + UDP_COUNTS.offsets.cmd, s.cmdBootNs ?? 0n, true);
    view.setUint32(at + UDP_COUNTS.offsets.cmd + COMMAND_REF.offsets.shell_pid, 77, true);
  });
  return value;
}

Deno.test("sumUdpCounts() sums every CPU's bytes and takes the first non-empty comm and cgroup", () => {
  const value = perCpu([
    { read: 0n, written: 0n, comm: "" }, // a CPU the flow never ran on
    { read: 100n, written: 7n, comm: "dig", cgroup: 0x1_0000_0007n },
    { read: 0x8000_0000_0000_0000n, written: 0n, comm: "other", cgroup: 9n, cmdBootNs: 5n },
    { read: 1n, written: 3n, comm: "" },
  ]);

  assert.deepEqual(sumUdpCounts(value), {
    bytesRead: 0x8000_0000_0000_0000n + 101n, // exact past 2^53
    bytesWritten: 10n,
    comm: "dig",
    cgroupId: 0x1_0000_0007n,
    cmdId: "77-5", // the first CPU's slot that names a command
  });
});

Deno.test("sumUdpCounts() of all-empty slots is zero with no comm", () => {
  const value = perCpu([
    { read: 0n, written: 0n, comm: "" },
    { read: 0n, written: 0n, comm: "" },
  ]);

  assert.deepEqual(sumUdpCounts(value), {
    bytesRead: 0n,
    bytesWritten: 0n,
    comm: "",
    cgroupId: 0n,
  });
});

Deno.test("cidrKey() stores an IPv4 network as IPv4-mapped IPv6 with 96 more prefix bits", () => {
  const key = cidrKey("10.0.0.0/8");

  assert.equal(key.length, CIDR_KEY.size);
  assert.equal(new DataView(key.buffer).getUint32(0, true), 104);
  assert.deepEqual([...key.subarray(4)], mapped(10, 0, 0, 0)); // ::ffff:10.0.0.0
  assert.deepEqual([...cidrKey("192.168.1.7/32")], [32 + 96, 0, 0, 0, ...mapped(192, 168, 1, 7)]);
});

Deno.test("cidrKey() stores an IPv6 network as it is", () => {
  const key = cidrKey("fd00::/8");

  assert.equal(key.length, CIDR_KEY.size);
  assert.deepEqual([...key], [8, 0, 0, 0, 0xfd, ...new Array(15).fill(0)]);
  assert.deepEqual(
    [...cidrKey("2001:db8::/32").subarray(0, 8)],
    [32, 0, 0, 0, 0x20, 0x01, 0x0d, 0xb8],
  );
});

Deno.test("formatAddress() writes IPv6 in RFC 5952 form", () => {
  const text = (...groups: number[]) => formatAddress(new Uint8Array(v6(...groups)), false);

  assert.equal(text(0, 0, 0, 0, 0, 0, 0, 0), "::");
  assert.equal(text(0, 0, 0, 0, 0, 0, 0, 1), "::1");
  assert.equal(text(0x2001, 0x0db8, 0, 0, 0, 0, 0, 1), "2001:db8::1"); // no leading zeros
  assert.equal(text(0xfd00, 0xabcd, 0, 0, 0, 0, 0, 0), "fd00:abcd::"); // lower case
  // The longest run of zero groups is compressed; of two equal runs, the first.
  assert.equal(text(0x2001, 0xdb8, 0, 0, 1, 0, 0, 0), "2001:db8:0:0:1::");
  assert.equal(text(0x2001, 0xdb8, 0, 0, 1, 0, 0, 1), "2001:db8::1:0:0:1");
  // A single zero group is not compressed.
  assert.equal(text(0x2001, 0xdb8, 0, 1, 1, 1, 1, 1), "2001:db8:0:1:1:1:1:1");
});

Deno.test("formatAddress() writes IPv4 as a dotted quad from the mapped address's last 4 bytes", () => {
  assert.equal(formatAddress(new Uint8Array(mapped(127, 0, 0, 1)), true), "127.0.0.1");
  assert.equal(formatAddress(new Uint8Array(mapped(255, 255, 255, 255)), true), "255.255.255.255");
});

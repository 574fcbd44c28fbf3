import assert from "node:assert/strict";
import {
  decodeDropCounts,
  decodeDropKey,
  DecodeError,
  DROP_COUNTS,
  DROP_KEY,
  DROP_KEY_LOCAL_FOLDED,
  DROP_KEY_REMOTE_FOLDED,
  dropRecord,
  ReasonNames,
} from "./netdrop_event.ts";

// Fields are written at the offsets of the exported layouts, so these tests follow the layout;
// the layout test is to check those offsets against the object's BTF.

interface KeyFixture {
  reason: number;
  pid?: number;
  cgroupId?: bigint;
  netns?: number;
  family?: number;
  transport?: number;
  direction: number;
  flags?: number;
  localPort?: number;
  remotePort?: number;
  localAddr?: number[];
  remoteAddr?: number[];
}

const v4 = (...octets: number[]) => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...octets];

function keyBytes(f: KeyFixture): Uint8Array<ArrayBuffer> {
  const L = DROP_KEY.offsets, bytes = new Uint8Array(DROP_KEY.size);
  const view = new DataView(bytes.buffer);
  view.setUint32(L.reason, f.reason, true);
  view.setUint32(L.pid, f.pid ?? 0, true);
  view.setBigUint64(L.cgroup_id, f.cgroupId ?? 0n, true);
  view.setUint32(L.netns, f.netns ?? 0, true);
  bytes[L.family] = f.family ?? 0;
  bytes[L.transport] = f.transport ?? 0;
  bytes[L.direction] = f.direction;
  bytes[L.flags] = f.flags ?? 0;
  view.setUint16(L.local_port, f.localPort ?? 0, true);
  view.setUint16(L.remote_port, f.remotePort ?? 0, true);
  bytes.set(f.localAddr ?? [], L.local_addr);
  bytes.set(f.remoteAddr ?? [], L.remote_addr);
  return bytes;
}

function countsBytes(packets: bigint, bytes: bigint, comm: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(DROP_COUNTS.size), view = new DataView(out.buffer);
  view.setBigUint64(DROP_COUNTS.offsets.packets, packets, true);
  view.setBigUint64(DROP_COUNTS.offsets.bytes, bytes, true);
  out.set(new TextEncoder().encode(comm).subarray(0, 16), DROP_COUNTS.offsets.comm);
  return out;
}

Deno.test("netdrop: a TCP drop at receive reads as netflow names it (src is this host)", () => {
  const key = decodeDropKey(keyBytes({
    reason: 3,
    pid: 4242,
    cgroupId: 77n,
    netns: 4026531840,
    family: 2,
    transport: 6,
    direction: 1,
    localPort: 8080,
    remotePort: 51000,
    localAddr: v4(127, 0, 0, 1),
    remoteAddr: v4(10, 1, 2, 3),
  }));
  const record = dropRecord(
    "NO_SOCKET",
    key,
    decodeDropCounts(countsBytes(20n, 800n, "curl")),
    "h",
    5n,
  );
  assert.deepEqual(record, {
    measurement: "netdrop",
    tags: {
      host: "h",
      source: "netdrop",
      reason: "NO_SOCKET",
      direction: "ingress",
      netns: "4026531840",
      family: "IPv4",
      transport: "tcp",
      src_ip: "127.0.0.1",
      src_ip_type: "loopback",
      dst_ip: "10.1.2.3",
      dst_ip_type: "private",
      src_port: "8080",
      dst_port: "51000",
      pid: "4242",
      process_name: "curl",
    },
    fields: { packets: 20n, bytes: 800n, cgroup_id: 77n },
    time: 5n,
  });
});

Deno.test("netdrop: an early drop has its reason and direction, no address, port or pid", () => {
  const key = decodeDropKey(keyBytes({ reason: 12, direction: 2 }));
  const record = dropRecord(
    "NETFILTER_DROP",
    key,
    decodeDropCounts(countsBytes(1n, 60n, "")),
    "h",
    1n,
  );
  assert.deepEqual(record.tags, {
    host: "h",
    source: "netdrop",
    reason: "NETFILTER_DROP",
    direction: "egress",
  });
  assert.deepEqual(record.fields, { packets: 1n, bytes: 60n });
});

Deno.test("netdrop: IPv6, ICMP without ports, folded client ports as *", () => {
  const ip6 = [0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1];
  const icmp = decodeDropKey(keyBytes({
    reason: 2,
    family: 10,
    transport: 58,
    direction: 1,
    localAddr: ip6,
    remoteAddr: ip6,
  }));
  assert.deepEqual(icmp.packet, {
    family: "IPv6",
    transport: "icmpv6",
    localIp: "2001:db8::1",
    remoteIp: "2001:db8::1",
  });
  for (
    const [flags, local, remote] of [[DROP_KEY_LOCAL_FOLDED, "*", "53"], [
      DROP_KEY_REMOTE_FOLDED,
      "53",
      "*",
    ]]
  ) {
    const k = decodeDropKey(keyBytes({
      reason: 6,
      family: 2,
      transport: 17,
      direction: 1,
      flags: flags as number,
      localPort: flags === DROP_KEY_LOCAL_FOLDED ? 0 : 53,
      remotePort: flags === DROP_KEY_LOCAL_FOLDED ? 53 : 0,
      localAddr: v4(127, 0, 0, 1),
      remoteAddr: v4(127, 0, 0, 1),
    }));
    assert.equal(k.packet?.localPort, local);
    assert.equal(k.packet?.remotePort, remote);
  }
});

Deno.test("netdrop: an overflowed reason's bucket is a record with only its reason", () => {
  const record = dropRecord("NO_SOCKET", undefined, { packets: 9n, bytes: 9n, comm: "" }, "h", 1n);
  assert.deepEqual(record.tags, { host: "h", source: "netdrop", reason: "NO_SOCKET" });
});

Deno.test("netdrop: bytes the kernel could not have written are a DecodeError", () => {
  assert.throws(() => decodeDropKey(new Uint8Array(10)), DecodeError);
  assert.throws(() => decodeDropKey(keyBytes({ reason: 1, direction: 7 })), DecodeError);
  assert.throws(() => decodeDropKey(keyBytes({ reason: 1, direction: 1, family: 3 })), DecodeError);
  assert.throws(() => decodeDropCounts(new Uint8Array(31)), DecodeError);
});

Deno.test("netdrop: reason names from the kernel's enums; unnamed values by subsystem", () => {
  const names = new ReasonNames(
    [
      { name: "SKB_NOT_DROPPED_YET", value: 0 },
      { name: "SKB_CONSUMED", value: 1 },
      { name: "SKB_DROP_REASON_NO_SOCKET", value: 3 },
      { name: "SKB_DROP_REASON_MAX", value: 130 },
      { name: "SKB_DROP_REASON_SUBSYS_MASK", value: -65536 }, // BTF stores it as a signed 32-bit value
    ],
    [
      { name: "SKB_DROP_REASON_SUBSYS_CORE", value: 0 },
      { name: "SKB_DROP_REASON_SUBSYS_OPENVSWITCH", value: 2 },
      { name: "SKB_DROP_REASON_SUBSYS_NUM", value: 3 },
    ],
  );
  assert.equal(names.name(3), "NO_SOCKET");
  assert.equal(names.name(1), "CONSUMED");
  assert.equal(names.name(130), "CORE_130"); // MAX is a bound, not a reason
  assert.equal(names.name((2 << 16) | 3), "OPENVSWITCH_3");
  assert.equal(names.name((7 << 16) | 1), "SUBSYS7_1");
  assert.equal(names.name(0xffff0000), "SUBSYS65535_0");
});

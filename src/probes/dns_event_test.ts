import assert from "node:assert/strict";
import {
  decodeDnsEvent,
  decodeName,
  decodePending,
  decodeRowEvent,
  DnsDecodeError,
  nameHash,
  pendingKeyBytes,
} from "./dns_event.ts";

// Offsets written out from `struct dns_event` in bpf/dns.h, not taken from DNS_EVENT.offsets,
// so a wrong layout constant fails here.
const HEADER = 104;

/** A ring-like view: 0xAA everywhere, one UDP IPv4 client event at `at` with `payload`. */
function event(at: number, payload: Uint8Array, payloadLen = payload.length, kind = 1): DataView {
  const buffer = new ArrayBuffer(at + HEADER + payload.length + 16);
  const bytes = new Uint8Array(buffer).fill(0xaa);
  const view = new DataView(buffer);
  bytes.set([kind, 2, 17, 1, 1], at); // kind, AF_INET, UDP, client side, outbound
  view.setUint16(at + 6, payload.length, true); // captured
  view.setUint32(at + 8, 4242, true); // pid
  view.setUint32(at + 12, payloadLen, true);
  view.setBigUint64(at + 16, 5_000_000_000n, true); // boot_ns
  view.setBigUint64(at + 24, 0x8000_0000_0000_0042n, true); // cgroup_id
  view.setUint16(at + 32, 40000, true); // local_port
  view.setUint16(at + 34, 53, true); // remote_port
  bytes.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 5], at + 36);
  bytes.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2], at + 52);
  bytes.set([...new TextEncoder().encode("dig"), 0], at + 68);
  view.setUint32(at + 84, 0xf000_0098, true); // netns: above 2^31, read unsigned
  view.setBigUint64(at + 88, 0x8000_0000_0000_0009n, true); // cmd: its first line's boot ns
  view.setUint32(at + 96, 3100, true); // and its bash's pid
  bytes.set(payload, at + HEADER);
  return view;
}

Deno.test("decodeDnsEvent() reads every header field, the cgroup id included, at an offset", () => {
  const payload = new Uint8Array([1, 2, 3, 4, 5]);
  const { segment, cut, answersOnly } = decodeDnsEvent(
    event(24, payload),
    24,
    HEADER + payload.length,
  );

  assert.equal(cut, false);
  assert.equal(answersOnly, false);
  assert.deepEqual(segment, {
    timeNs: 5_000_000_000n,
    side: "client",
    outbound: true,
    family: "IPv4",
    transport: "udp",
    localIp: "10.0.0.5",
    localPort: 40000,
    remoteIp: "10.0.0.2",
    remotePort: 53,
    pid: 4242,
    cgroupId: 0x8000_0000_0000_0042n, // all 64 unsigned bits
    netns: 0xf000_0098,
    comm: "dig",
    cmdId: "3100-9223372036854775817",
    payload,
  });
});

Deno.test("decodeDnsEvent() flags a payload the kernel cut and rejects a record shorter than its header", () => {
  const payload = new Uint8Array(10);
  assert.equal(decodeDnsEvent(event(0, payload, 5000), 0, HEADER + 10).cut, true);
  assert.throws(() => decodeDnsEvent(event(0, payload), 0, HEADER - 1), DnsDecodeError);
});

Deno.test("decodeDnsEvent() gives a pid's new name once its comm changes (exec), not the remembered one", () => {
  const view = event(0, new Uint8Array(0));
  assert.equal(decodeDnsEvent(view, 0, HEADER).segment.comm, "dig");
  new Uint8Array(view.buffer).set([...new TextEncoder().encode("curl"), 0], 68);
  assert.equal(decodeDnsEvent(view, 0, HEADER).segment.comm, "curl");
});

Deno.test("decodeDnsEvent() tells a message sent for its answers only, and refuses an unknown kind", () => {
  const view = event(0, new Uint8Array(12), 12, 2);
  assert.equal(decodeDnsEvent(view, 0, HEADER + 12).answersOnly, true);
  assert.throws(() => decodeDnsEvent(event(0, new Uint8Array(0), 0, 9), 0, HEADER), /kind 9/);
});

/** A `struct dns_row_event` as bpf/dns.h lays it out: kind, 7 pad, key (104), stats (32). */
function rowEvent(): DataView {
  const bytes = new Uint8Array(144);
  const view = new DataView(bytes.buffer);
  bytes[0] = 3;
  const k = 8;
  view.setBigUint64(k + 0, 0x1234_5678_9abc_def0n, true); // name_hash
  view.setBigUint64(k + 8, 77n, true); // cgroup_id
  view.setUint32(k + 16, 4242, true); // pid
  view.setInt16(k + 20, -1, true); // rcode
  view.setUint16(k + 22, 28, true); // qtype AAAA
  view.setUint16(k + 24, 0, true); // local_port: folded
  view.setUint16(k + 26, 53, true);
  bytes.set([10, 17, 1, 1], k + 28); // AF_INET6, UDP, client, truncated
  bytes[k + 32 + 15] = 1; // ::1
  bytes.set([0x20, 0x01, 0x0d, 0xb8], k + 48); // 2001:db8::
  bytes.set(new TextEncoder().encode("curl"), k + 64);
  view.setUint32(k + 80, 4026532300, true); // netns
  view.setBigUint64(k + 88, 12n, true); // cmd boot_ns
  view.setUint32(k + 96, 3100, true); // cmd shell_pid
  const s = 112;
  view.setBigUint64(s, 3n, true);
  view.setBigUint64(s + 8, 300n, true);
  view.setBigUint64(s + 16, 150n, true);
  view.setBigUint64(s + 24, 1n, true);
  return view;
}

Deno.test("decodeRowEvent() reads a kernel row's key and sums", () => {
  assert.deepEqual(decodeRowEvent(rowEvent(), 0, 144), {
    key: {
      nameHash: 0x1234_5678_9abc_def0n,
      cgroupId: 77n,
      pid: 4242,
      rcode: -1,
      qtype: 28,
      side: "client",
      family: "IPv6",
      transport: "udp",
      truncated: true,
      localIp: "::1",
      localPort: 0,
      remoteIp: "2001:db8::",
      remotePort: 53,
      comm: "curl",
      netns: 4026532300,
      cmdId: "3100-12",
    },
    stats: { count: 3n, latencySum: 300n, latencyMax: 150n, retransmits: 1n },
  });
  assert.throws(() => decodeRowEvent(rowEvent(), 0, 143), DnsDecodeError);
});

Deno.test("pendingKeyBytes() builds the key decodePending() reads back", () => {
  const local = new Uint8Array(16), remote = new Uint8Array(16);
  local.set([0xff, 0xff, 127, 0, 0, 1], 10);
  remote.set([0xff, 0xff, 127, 0, 0, 53], 10);
  const key = pendingKeyBytes(
    {
      nameHash: 99n,
      id: 0xbeef,
      qtype: 1,
      side: "server",
      family: "IPv4",
      localPort: 53,
      remotePort: 40000,
      netns: 4026532300,
    },
    local,
    remote,
  );
  assert.equal(key.length, 56);
  assert.equal(new DataView(key.buffer).getUint16(8, true), 0xbeef); // id
  assert.equal(new DataView(key.buffer).getUint32(52, true), 4026532300); // netns
  const value = new Uint8Array(56); // cmd (40..56) zero: in no command
  const v = new DataView(value.buffer);
  v.setBigUint64(0, 5n, true);
  v.setBigUint64(8, 6n, true);
  v.setUint32(16, 7, true);
  v.setUint32(20, 2, true);
  value.set(new TextEncoder().encode("named"), 24);
  assert.deepEqual(decodePending(key, value), {
    nameHash: 99n,
    qtype: 1,
    side: "server",
    family: "IPv4",
    localIp: "127.0.0.1",
    localPort: 53,
    remoteIp: "127.0.0.53",
    remotePort: 40000,
    firstNs: 5n,
    cgroupId: 6n,
    pid: 7,
    retransmits: 2,
    comm: "named",
    netns: 4026532300,
  });
});

Deno.test("nameHash() hashes the name's words as the kernel does: its length and every byte count", () => {
  const wire = (text: string) => new TextEncoder().encode(text);
  // Written out for "\x01a" (2 bytes: one zero-padded word 0x6101).
  let h = 0xcbf29ce484222325n ^ 2n;
  h = BigInt.asUintN(64, (h ^ 0x6101n) * 0x100000001b3n);
  h ^= h >> 29n;
  assert.equal(nameHash(wire("\x01a")), h);
  // Zero padding is not a zero byte of the name: the length tells them apart.
  assert.notEqual(nameHash(wire("\x01a")), nameHash(wire("\x01a\x00")));
  const seen = new Set<bigint>();
  for (let i = 0; i < 5000; i++) seen.add(nameHash(wire(`\x04n${i}`)));
  assert.equal(seen.size, 5000);
});

Deno.test("decodeName() takes a stored name's wire bytes and refuses a length past the value", () => {
  const value = new Uint8Array(264);
  value.set([3, 0x77, 0x77, 0x77, 0], 0);
  new DataView(value.buffer).setUint32(256, 4, true); // "\x03www" only: 4 bytes count
  assert.deepEqual(decodeName(value), new Uint8Array([3, 0x77, 0x77, 0x77]));
  new DataView(value.buffer).setUint32(256, 255, true);
  assert.throws(() => decodeName(value), DnsDecodeError);
});

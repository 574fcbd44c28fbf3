import assert from "node:assert/strict";
import { decodeDnsEvent, DnsDecodeError } from "./dns_event.ts";

// Offsets written out from `struct dns_event` in bpf/dns.h, not taken from DNS_EVENT_LAYOUT,
// so a wrong layout constant fails here.
const HEADER = 84;

/** A ring-like view: 0xAA everywhere, one UDP IPv4 client event at `at` with `payload`. */
function event(at: number, payload: Uint8Array, payloadLen = payload.length): DataView {
  const buffer = new ArrayBuffer(at + HEADER + payload.length + 16);
  const bytes = new Uint8Array(buffer).fill(0xaa);
  const view = new DataView(buffer);
  view.setBigUint64(at + 0, 5_000_000_000n, true); // boot_ns
  view.setBigUint64(at + 8, 0x8000_0000_0000_0042n, true); // cgroup_id
  view.setUint32(at + 16, 4242, true); // pid
  view.setUint32(at + 20, payloadLen, true);
  view.setUint16(at + 24, payload.length, true); // captured
  bytes.set([2, 17, 1, 1], at + 26); // AF_INET, UDP, client side, outbound
  view.setUint16(at + 30, 40000, true); // local_port
  view.setUint16(at + 32, 53, true); // remote_port
  bytes.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 5], at + 36);
  bytes.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2], at + 52);
  bytes.set([...new TextEncoder().encode("dig"), 0], at + 68);
  bytes.set(payload, at + HEADER);
  return view;
}

Deno.test("decodeDnsEvent() reads every header field, the cgroup id included, at an offset", () => {
  const payload = new Uint8Array([1, 2, 3, 4, 5]);
  const { segment, cut } = decodeDnsEvent(event(24, payload), 24, HEADER + payload.length);

  assert.equal(cut, false);
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
    comm: "dig",
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

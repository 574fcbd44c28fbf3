/**
 * The dns probe's kernel record (`struct dns_event`, bpf/dns.h), decoded into a
 * {@linkcode DnsSegment}. Pure: tested on hand-built bytes; test/kernel/layout_test.ts checks
 * these offsets against the object's BTF.
 */
import { formatAddress } from "./netflow_event.ts";
import type { DnsSegment } from "./dns_messages.ts";

/** `struct dns_event`: member → byte offset. */
export const DNS_EVENT_LAYOUT = {
  boot_ns: 0,
  cgroup_id: 8,
  pid: 16,
  payload_len: 20,
  captured: 24,
  family: 26,
  transport: 27,
  side: 28,
  outbound: 29,
  local_port: 30,
  remote_port: 32,
  _pad: 34,
  local_addr: 36,
  remote_addr: 52,
  comm: 68,
  payload: 84,
} as const;
export const DNS_EVENT_HEADER = DNS_EVENT_LAYOUT.payload;
export const DNS_PAYLOAD_MAX = 4096;

/** `struct dns_settings` (.rodata). */
export const DNS_SETTINGS_LAYOUT = { sides: 0, size: 4 } as const;
/** `enum dns_side`. */
export const DNS_SIDE_CLIENT = 1, DNS_SIDE_SERVER = 2;

const AF_INET = 2, AF_INET6 = 10, IPPROTO_TCP = 6, IPPROTO_UDP = 17;

/** Bytes the kernel could not have written. */
export class DnsDecodeError extends Error {
  override name = "DnsDecodeError";
}

/** Process names by pid, so a busy process's name is decoded once (checked against its bytes). */
const comms = new Map<number, { bytes: Uint8Array; name: string }>();
/** Pids remembered at most; then the cache starts afresh (a few KiB). */
const COMMS_MAX = 1024;

/** `comm` (16 bytes at `at`, NUL-padded, Latin-1 as the kernel keeps it) of `pid`, cached. */
function commOf(pid: number, bytes: Uint8Array, at: number): string {
  const cached = comms.get(pid);
  if (cached !== undefined) {
    let same = true;
    for (let i = 0; i < 16 && same; i++) same = bytes[at + i] === cached.bytes[i];
    if (same) return cached.name;
  }
  const raw = bytes.slice(at, at + 16);
  const nul = raw.indexOf(0);
  // Latin-1: each byte is the code point of the same value.
  const name = String.fromCharCode.apply(
    null,
    (nul < 0 ? raw : raw.subarray(0, nul)) as unknown as number[],
  );
  if (comms.size >= COMMS_MAX) comms.clear();
  comms.set(pid, { bytes: raw, name });
  return name;
}

/**
 * Decodes one record of `length` bytes at `offset`. The segment's `timeNs` is the kernel's
 * boot-time clock (monotonic: latencies are differences of it, untouched by wall-clock steps
 * or by the error of converting); add bootToRealtimeOffsetNs() for wall-clock time. The
 * payload is copied (the ring's memory is reused). `cut` says the packet carried more than
 * was captured.
 */
export function decodeDnsEvent(
  view: DataView,
  offset: number,
  length: number,
): { segment: DnsSegment; cut: boolean } {
  const L = DNS_EVENT_LAYOUT;
  if (length < DNS_EVENT_HEADER) {
    throw new DnsDecodeError(`DNS record of ${length} bytes, shorter than its header`);
  }
  const bytes = new Uint8Array(view.buffer, view.byteOffset + offset, length);
  const captured = view.getUint16(offset + L.captured, true);
  const payloadLen = view.getUint32(offset + L.payload_len, true);
  if (captured > DNS_PAYLOAD_MAX || DNS_EVENT_HEADER + captured > length) {
    throw new DnsDecodeError(`DNS record claims ${captured} payload bytes in ${length}`);
  }
  const family = bytes[L.family], transport = bytes[L.transport], side = bytes[L.side];
  if (family !== AF_INET && family !== AF_INET6) {
    throw new DnsDecodeError(`unknown address family ${family}`);
  }
  if (transport !== IPPROTO_UDP && transport !== IPPROTO_TCP) {
    throw new DnsDecodeError(`unknown transport ${transport}`);
  }
  if (side !== DNS_SIDE_CLIENT && side !== DNS_SIDE_SERVER) {
    throw new DnsDecodeError(`unknown side ${side}`);
  }
  const ipv4 = family === AF_INET;
  const pid = view.getUint32(offset + L.pid, true);
  const cut = captured < payloadLen;
  const segment: DnsSegment = {
    timeNs: view.getBigUint64(offset + L.boot_ns, true),
    side: side === DNS_SIDE_CLIENT ? "client" : "server",
    outbound: bytes[L.outbound] !== 0,
    family: ipv4 ? "IPv4" : "IPv6",
    transport: transport === IPPROTO_UDP ? "udp" : "tcp",
    localIp: formatAddress(bytes, ipv4, L.local_addr),
    localPort: view.getUint16(offset + L.local_port, true),
    remoteIp: formatAddress(bytes, ipv4, L.remote_addr),
    remotePort: view.getUint16(offset + L.remote_port, true),
    pid,
    cgroupId: view.getBigUint64(offset + L.cgroup_id, true),
    comm: commOf(pid, bytes, L.comm),
    payload: bytes.slice(L.payload, L.payload + captured),
  };
  // The whole length, so TCP framing stays in step when the kernel copied only the start.
  if (cut) segment.payloadLength = payloadLen;
  return { segment, cut };
}

/**
 * The dns probe's kernel records (bpf/dns.h), decoded: the ring buffer's messages
 * (`struct dns_event`) into {@linkcode DnsSegment}s, and the kernel's rows (`struct
 * dns_flow_key` + `dns_flow_stats`, from the flows maps or a `dns_row_event`) and pending
 * queries. Pure: tested on hand-built bytes; src/probes/layout_test.ts checks these layouts and
 * enums against the object's BTF.
 */
import { COMM_LEN, decodeCommOf } from "./comm.ts";
import { COMMAND_REF, decodeCommandRef } from "./commands.ts";
import { cEnum, cStruct, indexEnum } from "./layout.ts";
import { formatAddress } from "./netflow_event.ts";
import type { DnsSegment } from "./dns_tracker.ts";

/** Bytes of payload an event carries (checked as the size of `dns_event.payload`). */
export const DNS_PAYLOAD_MAX = 4096;
/** `enum dns_limit`: the longest question name in wire form both sides read. */
export const DNS_NAME_MAX = 254;
export const DNS_LIMIT = cEnum("dns_limit", { DNS_NAME_MAX });

/** `struct dns_event`: a message's header, then its payload. */
export const DNS_EVENT = cStruct("dns_event", 4200, {
  kind: [0, 1],
  family: [1, 1],
  transport: [2, 1],
  side: [3, 1],
  outbound: [4, 1],
  _pad: [5, 1],
  captured: [6, 2],
  pid: [8, 4],
  payload_len: [12, 4],
  boot_ns: [16, 8],
  cgroup_id: [24, 8],
  local_port: [32, 2],
  remote_port: [34, 2],
  local_addr: [36, 16],
  remote_addr: [52, 16],
  comm: [68, COMM_LEN],
  netns: [84, 4],
  cmd: [88, COMMAND_REF],
  payload: [104, DNS_PAYLOAD_MAX],
});
export const DNS_EVENT_HEADER = DNS_EVENT.offsets.payload;

/** `enum dns_event_kind`: the first byte of every ring record. */
export const DNS_EVENT_MESSAGE = 1, DNS_EVENT_ANSWERS = 2, DNS_EVENT_ROW = 3;
export const DNS_EVENT_KIND = cEnum("dns_event_kind", {
  DNS_EVENT_MESSAGE,
  DNS_EVENT_ANSWERS,
  DNS_EVENT_ROW,
});

/** `struct dns_flow_key`: one row's tags. */
export const DNS_FLOW_KEY = cStruct("dns_flow_key", 104, {
  name_hash: [0, 8],
  cgroup_id: [8, 8],
  pid: [16, 4],
  rcode: [20, 2],
  qtype: [22, 2],
  local_port: [24, 2],
  remote_port: [26, 2],
  family: [28, 1],
  transport: [29, 1],
  side: [30, 1],
  truncated: [31, 1],
  local_addr: [32, 16],
  remote_addr: [48, 16],
  comm: [64, COMM_LEN],
  netns: [80, 4],
  _pad: [84, 4],
  cmd: [88, COMMAND_REF],
});

/** `struct dns_flow_stats`: a row's sums. */
export const DNS_FLOW_STATS = cStruct("dns_flow_stats", 32, {
  count: [0, 8],
  latency_sum: [8, 8],
  latency_max: [16, 8],
  retransmits: [24, 8],
});

/** `struct dns_row_event`: a kind byte, then a key and its stats. */
export const DNS_ROW_EVENT = cStruct("dns_row_event", 144, {
  kind: [0, 1],
  _pad: [1, 7],
  key: [8, DNS_FLOW_KEY],
  stats: [112, DNS_FLOW_STATS],
});

/** `struct dns_pending_key`: a query awaiting its response. */
export const DNS_PENDING_KEY = cStruct("dns_pending_key", 56, {
  name_hash: [0, 8],
  id: [8, 2],
  qtype: [10, 2],
  local_port: [12, 2],
  remote_port: [14, 2],
  family: [16, 1],
  side: [17, 1],
  _pad: [18, 2],
  local_addr: [20, 16],
  remote_addr: [36, 16],
  netns: [52, 4],
});

/** `struct dns_pending`. */
export const DNS_PENDING = cStruct("dns_pending", 56, {
  first_ns: [0, 8],
  cgroup_id: [8, 8],
  pid: [16, 4],
  retransmits: [20, 4],
  comm: [24, COMM_LEN],
  cmd: [40, COMMAND_REF],
});

/** `struct dns_name`: the name in wire form as the message spells it, then its length. */
export const DNS_NAME = cStruct("dns_name", 264, { wire: [0, 256], len: [256, 4], _pad: [260, 4] });

/** `struct dns_settings` (.rodata). */
export const DNS_SETTINGS = cStruct("dns_settings", 32, {
  sides: [0, 4],
  aggregate: [4, 4],
  answers: [8, 4],
  fold_low: [12, 2],
  fold_high: [14, 2],
  min_ttl_ns: [16, 8],
  max_ttl_ns: [24, 8],
});
/** `struct dns_switches` (.bss). */
export const DNS_SWITCHES = cStruct("dns_switches", 8, { gen: [0, 4], answers_gen: [4, 4] });

/** `enum dns_count`: the kernel's per-CPU counts, each with the counter it is reported as. */
export const DNS_COUNT = indexEnum("dns_count", {
  DNS_COUNT_FALLBACK: "fallback_messages",
  DNS_COUNT_ANSWERS: "answer_messages",
  DNS_COUNT_RETRANSMITS: "kernel_retransmits",
  DNS_COUNT_IGNORED: "kernel_ignored",
  DNS_COUNT_PENDING_FULL: "pending_full",
  DNS_COUNT_ROWS_VIA_RING: "rows_via_ring",
  DNS_COUNT_NAME_COLLISIONS: "name_collisions",
  DNS_COUNT_PORTS_COLLAPSED: "ports_collapsed",
}, "DNS_COUNTS");
/** The kernel's counts' names, by index. */
export const DNS_COUNTS = DNS_COUNT.names;

/** `enum dns_side`. */
export const DNS_SIDE_CLIENT = 1, DNS_SIDE_SERVER = 2;
export const DNS_SIDE = cEnum("dns_side", { DNS_SIDE_CLIENT, DNS_SIDE_SERVER });

const AF_INET = 2, AF_INET6 = 10, IPPROTO_TCP = 6, IPPROTO_UDP = 17;

/** Bytes the kernel could not have written. */
export class DnsDecodeError extends Error {
  override name = "DnsDecodeError";
}

function familyOf(family: number): "IPv4" | "IPv6" {
  if (family !== AF_INET && family !== AF_INET6) {
    throw new DnsDecodeError(`unknown address family ${family}`);
  }
  return family === AF_INET ? "IPv4" : "IPv6";
}

function transportOf(transport: number): "udp" | "tcp" {
  if (transport !== IPPROTO_UDP && transport !== IPPROTO_TCP) {
    throw new DnsDecodeError(`unknown transport ${transport}`);
  }
  return transport === IPPROTO_UDP ? "udp" : "tcp";
}

function sideOf(side: number): "client" | "server" {
  if (side !== DNS_SIDE_CLIENT && side !== DNS_SIDE_SERVER) {
    throw new DnsDecodeError(`unknown side ${side}`);
  }
  return side === DNS_SIDE_CLIENT ? "client" : "server";
}

/**
 * Decodes one message record of `length` bytes at `offset`. The segment's `timeNs` is the
 * kernel's boot-time clock (monotonic: latencies are differences of it, untouched by wall-clock
 * steps or by the error of converting); add bootToRealtimeOffsetNs() for wall-clock time. The
 * payload is copied (the ring's memory is reused). `cut` says the packet carried more than was
 * captured; `answersOnly` that the kernel counted the request and sent the message for its
 * answers alone.
 */
export function decodeDnsEvent(
  view: DataView,
  offset: number,
  length: number,
): { segment: DnsSegment; cut: boolean; answersOnly: boolean } {
  const L = DNS_EVENT.offsets;
  if (length < DNS_EVENT_HEADER) {
    throw new DnsDecodeError(`DNS record of ${length} bytes, shorter than its header`);
  }
  const bytes = new Uint8Array(view.buffer, view.byteOffset + offset, length);
  const kind = bytes[L.kind];
  if (kind !== DNS_EVENT_MESSAGE && kind !== DNS_EVENT_ANSWERS) {
    throw new DnsDecodeError(`unknown DNS record kind ${kind}`);
  }
  const captured = view.getUint16(offset + L.captured, true);
  const payloadLen = view.getUint32(offset + L.payload_len, true);
  if (captured > DNS_PAYLOAD_MAX || DNS_EVENT_HEADER + captured > length) {
    throw new DnsDecodeError(`DNS record claims ${captured} payload bytes in ${length}`);
  }
  const family = familyOf(bytes[L.family]);
  const transport = transportOf(bytes[L.transport]);
  const side = sideOf(bytes[L.side]);
  const ipv4 = family === "IPv4";
  const pid = view.getUint32(offset + L.pid, true);
  const cut = captured < payloadLen;
  const segment: DnsSegment = {
    timeNs: view.getBigUint64(offset + L.boot_ns, true),
    side,
    outbound: bytes[L.outbound] !== 0,
    family,
    transport,
    localIp: formatAddress(bytes, ipv4, L.local_addr),
    localPort: view.getUint16(offset + L.local_port, true),
    remoteIp: formatAddress(bytes, ipv4, L.remote_addr),
    remotePort: view.getUint16(offset + L.remote_port, true),
    pid,
    cgroupId: view.getBigUint64(offset + L.cgroup_id, true),
    netns: view.getUint32(offset + L.netns, true),
    comm: decodeCommOf(pid, bytes, L.comm),
    payload: bytes.slice(L.payload, L.payload + captured),
  };
  const cmdId = decodeCommandRef(view, offset + L.cmd);
  if (cmdId) segment.cmdId = cmdId;
  // The whole length, so TCP framing stays in step when the kernel copied only the start.
  if (cut) segment.payloadLength = payloadLen;
  return { segment, cut, answersOnly: kind === DNS_EVENT_ANSWERS };
}

/** A row the kernel summed: what one `struct dns_flow_key` says. */
export interface DnsRowKey {
  nameHash: bigint;
  cgroupId: bigint;
  pid: number;
  /** With EDNS's upper bits; -1 a timeout. */
  rcode: number;
  qtype: number;
  side: "client" | "server";
  family: "IPv4" | "IPv6";
  transport: "udp" | "tcp";
  truncated: boolean;
  localIp: string;
  /** 0: the client's ephemeral port, folded in the kernel (`*`). */
  localPort: number;
  remoteIp: string;
  remotePort: number;
  comm: string;
  /** The local socket's network namespace inode (0: unknown). */
  netns: number;
  /** The asking process's typed command, when in one. */
  cmdId?: string;
}

/** A row's sums (`struct dns_flow_stats`). */
export interface DnsRowStats {
  count: bigint;
  latencySum: bigint;
  latencyMax: bigint;
  retransmits: bigint;
}

/** Decodes a `struct dns_flow_key` at `offset` of `bytes`. */
export function decodeRowKey(bytes: Uint8Array, offset = 0): DnsRowKey {
  if (offset + DNS_FLOW_KEY.size > bytes.length) {
    throw new DnsDecodeError(`DNS row key cut short: ${bytes.length - offset} bytes`);
  }
  const L = DNS_FLOW_KEY.offsets;
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, DNS_FLOW_KEY.size);
  const key = bytes.subarray(offset, offset + DNS_FLOW_KEY.size);
  const family = familyOf(key[L.family]);
  const ipv4 = family === "IPv4";
  const pid = view.getUint32(L.pid, true);
  return {
    nameHash: view.getBigUint64(L.name_hash, true),
    cgroupId: view.getBigUint64(L.cgroup_id, true),
    pid,
    rcode: view.getInt16(L.rcode, true),
    qtype: view.getUint16(L.qtype, true),
    side: sideOf(key[L.side]),
    family,
    transport: transportOf(key[L.transport]),
    truncated: key[L.truncated] !== 0,
    localIp: formatAddress(key, ipv4, L.local_addr),
    localPort: view.getUint16(L.local_port, true),
    remoteIp: formatAddress(key, ipv4, L.remote_addr),
    remotePort: view.getUint16(L.remote_port, true),
    comm: decodeCommOf(pid, key, L.comm),
    netns: view.getUint32(L.netns, true),
    ...commandOf(view, L.cmd),
  };
}

/** `{cmdId}` of the `struct command_ref` at `offset`, or {} when it names no command. */
function commandOf(view: DataView, offset: number): { cmdId?: string } {
  const cmdId = decodeCommandRef(view, offset);
  return cmdId ? { cmdId } : {};
}

/** Decodes a `struct dns_flow_stats` at `offset` of `bytes`. */
export function decodeRowStats(bytes: Uint8Array, offset = 0): DnsRowStats {
  if (offset + DNS_FLOW_STATS.size > bytes.length) {
    throw new DnsDecodeError(`DNS row stats cut short: ${bytes.length - offset} bytes`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, DNS_FLOW_STATS.size);
  const L = DNS_FLOW_STATS.offsets;
  return {
    count: view.getBigUint64(L.count, true),
    latencySum: view.getBigUint64(L.latency_sum, true),
    latencyMax: view.getBigUint64(L.latency_max, true),
    retransmits: view.getBigUint64(L.retransmits, true),
  };
}

/** Decodes a `struct dns_row_event` (a row the flows map had no room for). */
export function decodeRowEvent(
  view: DataView,
  offset: number,
  length: number,
): { key: DnsRowKey; stats: DnsRowStats } {
  if (length < DNS_ROW_EVENT.size) {
    throw new DnsDecodeError(`DNS row record of ${length} bytes, not ${DNS_ROW_EVENT.size}`);
  }
  const bytes = new Uint8Array(view.buffer, view.byteOffset + offset, DNS_ROW_EVENT.size);
  return {
    key: decodeRowKey(bytes, DNS_ROW_EVENT.offsets.key),
    stats: decodeRowStats(bytes, DNS_ROW_EVENT.offsets.stats),
  };
}

/** A query awaiting its response in the kernel: its key's and value's fields. */
export interface DnsPendingQuery {
  nameHash: bigint;
  qtype: number;
  side: "client" | "server";
  family: "IPv4" | "IPv6";
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  firstNs: bigint;
  cgroupId: bigint;
  pid: number;
  retransmits: number;
  comm: string;
  netns: number;
  cmdId?: string;
}

/** Decodes a pending query from its `struct dns_pending_key` and `struct dns_pending`. */
export function decodePending(key: Uint8Array, value: Uint8Array): DnsPendingQuery {
  if (key.length < DNS_PENDING_KEY.size || value.length < DNS_PENDING.size) {
    throw new DnsDecodeError(`DNS pending entry cut short: ${key.length}+${value.length} bytes`);
  }
  const K = DNS_PENDING_KEY.offsets, V = DNS_PENDING.offsets;
  const k = new DataView(key.buffer, key.byteOffset, DNS_PENDING_KEY.size);
  const v = new DataView(value.buffer, value.byteOffset, DNS_PENDING.size);
  const family = familyOf(key[K.family]);
  const ipv4 = family === "IPv4";
  const pid = v.getUint32(V.pid, true);
  return {
    nameHash: k.getBigUint64(K.name_hash, true),
    qtype: k.getUint16(K.qtype, true),
    side: sideOf(key[K.side]),
    family,
    localIp: formatAddress(key, ipv4, K.local_addr),
    localPort: k.getUint16(K.local_port, true),
    remoteIp: formatAddress(key, ipv4, K.remote_addr),
    remotePort: k.getUint16(K.remote_port, true),
    firstNs: v.getBigUint64(V.first_ns, true),
    cgroupId: v.getBigUint64(V.cgroup_id, true),
    pid,
    retransmits: v.getUint32(V.retransmits, true),
    comm: decodeCommOf(pid, value, V.comm),
    netns: k.getUint32(K.netns, true),
    ...commandOf(v, V.cmd),
  };
}

/**
 * The `struct dns_pending_key` the kernel would have made for a message it did not read: how
 * user space finds (and takes) the kernel's pending query for a response it reads itself.
 */
export function pendingKeyBytes(
  q: {
    nameHash: bigint;
    id: number;
    qtype: number;
    side: "client" | "server";
    family: "IPv4" | "IPv6";
    localPort: number;
    remotePort: number;
    netns?: number;
  },
  localAddr: Uint8Array,
  remoteAddr: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const K = DNS_PENDING_KEY.offsets;
  const key = new Uint8Array(DNS_PENDING_KEY.size);
  const view = new DataView(key.buffer);
  view.setBigUint64(K.name_hash, q.nameHash, true);
  view.setUint16(K.id, q.id, true);
  view.setUint16(K.qtype, q.qtype, true);
  view.setUint16(K.local_port, q.localPort, true);
  view.setUint16(K.remote_port, q.remotePort, true);
  key[K.family] = q.family === "IPv4" ? AF_INET : AF_INET6;
  key[K.side] = q.side === "client" ? DNS_SIDE_CLIENT : DNS_SIDE_SERVER;
  key.set(localAddr, K.local_addr);
  key.set(remoteAddr, K.remote_addr);
  view.setUint32(K.netns, q.netns ?? 0, true);
  return key;
}

/** A `struct dns_name` value: its wire bytes (without the final 0). */
export function decodeName(value: Uint8Array): Uint8Array {
  if (value.length < DNS_NAME.size) {
    throw new DnsDecodeError(`DNS name value of ${value.length} bytes, not ${DNS_NAME.size}`);
  }
  const len = new DataView(value.buffer, value.byteOffset).getUint32(DNS_NAME.offsets.len, true);
  if (len > DNS_NAME_MAX) {
    throw new DnsDecodeError(`DNS name of ${len} bytes in a ${value.length}-byte value`);
  }
  return value.slice(DNS_NAME.offsets.wire, DNS_NAME.offsets.wire + len);
}

const FNV_OFFSET = 0xcbf29ce484222325n, FNV_PRIME = 0x100000001b3n;

/**
 * The kernel's name hash (bpf/dns.bpf.c hash_name): over the question name in wire form, as
 * the message spells it, taken as little-endian 64-bit words with the last one zero-padded;
 * each word multiplied in as FNV does a byte, then its high bits folded down. Used only for
 * the rare response user space reads itself, so BigInt's cost does not matter.
 */
export function nameHash(wire: Uint8Array): bigint {
  const padded = new Uint8Array(Math.ceil(wire.length / 8) * 8);
  padded.set(wire);
  const words = new DataView(padded.buffer);
  let h = FNV_OFFSET ^ BigInt(wire.length);
  for (let at = 0; at < padded.length; at += 8) {
    h = BigInt.asUintN(64, (h ^ words.getBigUint64(at, true)) * FNV_PRIME);
    h ^= h >> 29n;
  }
  return h;
}

/** bpf/dns.h's types user space never reads: the socket's owner, copied into events. */
export const KERNEL_ONLY_TYPES = ["dns_owner"];

/**
 * The netflow probe's kernel records (bpf/netflow.h), decoded. Pure: tested on hand-built
 * bytes; test/kernel/layout_test.ts checks these offsets against the object's BTF.
 */
import { formatIpv6 } from "../ip.ts";
import ipaddr from "ipaddr.js";

/** `struct flow_key`: member → byte offset. */
export const FLOW_KEY_LAYOUT = {
  pid: 0,
  family: 4,
  transport: 5,
  direction: 6,
  _pad0: 7,
  local_port: 8,
  remote_port: 10,
  local_addr: 12,
  remote_addr: 28,
  _pad1: 44,
} as const;
export const FLOW_KEY_SIZE = 48;

/** `struct flow_id`: a flow key and its cgroup. */
export const FLOW_ID_LAYOUT = { key: 0, cgroup_id: 48 } as const;
export const FLOW_ID_SIZE = 56;

/** `struct flow_counts`: what a flow did. */
export const FLOW_COUNTS_LAYOUT = {
  bytes_written: 0,
  bytes_read: 8,
  rtt_sum_us: 16,
  rtt_var_sum_us: 24,
  retransmits: 32,
  established: 36,
  closed: 40,
  rtt_samples: 44,
  comm: 48,
} as const;
export const FLOW_COUNTS_SIZE = 64;

/** `struct flow_delta`: the iterators' records, and closes through the ring buffer. */
export const FLOW_DELTA_LAYOUT = { id: 0, counts: 56 } as const;
export const FLOW_DELTA_SIZE = 120;

/** `struct udp_counts`: member → byte offset (one per CPU in the per-CPU map). */
export const UDP_COUNTS_LAYOUT = {
  bytes_read: 0,
  bytes_written: 8,
  comm: 16,
  cgroup_id: 32,
} as const;
export const UDP_COUNTS_SIZE = 40;

/** `struct cidr_key` of the exclude_cidrs trie. */
export const CIDR_KEY_SIZE = 20;

/** `struct netflow_switches` (bpf/netflow.h): the .bss section, written by the probe. */
export const NETFLOW_SWITCHES_LAYOUT = {
  exclusions: 0,
  socket_counters: 4,
  epoch: 8,
  gen: 12,
} as const;
export const NETFLOW_SWITCHES_SIZE = 16;

/** `struct netflow_settings` (.rodata). */
export const NETFLOW_SETTINGS_LAYOUT = { fold_low: 0, fold_high: 2 } as const;
export const NETFLOW_SETTINGS_SIZE = 4;

/** `struct iter_walked` (section .data.walked): sockets the iterators' last pass walked. */
export const ITER_WALKED_LAYOUT = { epoch: 0, tcp: 4, udp: 8 } as const;
export const ITER_WALKED_SIZE = 12;

/** `enum netflow_count`: the kernel's per-CPU counts, by index. */
export const NETFLOW_COUNTS = ["ports_collapsed", "closes_via_ring"] as const;

export const AF_INET = 2, AF_INET6 = 10;
export const IPPROTO_TCP = 6, IPPROTO_UDP = 17;

/** `enum flow_direction`. */
export const DIRECTIONS = ["", "outgoing", "incoming"] as const;

/** A flow's identity, as the kernel keys it. */
export interface FlowKey {
  pid: number;
  family: "IPv4" | "IPv6";
  transport: "tcp" | "udp";
  /** `outgoing`, `incoming`, or "" when unknown. */
  direction: string;
  localPort: number;
  remotePort: number;
  localIp: string;
  remoteIp: string;
}

/**
 * What one flow did since it was last reported: a socket's delta, or the sum of several (a
 * flow's closed sockets; deltas merged in a poll).
 */
export interface FlowDelta {
  key: FlowKey;
  comm: string;
  /** The socket's cgroup v2 id, for the `container` transform (0 or absent: unknown). */
  cgroupId?: bigint;
  bytesRead: bigint;
  bytesWritten: bigint;
  /** TCP only, as are the rest. */
  retransmits?: bigint;
  established?: bigint;
  closed?: bigint;
  /** Smoothed RTTs and their variations, µs, summed over `rttSamples` sockets. */
  rttSumUs?: bigint;
  rttVarSumUs?: bigint;
  rttSamples?: bigint;
}

/** Bytes the kernel could not have written. */
export class DecodeError extends Error {
  override name = "DecodeError";
}

const latin1 = new TextDecoder("latin1");

/** A NUL-terminated `char[16]` task name. */
function comm(bytes: Uint8Array, at: number): string {
  const field = bytes.subarray(at, at + 16);
  const end = field.indexOf(0);
  return latin1.decode(end < 0 ? field : field.subarray(0, end));
}

/**
 * Text form of the 16-byte address at `at`: dotted quad for IPv4 (stored mapped), RFC 5952 for
 * IPv6. Indexed in place: a subarray per address costs more than the formatting on hot paths.
 */
export function formatAddress(bytes: Uint8Array, ipv4: boolean, at = 0): string {
  if (ipv4) return `${bytes[at + 12]}.${bytes[at + 13]}.${bytes[at + 14]}.${bytes[at + 15]}`;
  return formatIpv6(bytes, at);
}

/** Decodes a `struct flow_key` at `offset`. */
export function decodeFlowKey(view: DataView, offset: number): FlowKey {
  if (offset + FLOW_KEY_SIZE > view.byteLength) {
    throw new DecodeError(`flow key cut short: ${view.byteLength - offset} bytes`);
  }
  const L = FLOW_KEY_LAYOUT;
  const bytes = new Uint8Array(view.buffer, view.byteOffset + offset, FLOW_KEY_SIZE);
  const family = bytes[L.family], transport = bytes[L.transport], dir = bytes[L.direction];
  if (family !== AF_INET && family !== AF_INET6) {
    throw new DecodeError(`unknown address family ${family}`);
  }
  if (transport !== IPPROTO_TCP && transport !== IPPROTO_UDP) {
    throw new DecodeError(`unknown transport ${transport}`);
  }
  if (dir >= DIRECTIONS.length) throw new DecodeError(`unknown direction ${dir}`);
  const ipv4 = family === AF_INET;
  return {
    pid: view.getUint32(offset + L.pid, true),
    family: ipv4 ? "IPv4" : "IPv6",
    transport: transport === IPPROTO_TCP ? "tcp" : "udp",
    direction: DIRECTIONS[dir],
    localPort: view.getUint16(offset + L.local_port, true),
    remotePort: view.getUint16(offset + L.remote_port, true),
    localIp: formatAddress(bytes, ipv4, L.local_addr),
    remoteIp: formatAddress(bytes, ipv4, L.remote_addr),
  };
}

/**
 * Decodes one `struct flow_delta` at `offset` (an iterator's record, or a close through the
 * ring buffer): UDP deltas carry bytes only.
 */
export function decodeFlowDelta(view: DataView, offset: number): FlowDelta {
  if (offset + FLOW_DELTA_SIZE > view.byteLength) {
    throw new DecodeError(
      `flow record cut short: ${view.byteLength - offset} of ${FLOW_DELTA_SIZE} bytes`,
    );
  }
  const key = decodeFlowKey(view, offset + FLOW_ID_LAYOUT.key);
  const at = offset + FLOW_DELTA_LAYOUT.counts, C = FLOW_COUNTS_LAYOUT;
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  const delta: FlowDelta = {
    key,
    comm: comm(bytes, at + C.comm),
    bytesWritten: view.getBigUint64(at + C.bytes_written, true),
    bytesRead: view.getBigUint64(at + C.bytes_read, true),
  };
  const cgroupId = view.getBigUint64(offset + FLOW_ID_LAYOUT.cgroup_id, true);
  if (cgroupId) delta.cgroupId = cgroupId;
  if (key.transport === "tcp") {
    delta.retransmits = BigInt(view.getUint32(at + C.retransmits, true));
    delta.established = BigInt(view.getUint32(at + C.established, true));
    delta.closed = BigInt(view.getUint32(at + C.closed, true));
    delta.rttSumUs = view.getBigUint64(at + C.rtt_sum_us, true);
    delta.rttVarSumUs = view.getBigUint64(at + C.rtt_var_sum_us, true);
    delta.rttSamples = BigInt(view.getUint32(at + C.rtt_samples, true));
  }
  return delta;
}

/** Decodes a closed_flows entry: its `struct flow_id` key and `struct flow_counts` value. */
export function decodeClosedFlow(key: Uint8Array, value: Uint8Array): FlowDelta {
  const bytes = new Uint8Array(FLOW_DELTA_SIZE);
  bytes.set(key.subarray(0, FLOW_ID_SIZE), FLOW_DELTA_LAYOUT.id);
  bytes.set(value.subarray(0, FLOW_COUNTS_SIZE), FLOW_DELTA_LAYOUT.counts);
  return decodeFlowDelta(new DataView(bytes.buffer), 0);
}

/**
 * Sums a per-CPU `struct udp_counts` value (one slot per possible CPU); the name and cgroup
 * are the first CPU's that has them (a CPU that saw no datagram of the flow has zeros).
 */
export function sumUdpCounts(
  value: Uint8Array,
): { bytesRead: bigint; bytesWritten: bigint; comm: string; cgroupId: bigint } {
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  let bytesRead = 0n, bytesWritten = 0n, name = "", cgroupId = 0n;
  for (let at = 0; at + UDP_COUNTS_SIZE <= value.length; at += UDP_COUNTS_SIZE) {
    bytesRead += view.getBigUint64(at + UDP_COUNTS_LAYOUT.bytes_read, true);
    bytesWritten += view.getBigUint64(at + UDP_COUNTS_LAYOUT.bytes_written, true);
    if (!name) name = comm(value, at + UDP_COUNTS_LAYOUT.comm);
    if (!cgroupId) cgroupId = view.getBigUint64(at + UDP_COUNTS_LAYOUT.cgroup_id, true);
  }
  return { bytesRead, bytesWritten, comm: name, cgroupId };
}

/**
 * A `struct cidr_key` for the exclude_cidrs trie: IPv4 networks as IPv4-mapped IPv6 (the
 * kernel stores every address that way), so "10.0.0.0/8" is ::ffff:10.0.0.0/104.
 */
export function cidrKey(cidr: string): Uint8Array<ArrayBuffer> {
  const [addr, bits] = ipaddr.parseCIDR(cidr);
  const key = new Uint8Array(CIDR_KEY_SIZE);
  const view = new DataView(key.buffer);
  if (addr.kind() === "ipv4") {
    view.setUint32(0, bits + 96, true);
    key.set([0xff, 0xff], 4 + 10);
    key.set(addr.toByteArray(), 4 + 12);
  } else {
    view.setUint32(0, bits, true);
    key.set(addr.toByteArray(), 4);
  }
  return key;
}

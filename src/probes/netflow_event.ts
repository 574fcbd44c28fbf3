/**
 * The netflow probe's kernel records (bpf/netflow.h), decoded. Pure: tested on hand-built
 * bytes; src/probes/layout_test.ts checks these layouts and enums against the object's BTF.
 */
import { formatIpv6, parseNetwork } from "../ip.ts";
import { COMM_LEN, decodeComm } from "./comm.ts";
import { COMMAND_REF, decodeCommandRef } from "./commands.ts";
import { cEnum, cStruct, indexEnum } from "./layout.ts";

/** `struct flow_key`: a flow as the kernel keys it. */
export const FLOW_KEY = cStruct("flow_key", 48, {
  pid: [0, 4],
  family: [4, 1],
  transport: [5, 1],
  direction: [6, 1],
  _pad0: [7, 1],
  local_port: [8, 2],
  remote_port: [10, 2],
  local_addr: [12, 16],
  remote_addr: [28, 16],
  netns: [44, 4],
});

/** `struct flow_id`: a flow key and its cgroup. */
export const FLOW_ID = cStruct("flow_id", 56, { key: [0, FLOW_KEY], cgroup_id: [48, 8] });

/** `struct flow_counts`: what a flow did. */
export const FLOW_COUNTS = cStruct("flow_counts", 104, {
  bytes_written: [0, 8],
  bytes_read: [8, 8],
  rtt_sum_us: [16, 8],
  rtt_var_sum_us: [24, 8],
  retransmits: [32, 4],
  established: [36, 4],
  closed: [40, 4],
  rtt_samples: [44, 4],
  comm: [48, COMM_LEN],
  connect_refused: [64, 4],
  connect_timeouts: [68, 4],
  connect_unreachable: [72, 4],
  connect_aborted: [76, 4],
  resets_received: [80, 4],
  resets_sent: [84, 4],
  cmd: [88, COMMAND_REF],
});

/** `struct flow_delta`: the iterators' records, and closes through the ring buffer. */
export const FLOW_DELTA = cStruct("flow_delta", 160, {
  id: [0, FLOW_ID],
  counts: [56, FLOW_COUNTS],
});

/** `struct udp_counts` (one per CPU in the per-CPU map). */
export const UDP_COUNTS = cStruct("udp_counts", 56, {
  bytes_read: [0, 8],
  bytes_written: [8, 8],
  comm: [16, COMM_LEN],
  cgroup_id: [32, 8],
  cmd: [40, COMMAND_REF],
});

/** `struct cidr_key` of the exclude_cidrs trie. */
export const CIDR_KEY = cStruct("cidr_key", 20, { prefixlen: [0, 4], addr: [4, 16] });

/** `struct netflow_switches` (bpf/netflow.h): the .bss section, written by the probe. */
export const NETFLOW_SWITCHES = cStruct("netflow_switches", 16, {
  exclusions: [0, 4],
  socket_counters: [4, 4],
  epoch: [8, 4],
  gen: [12, 4],
});

/** `struct netflow_settings` (.rodata). */
export const NETFLOW_SETTINGS = cStruct("netflow_settings", 4, {
  fold_low: [0, 2],
  fold_high: [2, 2],
});

/** `struct iter_walked` (section .data.walked): sockets the iterators' last pass walked. */
export const ITER_WALKED = cStruct("iter_walked", 12, { epoch: [0, 4], tcp: [4, 4], udp: [8, 4] });

/** `enum netflow_count`: the kernel's per-CPU counts, each with its counter's name. */
export const NETFLOW_COUNT = indexEnum("netflow_count", {
  NETFLOW_COUNT_PORTS_COLLAPSED: "ports_collapsed",
  NETFLOW_COUNT_CLOSES_VIA_RING: "closes_via_ring",
}, "NETFLOW_COUNTS");
/** The kernel's per-CPU counts' names, by index. */
export const NETFLOW_COUNTS = NETFLOW_COUNT.names;

/** `enum netflow_exclusion`: bits of `exclusions`, which exclude maps hold entries. */
export const EXCLUDE_PORTS = 1, EXCLUDE_PIDS = 2, EXCLUDE_CIDRS = 4;
export const NETFLOW_EXCLUSION = cEnum("netflow_exclusion", {
  EXCLUDE_PORTS,
  EXCLUDE_PIDS,
  EXCLUDE_CIDRS,
});

export const AF_INET = 2, AF_INET6 = 10;
export const IPPROTO_TCP = 6, IPPROTO_UDP = 17;

/** `enum flow_direction`: each with the `direction` tag it gives ("": unknown). */
export const FLOW_DIRECTION = indexEnum("flow_direction", {
  DIR_UNKNOWN: "",
  DIR_OUTGOING: "outgoing",
  DIR_INCOMING: "incoming",
});
export const DIRECTIONS = FLOW_DIRECTION.names;

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
  /** The socket's network namespace inode (0: unknown, as in records of older recordings). */
  netns: number;
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
  /** The typed command of the socket's process (a bash probe's `cmd_id`), when in one. */
  cmdId?: string;
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
  /** Failed connects by cause, and resets (bpf/netflow.h struct flow_counts). */
  connectRefused?: bigint;
  connectTimeouts?: bigint;
  connectUnreachable?: bigint;
  connectAborted?: bigint;
  resetsReceived?: bigint;
  resetsSent?: bigint;
  /** Where conntrack's DNAT sent an outgoing flow (netflow_nat.ts); absent: not translated. */
  dstNat?: { ip: string; port: number };
}

/** Bytes the kernel could not have written. */
export class DecodeError extends Error {
  override name = "DecodeError";
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
  if (offset + FLOW_KEY.size > view.byteLength) {
    throw new DecodeError(`flow key cut short: ${view.byteLength - offset} bytes`);
  }
  const L = FLOW_KEY.offsets;
  const bytes = new Uint8Array(view.buffer, view.byteOffset + offset, FLOW_KEY.size);
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
    netns: view.getUint32(offset + L.netns, true),
  };
}

/**
 * Decodes one `struct flow_delta` at `offset` (an iterator's record, or a close through the
 * ring buffer): UDP deltas carry bytes only.
 */
export function decodeFlowDelta(view: DataView, offset: number): FlowDelta {
  if (offset + FLOW_DELTA.size > view.byteLength) {
    throw new DecodeError(
      `flow record cut short: ${view.byteLength - offset} of ${FLOW_DELTA.size} bytes`,
    );
  }
  const key = decodeFlowKey(view, offset + FLOW_ID.offsets.key);
  const at = offset + FLOW_DELTA.offsets.counts, C = FLOW_COUNTS.offsets;
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  const delta: FlowDelta = {
    key,
    comm: decodeComm(bytes, at + C.comm),
    bytesWritten: view.getBigUint64(at + C.bytes_written, true),
    bytesRead: view.getBigUint64(at + C.bytes_read, true),
  };
  const cgroupId = view.getBigUint64(offset + FLOW_ID.offsets.cgroup_id, true);
  if (cgroupId) delta.cgroupId = cgroupId;
  const cmdId = decodeCommandRef(view, at + C.cmd);
  if (cmdId) delta.cmdId = cmdId;
  if (key.transport === "tcp") {
    delta.retransmits = BigInt(view.getUint32(at + C.retransmits, true));
    delta.established = BigInt(view.getUint32(at + C.established, true));
    delta.closed = BigInt(view.getUint32(at + C.closed, true));
    delta.rttSumUs = view.getBigUint64(at + C.rtt_sum_us, true);
    delta.rttVarSumUs = view.getBigUint64(at + C.rtt_var_sum_us, true);
    delta.rttSamples = BigInt(view.getUint32(at + C.rtt_samples, true));
    delta.connectRefused = BigInt(view.getUint32(at + C.connect_refused, true));
    delta.connectTimeouts = BigInt(view.getUint32(at + C.connect_timeouts, true));
    delta.connectUnreachable = BigInt(view.getUint32(at + C.connect_unreachable, true));
    delta.connectAborted = BigInt(view.getUint32(at + C.connect_aborted, true));
    delta.resetsReceived = BigInt(view.getUint32(at + C.resets_received, true));
    delta.resetsSent = BigInt(view.getUint32(at + C.resets_sent, true));
  }
  return delta;
}

/** Decodes a closed_flows entry: its `struct flow_id` key and `struct flow_counts` value. */
export function decodeClosedFlow(key: Uint8Array, value: Uint8Array): FlowDelta {
  const bytes = new Uint8Array(FLOW_DELTA.size);
  bytes.set(key.subarray(0, FLOW_ID.size), FLOW_DELTA.offsets.id);
  bytes.set(value.subarray(0, FLOW_COUNTS.size), FLOW_DELTA.offsets.counts);
  return decodeFlowDelta(new DataView(bytes.buffer), 0);
}

/**
 * Sums a per-CPU `struct udp_counts` value (one slot per possible CPU); the name, cgroup and
 * command are the first CPU's that has them (a CPU that saw no datagram of the flow has zeros).
 */
export function sumUdpCounts(
  value: Uint8Array,
): { bytesRead: bigint; bytesWritten: bigint; comm: string; cgroupId: bigint; cmdId?: string } {
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  let bytesRead = 0n, bytesWritten = 0n, name = "", cgroupId = 0n;
  let cmdId: string | undefined;
  for (let at = 0; at + UDP_COUNTS.size <= value.length; at += UDP_COUNTS.size) {
    bytesRead += view.getBigUint64(at + UDP_COUNTS.offsets.bytes_read, true);
    bytesWritten += view.getBigUint64(at + UDP_COUNTS.offsets.bytes_written, true);
    if (!name) name = decodeComm(value, at + UDP_COUNTS.offsets.comm);
    if (!cgroupId) cgroupId = view.getBigUint64(at + UDP_COUNTS.offsets.cgroup_id, true);
    cmdId ??= decodeCommandRef(view, at + UDP_COUNTS.offsets.cmd);
  }
  return cmdId === undefined
    ? { bytesRead, bytesWritten, comm: name, cgroupId }
    : { bytesRead, bytesWritten, comm: name, cgroupId, cmdId };
}

/**
 * A `struct cidr_key` for the exclude_cidrs trie: IPv4 networks as IPv4-mapped IPv6 (the
 * kernel stores every address that way), so "10.0.0.0/8" is ::ffff:10.0.0.0/104.
 */
export function cidrKey(cidr: string): Uint8Array<ArrayBuffer> {
  const network = parseNetwork(cidr);
  if (typeof network === "string") throw new Error(network); // the schema checked it already
  const { address: addr, bits } = network;
  const key = new Uint8Array(CIDR_KEY.size);
  const view = new DataView(key.buffer), L = CIDR_KEY.offsets;
  if (addr.kind() === "ipv4") {
    view.setUint32(L.prefixlen, bits + 96, true);
    key.set([0xff, 0xff], L.addr + 10);
    key.set(addr.toByteArray(), L.addr + 12);
  } else {
    view.setUint32(L.prefixlen, bits, true);
    key.set(addr.toByteArray(), L.addr);
  }
  return key;
}

/** bpf/netflow.h's types user space never reads: socket storage, the kernel's bookkeeping. */
export const KERNEL_ONLY_TYPES = [
  "sock_totals",
  "sock_report",
  "tcp_sock_state",
  "udp_peer",
  "udp_sock_state",
];

/**
 * The netdrop probe's kernel records (bpf/netdrop.h), decoded, and the drop reasons' names.
 * Pure: tested on hand-built bytes and enum members.
 */
import { ipType } from "../system/ip_type.ts";
import type { Record } from "../record.ts";
import { COMM_LEN, decodeComm } from "./comm.ts";
import { cEnum, cStruct, indexEnum } from "./layout.ts";
import { AF_INET, AF_INET6, DecodeError, formatAddress } from "./netflow_event.ts";

export { DecodeError };

/** `struct drop_key`: one kind of drop, as the kernel keys it. */
export const DROP_KEY = cStruct("drop_key", 64, {
  reason: [0, 4],
  pid: [4, 4],
  cgroup_id: [8, 8],
  family: [16, 1],
  transport: [17, 1],
  direction: [18, 1],
  flags: [19, 1],
  local_port: [20, 2],
  remote_port: [22, 2],
  local_addr: [24, 16],
  remote_addr: [40, 16],
  netns: [56, 4],
  _pad: [60, 4],
});

/** `struct drop_counts`: what was dropped of one key. */
export const DROP_COUNTS = cStruct("drop_counts", 32, {
  packets: [0, 8],
  bytes: [8, 8],
  comm: [16, COMM_LEN],
});

/** `struct netdrop_settings` (.rodata) and `struct netdrop_switches` (.bss). */
export const NETDROP_SETTINGS = cStruct("netdrop_settings", 4, {
  fold_low: [0, 2],
  fold_high: [2, 2],
});
export const NETDROP_SWITCHES = cStruct("netdrop_switches", 4, { gen: [0, 4] });

/** `enum netdrop_count`: the kernel's per-CPU counts, each with its counter's name. */
export const NETDROP_COUNT = indexEnum("netdrop_count", {
  NETDROP_COUNT_KEYS_OVERFLOWED: "keys_overflowed",
  NETDROP_COUNT_REASONS_FULL: "reasons_full",
  NETDROP_COUNT_PORTS_COLLAPSED: "ports_collapsed",
}, "NETDROP_COUNTS");
/** The kernel's per-CPU counts' names, by index. */
export const NETDROP_COUNTS = NETDROP_COUNT.names;

/** `enum drop_direction`: how the packet travelled, each with its tag value. */
export const DROP_DIRECTION = indexEnum("drop_direction", {
  DROP_DIR_UNKNOWN: "unknown",
  DROP_DIR_INGRESS: "ingress",
  DROP_DIR_EGRESS: "egress",
});
export const DROP_DIRECTIONS = DROP_DIRECTION.names;

/** `enum drop_key_flag`: bits of `flags`. */
export const DROP_KEY_LOCAL_FOLDED = 1, DROP_KEY_REMOTE_FOLDED = 2;
export const DROP_KEY_FLAG = cEnum("drop_key_flag", {
  DROP_KEY_LOCAL_FOLDED,
  DROP_KEY_REMOTE_FOLDED,
});

/** bpf/netdrop.h's types user space never reads: the socket owner the kernel copies in. */
export const KERNEL_ONLY_TYPES = ["sock_owner"];

const TRANSPORTS: { [protocol: number]: string } = { 1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6" };

/** One kind of drop, as the kernel keys it. */
export interface DropKey {
  reason: number;
  /** The socket owner's pid; 0: unknown. */
  pid: number;
  /** The socket's cgroup v2 id; 0n: no socket. */
  cgroupId: bigint;
  /** The network namespace's inode (the device's, else the socket's); 0: unknown. */
  netns: number;
  direction: (typeof DROP_DIRECTIONS)[number];
  /** Absent: the packet had no network header (an early drop) or was not IP. */
  packet?: {
    family: "IPv4" | "IPv6";
    transport: string;
    localIp: string;
    remoteIp: string;
    /** Absent: no ports (not TCP or UDP, a later fragment); "*": a folded client port. */
    localPort?: string;
    remotePort?: string;
  };
}

/** What was dropped of one key since the last poll. */
export interface DropCounts {
  packets: bigint;
  bytes: bigint;
  comm: string;
}

/** Decodes a `struct drop_key`. */
export function decodeDropKey(bytes: Uint8Array): DropKey {
  if (bytes.length < DROP_KEY.size) {
    throw new DecodeError(`drop key of ${bytes.length} bytes, not ${DROP_KEY.size}`);
  }
  const L = DROP_KEY.offsets;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const direction = DROP_DIRECTIONS[bytes[L.direction]];
  if (direction === undefined) throw new DecodeError(`unknown direction ${bytes[L.direction]}`);
  const key: DropKey = {
    reason: view.getUint32(L.reason, true),
    pid: view.getUint32(L.pid, true),
    cgroupId: view.getBigUint64(L.cgroup_id, true),
    netns: view.getUint32(L.netns, true),
    direction,
  };
  const family = bytes[L.family];
  if (family === 0) return key;
  if (family !== AF_INET && family !== AF_INET6) {
    throw new DecodeError(`unknown address family ${family}`);
  }
  const ipv4 = family === AF_INET, protocol = bytes[L.transport], flags = bytes[L.flags];
  const transport = TRANSPORTS[protocol] ?? String(protocol);
  key.packet = {
    family: ipv4 ? "IPv4" : "IPv6",
    transport,
    localIp: formatAddress(bytes, ipv4, L.local_addr),
    remoteIp: formatAddress(bytes, ipv4, L.remote_addr),
  };
  if (transport === "tcp" || transport === "udp") {
    const port = (at: number, folded: number) =>
      flags & folded ? "*" : String(view.getUint16(at, true));
    key.packet.localPort = port(L.local_port, DROP_KEY_LOCAL_FOLDED);
    key.packet.remotePort = port(L.remote_port, DROP_KEY_REMOTE_FOLDED);
  }
  return key;
}

/** Decodes a `struct drop_counts`. */
export function decodeDropCounts(bytes: Uint8Array): DropCounts {
  if (bytes.length < DROP_COUNTS.size) {
    throw new DecodeError(`drop counts of ${bytes.length} bytes, not ${DROP_COUNTS.size}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const L = DROP_COUNTS.offsets;
  return {
    packets: view.getBigUint64(L.packets, true),
    bytes: view.getBigUint64(L.bytes, true),
    comm: decodeComm(bytes, L.comm),
  };
}

/** One member of a kernel enum, as BTF lists it. */
export interface EnumMember {
  name: string;
  value: number;
}

/** The reasons' names from the kernel's `enum skb_drop_reason` and `enum skb_drop_reason_subsys`. */
export class ReasonNames {
  readonly #names = new Map<number, string>();
  readonly #subsystems = new Map<number, string>();

  constructor(reasons: readonly EnumMember[], subsystems: readonly EnumMember[]) {
    for (const { name, value } of reasons) {
      // SKB_DROP_REASON_MAX and _SUBSYS_MASK are bounds, not reasons.
      if (/^SKB_DROP_REASON_(MAX|SUBSYS_MASK)$/.test(name)) continue;
      this.#names.set(value >>> 0, name.replace(/^SKB_DROP_REASON_|^SKB_/, ""));
    }
    for (const { name, value } of subsystems) {
      if (name === "SKB_DROP_REASON_SUBSYS_NUM") continue;
      this.#subsystems.set(value, name.replace(/^SKB_DROP_REASON_SUBSYS_/, ""));
    }
  }

  /** The kernel's name ("NO_SOCKET"), or `<subsystem>_<n>` for a value this kernel names not. */
  name(reason: number): string {
    const known = this.#names.get(reason);
    if (known !== undefined) return known;
    // The top 16 bits name the subsystem (SKB_DROP_REASON_SUBSYS_SHIFT), the rest its reason.
    const subsystem = reason >>> 16;
    const prefix = this.#subsystems.get(subsystem) ?? `SUBSYS${subsystem}`;
    return `${prefix}_${reason & 0xffff}`;
  }
}

/**
 * A key's drops as a `netdrop` record. Tags are netflow's names (`src_*` this host's end,
 * `dst_*` the peer's), present only when known: no address tags for a drop before its network
 * header, no port tags for a packet without ports, no pid or process_name for a socket whose
 * owner is unknown. The socket's cgroup id is the field `cgroup_id`, as in netflow.
 */
export function dropRecord(
  reason: string,
  key: DropKey | undefined,
  counts: DropCounts,
  host: string,
  time: bigint,
): Record {
  const tags: { [name: string]: string } = { host, source: "netdrop", reason };
  const fields: Record["fields"] = { packets: counts.packets, bytes: counts.bytes };
  if (key) {
    tags.direction = key.direction;
    if (key.netns) tags.netns = String(key.netns);
    const p = key.packet;
    if (p) {
      tags.family = p.family;
      tags.transport = p.transport;
      tags.src_ip = p.localIp;
      tags.src_ip_type = ipType(p.localIp);
      tags.dst_ip = p.remoteIp;
      tags.dst_ip_type = ipType(p.remoteIp);
      if (p.localPort !== undefined) tags.src_port = p.localPort;
      if (p.remotePort !== undefined) tags.dst_port = p.remotePort;
    }
    if (key.pid) {
      tags.pid = String(key.pid);
      tags.process_name = counts.comm;
    }
    if (key.cgroupId) fields.cgroup_id = key.cgroupId;
  }
  return { measurement: "netdrop", tags, fields, time };
}

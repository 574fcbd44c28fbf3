/**
 * Turns the kernel's cumulative counters into per-flow deltas, the netflow probe's records.
 *
 * The kernel keeps totals, never resets them: a TCP socket's own counters (read each poll by
 * the iterator, and once more when it closes), a connected UDP socket's counters kept the same
 * way, and per-flow UDP byte totals in a per-CPU map for the other datagrams. This side
 * remembers the last total it reported for each socket (by cookie, which is never reused) and
 * each UDP flow, and reports the difference. A socket first seen here reports from
 * zero, so a connection open before the collector started counts its bytes from its start;
 * `tcp_established` counts only handshakes the kernel side saw.
 *
 * Pure and clock-free: the probe stage feeds it and stamps the records.
 */
import type { FieldValue, Record } from "../record.ts";
import { ipType } from "../system/ip_type.ts";
import type { FlowKey, TcpSocketCounters } from "./netflow_event.ts";

/** What one flow did since it was last reported. */
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
  /** The socket's latest smoothed RTT and its variation, in µs. */
  rttUs?: bigint;
  rttVarUs?: bigint;
}

interface TcpBaseline {
  written: bigint;
  read: bigint;
  retransmits: number;
  established: boolean;
  /** The iterator pass that last listed the socket. */
  seen: number;
  /** A UDP socket counting in its own storage (same shape, no TCP fields). */
  udp: boolean;
}

interface UdpBaseline {
  read: bigint;
  written: bigint;
  /** Polls in a row with no new bytes. */
  idle: number;
}

/** A flow key as one string: the identity deltas are summed under within a poll. */
export function flowId(k: FlowKey): string {
  return `${k.transport}|${k.family}|${k.pid}|${k.direction}|${k.localIp}|${k.localPort}|${k.remoteIp}|${k.remotePort}`;
}

/** Remembers reported totals; see the module doc. */
export class FlowAccounts {
  readonly #tcp = new Map<bigint, TcpBaseline>();
  readonly #udp = new Map<string, UdpBaseline>();
  /** How many of #tcp are UDP sockets. */
  #udpSockets = 0;
  #pass = 0;

  /** Sockets and UDP flows remembered (for the `tracked_*` gauges; a UDP socket is a flow). */
  get size(): { tcpSockets: number; udpFlows: number } {
    return {
      tcpSockets: this.#tcp.size - this.#udpSockets,
      udpFlows: this.#udp.size + this.#udpSockets,
    };
  }

  #forget(cookie: bigint, base: TcpBaseline | undefined): void {
    if (base && this.#tcp.delete(cookie) && base.udp) this.#udpSockets--;
  }

  /**
   * One socket's totals (from an iterator or its close): a TCP socket, or a connected UDP socket
   * counting in its own storage. The delta since last time, or undefined when nothing changed.
   * A closed socket is forgotten.
   */
  tcp(s: TcpSocketCounters): FlowDelta | undefined {
    const known = this.#tcp.get(s.cookie), udp = s.key.transport === "udp";
    const base = known ??
      { written: 0n, read: 0n, retransmits: 0, established: false, seen: this.#pass, udp };
    // The FIN adjustment can take one byte back when a close is seen after a poll counted it.
    const written = s.bytesWritten > base.written ? s.bytesWritten - base.written : 0n;
    const read = s.bytesRead > base.read ? s.bytesRead - base.read : 0n;
    const retransmits = BigInt((s.retransmits - base.retransmits) >>> 0);
    const established = s.handshakeSeen && !base.established ? 1n : 0n;
    const closed = s.closed ? 1n : 0n;
    if (s.closed) {
      this.#forget(s.cookie, known);
    } else {
      if (!known && udp) this.#udpSockets++;
      this.#tcp.set(s.cookie, {
        written: s.bytesWritten > base.written ? s.bytesWritten : base.written,
        read: s.bytesRead > base.read ? s.bytesRead : base.read,
        retransmits: s.retransmits,
        established: base.established || s.handshakeSeen,
        seen: this.#pass,
        udp,
      });
    }
    if (udp) {
      if (!written && !read) return undefined;
      return {
        key: s.key,
        comm: s.comm,
        ...(s.cgroupId ? { cgroupId: s.cgroupId } : {}),
        bytesRead: read,
        bytesWritten: written,
      };
    }
    if (!written && !read && !retransmits && !established && !closed) return undefined;
    return {
      key: s.key,
      comm: s.comm,
      cgroupId: s.cgroupId,
      bytesRead: read,
      bytesWritten: written,
      retransmits,
      established,
      closed,
      rttUs: BigInt(s.rttUs),
      rttVarUs: BigInt(s.rttVarUs),
    };
  }

  /**
   * Ends an iterator pass: forgets sockets the last two passes did not list (gone without a
   * close we read, e.g. a lost ring record). Two, not one: a socket closing during a pass has
   * its close record still on the way, and it needs the baseline.
   */
  endTcpPass(): void {
    for (const [cookie, base] of this.#tcp) {
      if (this.#pass - base.seen >= 2) this.#forget(cookie, base);
    }
    this.#pass++;
  }

  /**
   * One UDP flow's totals; the delta, or undefined when none. `idle` says whether the flow has
   * had no bytes for `idlePolls` polls in a row: the caller then deletes it from the kernel
   * map and calls {@linkcode forgetUdp}.
   */
  udp(
    id: string,
    key: FlowKey,
    comm: string,
    totals: { bytesRead: bigint; bytesWritten: bigint; cgroupId?: bigint },
    idlePolls: number,
  ): { delta?: FlowDelta; idle: boolean } {
    const base = this.#udp.get(id) ?? { read: 0n, written: 0n, idle: 0 };
    const read = totals.bytesRead - base.read, written = totals.bytesWritten - base.written;
    const changed = read !== 0n || written !== 0n;
    const idle = changed ? 0 : base.idle + 1;
    this.#udp.set(id, { read: totals.bytesRead, written: totals.bytesWritten, idle });
    return {
      // Negative only if the kernel entry was deleted and made again: start from it.
      delta: changed && read >= 0n && written >= 0n
        ? {
          key,
          comm,
          ...(totals.cgroupId ? { cgroupId: totals.cgroupId } : {}),
          bytesRead: read,
          bytesWritten: written,
        }
        : undefined,
      idle: idle >= idlePolls,
    };
  }

  forgetUdp(id: string): void {
    this.#udp.delete(id);
  }
}

/**
 * Sums deltas of the same flow (several sockets of one process and 4-tuple, over time). The
 * cgroup is part of the identity: containers with their own network namespaces can share a
 * 4-tuple, and an accepted socket's pid may still be unknown (0).
 */
export function mergeDeltas(deltas: Iterable<FlowDelta>): FlowDelta[] {
  const byId = new Map<string, FlowDelta>();
  for (const d of deltas) {
    const id = `${flowId(d.key)}|${d.cgroupId ?? 0n}`;
    const seen = byId.get(id);
    if (!seen) {
      byId.set(id, { ...d });
      continue;
    }
    seen.bytesRead += d.bytesRead;
    seen.bytesWritten += d.bytesWritten;
    if (d.retransmits !== undefined) seen.retransmits = (seen.retransmits ?? 0n) + d.retransmits;
    if (d.established !== undefined) seen.established = (seen.established ?? 0n) + d.established;
    if (d.closed !== undefined) seen.closed = (seen.closed ?? 0n) + d.closed;
    if (d.rttUs !== undefined) [seen.rttUs, seen.rttVarUs] = [d.rttUs, d.rttVarUs];
  }
  return [...byId.values()];
}

const UNSPECIFIED = new Set(["0.0.0.0", "::"]);

// A host talks to few addresses and every closing connection is a record: classify each address
// once (parsing with ipaddr.js is most of a record's cost). Bounded: cleared when full.
const typeCache = new Map<string, string>();
function cachedIpType(ip: string): string {
  let t = typeCache.get(ip);
  if (t === undefined) {
    if (typeCache.size >= 4096) typeCache.clear();
    t = ipType(ip);
    typeCache.set(ip, t);
  }
  return t;
}

/**
 * The local address of a datagram from a socket bound to every address (0.0.0.0 or ::) is
 * not in the socket. To a loopback peer it left from loopback; elsewhere it stays unspecified.
 */
function localIp(k: FlowKey): string {
  if (!UNSPECIFIED.has(k.localIp) || cachedIpType(k.remoteIp) !== "loopback") return k.localIp;
  return k.family === "IPv4" ? "127.0.0.1" : "::1";
}

/**
 * A delta as a `netflow` record (tags and fields of ../shared/reference/measurements.md, plus
 * `process_name`). `src_*` is this host's end, `dst_*` the peer's. The socket's cgroup id is
 * the integer field `cgroup_id` (not a tag: it is no series dimension; the `container`
 * transform turns it into `container_id`).
 */
export function flowRecord(d: FlowDelta, host: string, time: bigint): Record {
  const k = d.key, src = localIp(k);
  const fields: { [name: string]: FieldValue } = {
    bytes_read: d.bytesRead,
    bytes_written: d.bytesWritten,
  };
  if (k.transport === "tcp") {
    fields.retransmits = d.retransmits ?? 0n;
    fields.tcp_established = d.established ?? 0n;
    fields.tcp_closed = d.closed ?? 0n;
    if (d.rttUs !== undefined) fields.rtt = d.rttUs;
    if (d.rttVarUs !== undefined) fields.rtt_var = d.rttVarUs;
  }
  if (d.cgroupId) fields.cgroup_id = d.cgroupId;
  return {
    measurement: "netflow",
    tags: {
      host,
      source: "netflow",
      direction: k.direction || "unknown",
      dst_domain: "",
      dst_ip: k.remoteIp,
      dst_ip_type: cachedIpType(k.remoteIp),
      dst_port: String(k.remotePort),
      family: k.family,
      pid: String(k.pid),
      process_name: d.comm,
      src_ip: src,
      src_ip_type: cachedIpType(src),
      src_port: String(k.localPort),
      transport: k.transport,
    },
    fields,
    time,
  };
}

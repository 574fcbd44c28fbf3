/**
 * The netflow probe's records from what the kernel reports.
 *
 * The kernel reports TCP sockets and connected UDP sockets as deltas already (each socket's
 * storage remembers what user space took: bpf/netflow.h struct sock_report), and closed
 * sockets summed by flow. Unconnected UDP datagrams are counted per flow in a per-CPU map of
 * cumulative totals, which {@linkcode FlowAccounts} turns into deltas: it remembers the last
 * total it reported for each UDP flow. Deltas of one flow in a poll are merged
 * ({@linkcode mergeDeltas}); the client's ephemeral port may be folded to `*` first
 * ({@linkcode foldClientPort}) when the pipeline lets the probe do what its ephemeral_port
 * stage would.
 *
 * Pure and clock-free: the probe stage feeds it and stamps the records.
 */
import type { FieldValue, Record } from "../record.ts";
import type { PortRange } from "../pipeline/stage.ts";
import { ipType } from "../system/ip_type.ts";
import type { FlowDelta, FlowKey } from "./netflow_event.ts";
import { TCP_FAILURES } from "./netflow_fields.ts";

export type { FlowDelta };

interface UdpBaseline {
  read: bigint;
  written: bigint;
  /** Polls in a row with no new bytes. */
  idle: number;
}

/** A flow key as one string: the identity deltas are summed under within a poll. */
export function flowId(k: FlowKey): string {
  return `${k.transport}|${k.family}|${k.pid}|${k.direction}|${k.localIp}|${k.localPort}|${k.remoteIp}|${k.remotePort}|${k.netns}`;
}

/** A port folded to `*` (records write it so, as ephemeral_port does). */
export const ANY_PORT = -1;

/**
 * The delta with its client port as {@linkcode ANY_PORT} when it is in `range`: the local port
 * of an outgoing flow, the remote one of an incoming flow (as ephemeral_port does); undefined
 * when nothing changes. `folded`: the kernel folded it already, to 0.
 */
export function foldClientPort(
  d: FlowDelta,
  range: PortRange,
  folded = false,
): FlowDelta | undefined {
  const k = d.key;
  const local = k.direction === "outgoing", remote = k.direction === "incoming";
  const port = local ? k.localPort : remote ? k.remotePort : ANY_PORT;
  if (folded ? port !== 0 : port < range.low || port > range.high) return undefined;
  return { ...d, key: local ? { ...k, localPort: ANY_PORT } : { ...k, remotePort: ANY_PORT } };
}

function portText(port: number): string {
  return port === ANY_PORT ? "*" : String(port);
}

/** Remembers the UDP flows' reported totals; see the module doc. */
export class FlowAccounts {
  readonly #udp = new Map<string, UdpBaseline>();

  /** UDP flows remembered (for the `tracked_udp_flows` gauge). */
  get udpFlows(): number {
    return this.#udp.size;
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
    totals: { bytesRead: bigint; bytesWritten: bigint; cgroupId?: bigint; cmdId?: string },
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
          ...(totals.cmdId ? { cmdId: totals.cmdId } : {}),
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
    const nat = d.dstNat ? `${d.dstNat.ip}|${d.dstNat.port}` : "";
    const id = `${flowId(d.key)}|${d.cgroupId ?? 0n}|${nat}`;
    const seen = byId.get(id);
    if (!seen) {
      byId.set(id, { ...d });
      continue;
    }
    seen.bytesRead += d.bytesRead;
    seen.bytesWritten += d.bytesWritten;
    if (!seen.cmdId && d.cmdId) seen.cmdId = d.cmdId;
    const add = (a: bigint | undefined, b: bigint | undefined) =>
      b === undefined ? a : (a ?? 0n) + b;
    seen.retransmits = add(seen.retransmits, d.retransmits);
    seen.established = add(seen.established, d.established);
    seen.closed = add(seen.closed, d.closed);
    seen.rttSumUs = add(seen.rttSumUs, d.rttSumUs);
    seen.rttVarSumUs = add(seen.rttVarSumUs, d.rttVarSumUs);
    seen.rttSamples = add(seen.rttSamples, d.rttSamples);
    for (const [, name] of TCP_FAILURES) {
      if (d[name] !== undefined) seen[name] = (seen[name] ?? 0n) + d[name];
    }
  }
  return [...byId.values()];
}

const UNSPECIFIED = new Set(["0.0.0.0", "::"]);

/**
 * The local address of a datagram from a socket bound to every address (0.0.0.0 or ::) is
 * not in the socket. To a loopback peer it left from loopback; elsewhere it stays unspecified.
 */
function localIp(k: FlowKey): string {
  if (!UNSPECIFIED.has(k.localIp) || ipType(k.remoteIp) !== "loopback") return k.localIp;
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
    for (const [field, name] of TCP_FAILURES) fields[field] = d[name] ?? 0n;
    const samples = d.rttSamples ?? 0n;
    if (samples > 0n) {
      // The mean for whoever reads the record; the sums for windows ({agg: mean, per}).
      fields.rtt = ((d.rttSumUs ?? 0n) + samples / 2n) / samples;
      fields.rtt_var = ((d.rttVarSumUs ?? 0n) + samples / 2n) / samples;
      fields.rtt_sum = d.rttSumUs ?? 0n;
      fields.rtt_var_sum = d.rttVarSumUs ?? 0n;
      fields.rtt_samples = samples;
    }
  }
  if (d.cgroupId) fields.cgroup_id = d.cgroupId;
  const nat: { [tag: string]: string } = d.dstNat
    ? { dst_nat_ip: d.dstNat.ip, dst_nat_port: String(d.dstNat.port) }
    : {};
  if (d.cmdId) fields.cmd_id = d.cmdId; // a field, not a tag: no series per command
  return {
    measurement: "netflow",
    tags: {
      host,
      source: "netflow",
      direction: k.direction || "unknown",
      dst_domain: "",
      dst_ip: k.remoteIp,
      dst_ip_type: ipType(k.remoteIp),
      dst_port: portText(k.remotePort),
      ...nat,
      family: k.family,
      netns: k.netns ? String(k.netns) : "",
      pid: String(k.pid),
      process_name: d.comm,
      src_ip: src,
      src_ip_type: ipType(src),
      src_port: portText(k.localPort),
      transport: k.transport,
    },
    fields,
    time,
  };
}

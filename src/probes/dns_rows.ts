/**
 * dnsflow rows: requests summed per series, the shape of the dns probe's records.
 *
 * A row is every tag of a dnsflow record (the side, both ends, the process, the name, type,
 * rcode and truncation) and the socket's cgroup, with the sums of its requests: `count`,
 * `latency_sum`, `latency_max` and `retransmits`. The kernel sums most requests itself
 * (bpf/dns.bpf.c); what user space reads whole (TCP, odd messages) and the timeouts it finds
 * are summed here, under the same keys, and both are emitted together each poll. With
 * `per_request: true` each request is a row of its own.
 *
 * Pure and clock-free.
 */
import type { FieldValue, Record } from "../record.ts";
import { ipType } from "../system/ip_type.ts";
import { rcodeName } from "./dns_message.ts";
import type { DnsAnswer, DnsRequest } from "./dns_tracker.ts";

/**
 * What identifies a row: a request's tags and its cgroup. `localPort` or `remotePort` 0: the
 * client's ephemeral port, folded (`*`); `rcode` -1: timed out.
 */
export type DnsRowTags = Omit<DnsRequest, "latencyNs" | "retransmits">;

/** A row and its sums. Timeouts (rcode -1) have no latency. */
export interface DnsRow extends DnsRowTags {
  count: bigint;
  latencySum: bigint;
  latencyMax: bigint;
  retransmits: bigint;
}

/** One request as a row of its own. */
export function rowOfRequest(r: DnsRequest): DnsRow {
  const latency = r.latencyNs ?? 0n;
  return {
    side: r.side,
    family: r.family,
    transport: r.transport,
    localIp: r.localIp,
    localPort: r.localPort,
    remoteIp: r.remoteIp,
    remotePort: r.remotePort,
    pid: r.pid,
    comm: r.comm,
    name: r.name,
    qtype: r.qtype,
    rcode: r.rcode,
    truncated: r.truncated,
    cgroupId: r.cgroupId,
    netns: r.netns,
    ...(r.cmdId ? { cmdId: r.cmdId } : {}),
    count: 1n,
    latencySum: latency,
    latencyMax: latency,
    retransmits: BigInt(r.retransmits),
  };
}

function identity(t: DnsRowTags): string {
  return `${t.side}|${t.transport}|${t.family}|${t.localIp}|${t.localPort}|${t.remoteIp}|${t.remotePort}|${t.pid}|${t.comm}|${t.qtype}|${t.rcode}|${t.truncated}|${
    t.cgroupId ?? 0n
  }|${t.netns ?? 0}|${t.cmdId ?? ""}|${t.name}`;
}

/** Rows summed since the last {@linkcode take}. */
export class DnsRows {
  #rows = new Map<string, DnsRow>();

  get size(): number {
    return this.#rows.size;
  }

  /** Adds `row`'s sums to its series (the row itself is not kept: a copy is). */
  add(row: DnsRow): void {
    const key = identity(row);
    const sum = this.#rows.get(key);
    if (sum === undefined) {
      this.#rows.set(key, { ...row });
      return;
    }
    sum.count += row.count;
    sum.latencySum += row.latencySum;
    if (row.latencyMax > sum.latencyMax) sum.latencyMax = row.latencyMax;
    sum.retransmits += row.retransmits;
  }

  /** Every row summed so far; starts afresh. */
  take(): DnsRow[] {
    const rows = [...this.#rows.values()];
    this.#rows = new Map();
    return rows;
  }
}

/**
 * A row as a `dnsflow` record (tags and fields of ../shared/reference/measurements.md, plus
 * `pid`, `process_name`, `qtype`, `rcode_name` and `truncated`). `src_*` is this host's end,
 * `dst_*` the peer's, whichever side asked. Fields: `count`; `latency` (the mean, ns, rounded),
 * `latency_sum` and `latency_max` unless the requests timed out; `rcode`; `retransmits`; the
 * local socket's cgroup id as the integer `cgroup_id` (for the `container` transform), when
 * known. A window's mean latency is `{from: latency_sum, agg: mean, per: count}`.
 */
export function dnsflowRecord(r: DnsRow | DnsRequest, host: string, timeNs: bigint): Record {
  const row = "count" in r ? r : rowOfRequest(r);
  const tags: { [key: string]: string } = {
    host,
    source: "dnsflow",
    direction: row.side === "client" ? "outgoing" : "incoming",
    dst_domain: row.name,
    dst_ip: row.remoteIp,
    dst_ip_type: ipType(row.remoteIp),
    dst_port: row.remotePort === 0 ? "*" : String(row.remotePort),
    family: row.family,
    pid: String(row.pid),
    process_name: row.comm,
    qtype: row.qtype,
    rcode_name: rcodeName(row.rcode),
    src_ip: row.localIp,
    src_ip_type: ipType(row.localIp),
    src_port: row.localPort === 0 ? "*" : String(row.localPort),
    transport: row.transport,
  };
  if (row.truncated) tags.truncated = "true";
  if (row.netns) tags.netns = String(row.netns);
  const fields: { [name: string]: FieldValue } = { count: row.count, rcode: BigInt(row.rcode) };
  if (row.rcode !== -1 && row.count > 0n) {
    const half = row.count / 2n;
    fields.latency = (row.latencySum + half) / row.count;
    fields.latency_sum = row.latencySum;
    fields.latency_max = row.latencyMax;
  }
  fields.retransmits = row.retransmits;
  if (row.cgroupId) fields.cgroup_id = row.cgroupId;
  if (row.cmdId) fields.cmd_id = row.cmdId; // a field, not a tag: no series per command
  return { measurement: "dnsflow", tags, fields, time: timeNs };
}

/** An answer as a `dns_answer` record, the side input of `dns_domain` stages. */
export function answerRecord(a: DnsAnswer, host: string, timeNs: bigint): Record {
  return {
    measurement: "dns_answer",
    tags: { host },
    fields: { name: a.name, address: a.address, ttl: BigInt(a.ttl) },
    time: timeNs,
  };
}

/**
 * What the `top` view keeps from the records it is given, and the rows it shows: per flow and
 * per DNS name a few samples over a sliding window (rates are sums over the window divided by
 * the time it covers), the latest commands, and the collector's own CPU and memory.
 *
 * Bounded: at most `maxRows` flows and as many DNS rows (a new one past that is refused and
 * counted by `onFull`); a row with nothing new for {@linkcode IDLE_KEEP_MS} goes; samples
 * older than the window go at each snapshot.
 */
import type { FieldValue, Record } from "../../record.ts";

/** A row with no new sample for this long leaves the view. */
export const IDLE_KEEP_MS = 30_000;

/** One flow as the view shows it: rates in bytes per second over the window. */
export interface FlowRow {
  process: string;
  pid: string;
  container: string;
  /** This host's port (`*`: a client's, folded by `ephemeral_port`). */
  localPort: string;
  /** The peer: its DNS name or address, and port. */
  peer: string;
  /** `out` (this host connected) or `in`. */
  direction: string;
  transport: string;
  inRate: number;
  outRate: number;
  /** Retransmitted segments within the window (TCP). */
  retransmits: number;
  /** The latest smoothed RTT, µs (TCP, once measured). */
  rttUs?: number;
}

/** One DNS name, type and asking program (its latest pid). */
export interface DnsRow {
  name: string;
  qtype: string;
  process: string;
  pid: string;
  /** Queries a second over the window. */
  qps: number;
  /** Queries since the row appeared (as are the errors and latencies). */
  total: number;
  /** Answers other than NOERROR (timeouts too), e.g. `NXDOMAIN:2`. */
  errors: string;
  errorCount: number;
  /** Mean and max latency, ns (absent when every query timed out). */
  meanNs?: number;
  maxNs?: number;
}

/** A command typed in bash (redacted upstream by the pipeline's `redact` stage). */
export interface CommandRow {
  timeMs: number;
  user: string;
  pid: string;
  cmd: string;
}

/** Everything one frame shows, computed at one time. */
export interface Snapshot {
  flows: FlowRow[];
  dns: DnsRow[];
  /** Newest first. */
  commands: CommandRow[];
  /** From the `collector` probe's `_process` record, when one came. */
  cpuPercent?: number;
  rssBytes?: number;
}

/** Options of a model. */
export interface ModelOptions {
  /** The sliding window of rates, ms. */
  windowMs: number;
  /** The span one record sums (a probe's poll), ms: a new row's first record covers it. */
  spanMs: number;
  maxRows: number;
  maxCommands: number;
  /** Called for each record refused because its table is full. */
  onFull?: (table: "flows" | "dns") => void;
}

interface FlowSample {
  t: number;
  read: number;
  written: number;
  retransmits: number;
}

interface DnsSample {
  t: number;
  count: number;
}

interface Series<M, S> {
  meta: M;
  firstMs: number;
  lastMs: number;
  samples: S[];
}

type FlowMeta = Omit<FlowRow, "inRate" | "outRate" | "retransmits">;
/** A DNS row's running totals since it appeared; only queries a second are windowed. */
interface DnsMeta {
  name: string;
  qtype: string;
  process: string;
  pid: string;
  total: number;
  errors: Map<string, number>;
  latencySum: number;
  /** Queries the latency sum covers (timeouts have none). */
  timed: number;
  latencyMax?: number;
}

function num(v: FieldValue | undefined): number {
  return typeof v === "bigint" || typeof v === "number" ? Number(v) : 0;
}

/** `[v6]:port` or `v4:port`; a name as it is. */
function peerOf(tags: Record["tags"]): string {
  const port = tags.dst_port ?? "";
  const host = tags.dst_domain || (tags.dst_ip?.includes(":") ? `[${tags.dst_ip}]` : tags.dst_ip);
  return port ? `${host ?? "?"}:${port}` : host ?? "?";
}

export class TopModel {
  readonly #o: ModelOptions;
  readonly #flows = new Map<string, Series<FlowMeta, FlowSample>>();
  readonly #dns = new Map<string, Series<DnsMeta, DnsSample>>();
  #commands: CommandRow[] = [];
  #cpuPercent?: number;
  #rssBytes?: number;
  /** The newest record time seen, ms: the window ends there (see {@linkcode snapshot}). */
  #latestMs = 0;

  constructor(options: ModelOptions) {
    this.#o = options;
  }

  /** Rows kept now (flows, DNS): what the memory bound is about. */
  get size(): { flows: number; dns: number } {
    return { flows: this.#flows.size, dns: this.#dns.size };
  }

  /** Takes one record; others than netflow, dnsflow, bash and ebpf_collector are ignored. */
  add(r: Record): void {
    const t = Number(r.time / 1_000_000n);
    if (t > this.#latestMs) this.#latestMs = t;
    switch (r.measurement) {
      case "netflow":
        return this.#addFlow(r, t);
      case "dnsflow":
        return this.#addDns(r, t);
      case "bash":
        return this.#addCommand(r, t);
      case "ebpf_collector":
        if (r.tags.stage === "_process") {
          this.#cpuPercent = num(r.fields.cpu_percent);
          this.#rssBytes = num(r.fields.rss_bytes);
        }
    }
  }

  #series<M, S>(
    table: Map<string, Series<M, S>>,
    key: string,
    t: number,
    which: "flows" | "dns",
    meta: () => M,
  ): Series<M, S> | undefined {
    let s = table.get(key);
    if (!s) {
      if (table.size >= this.#o.maxRows) {
        this.#o.onFull?.(which);
        return undefined;
      }
      s = { meta: meta(), firstMs: t, lastMs: t, samples: [] };
      table.set(key, s);
    }
    if (t > s.lastMs) s.lastMs = t;
    return s;
  }

  #addFlow(r: Record, t: number): void {
    const g = r.tags;
    const key = `${g.pid}\0${g.process_name}\0${g.container_id}\0${g.direction}\0${g.transport}` +
      `\0${g.src_port}\0${g.dst_domain}\0${g.dst_ip}\0${g.dst_port}`;
    const s = this.#series(this.#flows, key, t, "flows", (): FlowMeta => ({
      process: g.process_name ?? "",
      pid: g.pid ?? "",
      container: g.container_id?.slice(0, 12) ?? "",
      localPort: g.src_port ?? "",
      peer: peerOf(g),
      direction: g.direction === "outgoing" ? "out" : g.direction === "incoming" ? "in" : "?",
      transport: g.transport ?? "",
    }));
    if (!s) return;
    const f = r.fields;
    s.samples.push({
      t,
      read: num(f.bytes_read),
      written: num(f.bytes_written),
      retransmits: num(f.retransmits),
    });
    if (f.rtt !== undefined) s.meta.rttUs = num(f.rtt);
  }

  #addDns(r: Record, t: number): void {
    const g = r.tags;
    // One row a name, type and program: five `dig`s are one row, the latest pid shown.
    const key = `${g.dst_domain}\0${g.qtype}\0${g.process_name}`;
    const s = this.#series(this.#dns, key, t, "dns", (): DnsMeta => ({
      name: g.dst_domain ?? "",
      qtype: g.qtype ?? "",
      process: g.process_name ?? "",
      pid: "",
      total: 0,
      errors: new Map(),
      latencySum: 0,
      timed: 0,
    }));
    if (!s) return;
    const f = r.fields, count = num(f.count), m = s.meta, rcode = g.rcode_name ?? "?";
    m.pid = g.pid ?? "";
    m.total += count;
    if (rcode !== "NOERROR") m.errors.set(rcode, (m.errors.get(rcode) ?? 0) + count);
    if (f.latency_sum !== undefined) {
      m.latencySum += num(f.latency_sum);
      m.timed += count;
      m.latencyMax = Math.max(m.latencyMax ?? 0, num(f.latency_max));
    }
    s.samples.push({ t, count });
  }

  #addCommand(r: Record, t: number): void {
    const f = r.fields;
    this.#commands.push({
      timeMs: t,
      user: String(f.user ?? ""),
      pid: String(f.pid ?? ""),
      cmd: String(f.cmd ?? ""),
    });
    if (this.#commands.length > 2 * this.#o.maxCommands) {
      this.#commands = this.#commands.slice(-this.#o.maxCommands);
    }
  }

  /**
   * The rows at `nowMs`. The window ends at the newest record's time rather than now while
   * records keep coming: a frame drawn just before a poll's records arrive would otherwise miss
   * a whole poll and show 4/5 of the rate.
   */
  snapshot(nowMs: number): Snapshot {
    const quiet = nowMs - this.#latestMs > Math.max(this.#o.spanMs, 1000) + 500;
    const end = quiet ? nowMs : Math.min(nowMs, this.#latestMs);
    const from = end - this.#o.windowMs;
    // Seconds a row's window covers: from its first record's span, at most the window.
    const seconds = (s: Series<unknown, unknown>) =>
      Math.max(Math.min(this.#o.windowMs, end - (s.firstMs - this.#o.spanMs)), 1000) / 1000;

    const flows: FlowRow[] = [];
    for (const [key, s] of this.#flows) {
      if (nowMs - s.lastMs > IDLE_KEEP_MS) {
        this.#flows.delete(key);
        continue;
      }
      prune(s.samples, from);
      let read = 0, written = 0, retransmits = 0;
      for (const x of s.samples) {
        if (x.t > end) continue;
        read += x.read;
        written += x.written;
        retransmits += x.retransmits;
      }
      const secs = seconds(s);
      flows.push({ ...s.meta, inRate: read / secs, outRate: written / secs, retransmits });
    }

    const dns: DnsRow[] = [];
    for (const [key, s] of this.#dns) {
      if (nowMs - s.lastMs > IDLE_KEEP_MS) {
        this.#dns.delete(key);
        continue;
      }
      prune(s.samples, from);
      let count = 0;
      for (const x of s.samples) if (x.t <= end) count += x.count;
      const m = s.meta;
      dns.push({
        name: m.name,
        qtype: m.qtype,
        process: m.process,
        pid: m.pid,
        qps: count / seconds(s),
        total: m.total,
        errors: [...m.errors].map(([rcode, n]) => `${rcode}:${n}`).join(" "),
        errorCount: [...m.errors.values()].reduce((a, b) => a + b, 0),
        meanNs: m.timed ? m.latencySum / m.timed : undefined,
        maxNs: m.latencyMax,
      });
    }
    return {
      flows,
      dns,
      commands: this.#commands.slice(-this.#o.maxCommands).reverse(),
      cpuPercent: this.#cpuPercent,
      rssBytes: this.#rssBytes,
    };
  }
}

/** Drops the samples at or before `from` (they are in time order, oldest first). */
function prune(samples: { t: number }[], from: number): void {
  let n = 0;
  while (n < samples.length && samples[n].t <= from) n++;
  if (n > 0) samples.splice(0, n);
}

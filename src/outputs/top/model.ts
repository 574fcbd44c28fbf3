/**
 * What the `top` view keeps from the records it is given, and the rows it shows: per flow and
 * per DNS name, sums per second over a sliding window (rates are sums over the window divided by
 * the time it covers), the latest commands, and the collector's own CPU and memory.
 *
 * Bounded, and cheap per frame: each row holds one ring of per-second sums (window + 1 slots,
 * allocated once) and one row object updated in place, so 10,000 flows cost no allocation a
 * record and one pass a frame. At most `maxRows` flows and as many DNS rows (a new one past
 * that is refused and counted by `onFull`); a row with nothing new for
 * {@linkcode IDLE_KEEP_MS} goes. Sums are kept to the second: a record counts in the second
 * its time falls in.
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

/**
 * Sums per second, in a ring: slot i is `[second, value...]` (`stride` numbers). A slot whose
 * second is not the one written is reset first, so old seconds drop out without a sweep.
 */
class SecondSums {
  readonly #stride: number;
  readonly #slots: Float64Array;

  constructor(seconds: number, values: number) {
    this.#stride = values + 1;
    this.#slots = new Float64Array(seconds * this.#stride);
    for (let i = 0; i < this.#slots.length; i += this.#stride) this.#slots[i] = -1;
  }

  add(second: number, value: number, k = 0): void {
    const i = (second % (this.#slots.length / this.#stride)) * this.#stride;
    if (this.#slots[i] !== second) {
      this.#slots.fill(0, i + 1, i + this.#stride);
      this.#slots[i] = second;
    }
    this.#slots[i + 1 + k] += value;
  }

  /** The sum of value `k` over the seconds in (`after`, `upTo`]. */
  sum(after: number, upTo: number, k = 0): number {
    let total = 0;
    for (let i = 0; i < this.#slots.length; i += this.#stride) {
      const second = this.#slots[i];
      if (second > after && second <= upTo) total += this.#slots[i + 1 + k];
    }
    return total;
  }
}

interface Series<R> {
  /** The row shown, updated in place at each snapshot. */
  row: R;
  firstMs: number;
  lastMs: number;
  sums: SecondSums;
}

/** What a DNS row sums since it appeared; only queries a second are windowed. */
interface DnsTotals {
  errors: Map<string, number>;
  latencySum: number;
  /** Queries the latency sum covers (timeouts have none). */
  timed: number;
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
  readonly #flows = new Map<string, Series<FlowRow>>();
  readonly #dns = new Map<string, Series<DnsRow> & { totals: DnsTotals }>();
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

  #series<S extends { lastMs: number }>(
    table: Map<string, S>,
    key: string,
    t: number,
    which: "flows" | "dns",
    create: () => S,
  ): S | undefined {
    let s = table.get(key);
    if (!s) {
      if (table.size >= this.#o.maxRows) {
        this.#o.onFull?.(which);
        return undefined;
      }
      s = create();
      table.set(key, s);
    }
    if (t > s.lastMs) s.lastMs = t;
    return s;
  }

  /** Slots of a row's ring: the window's seconds and the one being filled. */
  get #seconds(): number {
    return Math.ceil(this.#o.windowMs / 1000) + 1;
  }

  #addFlow(r: Record, t: number): void {
    const g = r.tags;
    const key = `${g.pid}\0${g.process_name}\0${g.container_id}\0${g.direction}\0${g.transport}` +
      `\0${g.src_port}\0${g.dst_domain}\0${g.dst_ip}\0${g.dst_port}`;
    const s = this.#series(this.#flows, key, t, "flows", (): Series<FlowRow> => ({
      row: {
        process: g.process_name ?? "",
        pid: g.pid ?? "",
        container: g.container_id?.slice(0, 12) ?? "",
        localPort: g.src_port ?? "",
        peer: peerOf(g),
        direction: g.direction === "outgoing" ? "out" : g.direction === "incoming" ? "in" : "?",
        transport: g.transport ?? "",
        inRate: 0,
        outRate: 0,
        retransmits: 0,
        rttUs: undefined,
      },
      firstMs: t,
      lastMs: t,
      sums: new SecondSums(this.#seconds, 3),
    }));
    if (!s) return;
    const f = r.fields, second = Math.floor(t / 1000);
    s.sums.add(second, num(f.bytes_read), 0);
    s.sums.add(second, num(f.bytes_written), 1);
    s.sums.add(second, num(f.retransmits), 2);
    if (f.rtt !== undefined) s.row.rttUs = num(f.rtt);
  }

  #addDns(r: Record, t: number): void {
    const g = r.tags;
    // One row a name, type and program: five `dig`s are one row, the latest pid shown.
    const key = `${g.dst_domain}\0${g.qtype}\0${g.process_name}`;
    const s = this.#series(
      this.#dns,
      key,
      t,
      "dns",
      (): Series<DnsRow> & { totals: DnsTotals } => ({
        row: {
          name: g.dst_domain ?? "",
          qtype: g.qtype ?? "",
          process: g.process_name ?? "",
          pid: "",
          qps: 0,
          total: 0,
          errors: "",
          errorCount: 0,
          meanNs: undefined,
          maxNs: undefined,
        },
        totals: { errors: new Map(), latencySum: 0, timed: 0 },
        firstMs: t,
        lastMs: t,
        sums: new SecondSums(this.#seconds, 1),
      }),
    );
    if (!s) return;
    const f = r.fields, count = num(f.count), row = s.row, totals = s.totals;
    const rcode = g.rcode_name ?? "?";
    row.pid = g.pid ?? "";
    row.total += count;
    if (rcode !== "NOERROR") {
      totals.errors.set(rcode, (totals.errors.get(rcode) ?? 0) + count);
      row.errorCount += count;
      row.errors = [...totals.errors].map(([rcode, n]) => `${rcode}:${n}`).join(" ");
    }
    if (f.latency_sum !== undefined) {
      totals.latencySum += num(f.latency_sum);
      totals.timed += count;
      row.meanNs = totals.latencySum / totals.timed;
      row.maxNs = Math.max(row.maxNs ?? 0, num(f.latency_max));
    }
    s.sums.add(Math.floor(t / 1000), count);
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
    const upTo = Math.floor(end / 1000), after = Math.floor((end - this.#o.windowMs) / 1000);
    // Seconds a row's window covers: from its first record's span, at most the window.
    const seconds = (s: Series<unknown>) =>
      Math.max(Math.min(this.#o.windowMs, end - (s.firstMs - this.#o.spanMs)), 1000) / 1000;

    const flows: FlowRow[] = [];
    for (const [key, s] of this.#flows) {
      if (nowMs - s.lastMs > IDLE_KEEP_MS) {
        this.#flows.delete(key);
        continue;
      }
      const secs = seconds(s), row = s.row;
      row.inRate = s.sums.sum(after, upTo, 0) / secs;
      row.outRate = s.sums.sum(after, upTo, 1) / secs;
      row.retransmits = s.sums.sum(after, upTo, 2);
      flows.push(row);
    }
    const dns: DnsRow[] = [];
    for (const [key, s] of this.#dns) {
      if (nowMs - s.lastMs > IDLE_KEEP_MS) {
        this.#dns.delete(key);
        continue;
      }
      s.row.qps = s.sums.sum(after, upTo) / seconds(s);
      dns.push(s.row);
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

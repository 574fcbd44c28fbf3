/**
 * What the `top` view keeps from the records it is given, and the rows it shows: per flow, per
 * DNS name and per kind of dropped packet, sums per second over a sliding window (rates are sums
 * over the window divided by the time it covers), the latest commands with what each did (its
 * `bash_activity`, joined by `cmd_id`), and the collector's own CPU and memory.
 *
 * Bounded, and cheap per frame: each row holds one ring of per-second sums (window + 1 slots,
 * allocated once) and one row object updated in place, so 10,000 flows cost no allocation a
 * record and one pass a frame. At most `maxRows` flows and as many DNS and drop rows (a new one past
 * that is refused and counted by `onFull`); a row with nothing new for
 * {@linkcode IDLE_KEEP_MS} goes. Sums are kept to the second: a record counts in the second
 * its time falls in.
 */
import { TCP_FAILURES } from "../../probes/netflow_fields.ts";
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
  /**
   * The peer and its port, by the best name known: the Kubernetes Service (`name.namespace`) or
   * pod, else the DNS name, else where DNAT really sent it (`→ip:port`: not the ClusterIP the
   * socket connected to), else the address.
   */
  peer: string;
  /** The network namespace's inode (flows of pods with the same addresses stay apart). */
  netns: string;
  /** `out` (this host connected) or `in`. */
  direction: string;
  transport: string;
  inRate: number;
  outRate: number;
  /** Retransmitted segments within the window (TCP). */
  retransmits: number;
  /** Failed connects (refused, timed out, unreachable, aborted) and resets, within the window. */
  failures: number;
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

/** Packets the kernel dropped, by reason, direction, ends and process (the `netdrop` probe). */
export interface DropRow {
  reason: string;
  /** `in` (ingress) or `out` (egress), as the packet travelled; `?` when not known. */
  direction: string;
  process: string;
  pid: string;
  /** This host's port (`*`: a client's, folded). */
  localPort: string;
  /** The other end: address and port. */
  peer: string;
  netns: string;
  transport: string;
  /** Packets and bytes a second over the window. */
  packetRate: number;
  byteRate: number;
}

/**
 * A command typed in bash (redacted upstream by the pipeline's `redact` stage). What it did comes
 * later, from its `bash_activity` records (joined by `cmd_id`): absent until the first one.
 */
export interface CommandRow {
  timeMs: number;
  user: string;
  pid: string;
  cmd: string;
  cmdId?: string;
  /** bash's `$?` (-1: not known). */
  exitCode?: number;
  durationNs?: number;
  /** Processes started, bytes read and written, DNS queries: sums of its records. */
  processes?: number;
  bytes?: number;
  dnsQueries?: number;
  connectFailures?: number;
  /** Processes of it still run (its latest record was `final: false`). */
  running?: boolean;
}

/** Everything one frame shows, computed at one time. */
export interface Snapshot {
  flows: FlowRow[];
  dns: DnsRow[];
  drops: DropRow[];
  /** All dropped packets a second over the window (the status line). */
  dropRate: number;
  /** Newest first. */
  commands: CommandRow[];
  /** From the `collector` probe's `_process` record, when one came. */
  cpuPercent?: number;
  rssBytes?: number;
}

/** The windowed tables, each bounded by `maxRows`. */
export type Table = "flows" | "dns" | "drops";

/** Options of a model. */
export interface ModelOptions {
  /** The sliding window of rates, ms. */
  windowMs: number;
  /** The span one record sums (a probe's poll), ms: a new row's first record covers it. */
  spanMs: number;
  maxRows: number;
  maxCommands: number;
  /** Called for each record refused because its table is full. */
  onFull?: (table: Table) => void;
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
function hostPort(host: string | undefined, port: string | undefined): string {
  const h = host?.includes(":") ? `[${host}]` : host || "?";
  return port ? `${h}:${port}` : h;
}

/** The peer by the best name known (see {@linkcode FlowRow.peer}). */
function peerOf(g: Record["tags"]): string {
  if (g.dst_k8s_service) {
    const ns = g.dst_k8s_namespace ? `.${g.dst_k8s_namespace}` : "";
    return hostPort(g.dst_k8s_service + ns, g.dst_port);
  }
  if (g.dst_k8s_pod) return hostPort(g.dst_k8s_pod, g.dst_port);
  if (g.dst_domain) return hostPort(g.dst_domain, g.dst_port);
  if (g.dst_nat_ip) return "→" + hostPort(g.dst_nat_ip, g.dst_nat_port);
  return hostPort(g.dst_ip, g.dst_port);
}

/**
 * netflow's failure fields (failed connects and resets), from its probe's list so a kind of
 * failure added there counts too: summed into a flow's `failures`.
 */
const FAILURE_FIELDS = TCP_FAILURES.map(([field]) => field);

export class TopModel {
  readonly #o: ModelOptions;
  readonly #flows = new Map<string, Series<FlowRow>>();
  readonly #dns = new Map<string, Series<DnsRow> & { totals: DnsTotals }>();
  readonly #drops = new Map<string, Series<DropRow>>();
  #commands: CommandRow[] = [];
  /** The kept commands by `cmd_id`, for their `bash_activity`. */
  readonly #commandIds = new Map<string, CommandRow>();
  #cpuPercent?: number;
  #rssBytes?: number;
  /** The newest record time seen, ms: the window ends there (see {@linkcode snapshot}). */
  #latestMs = 0;

  constructor(options: ModelOptions) {
    this.#o = options;
  }

  /** Rows kept now (flows, DNS, drops): what the memory bound is about. */
  get size(): { flows: number; dns: number; drops: number } {
    return { flows: this.#flows.size, dns: this.#dns.size, drops: this.#drops.size };
  }

  /**
   * Takes one record; others than netflow, dnsflow, netdrop, bash, bash_activity and
   * ebpf_collector are ignored.
   */
  add(r: Record): void {
    const t = Number(r.time / 1_000_000n);
    if (t > this.#latestMs) this.#latestMs = t;
    switch (r.measurement) {
      case "netflow":
        return this.#addFlow(r, t);
      case "dnsflow":
        return this.#addDns(r, t);
      case "netdrop":
        return this.#addDrop(r, t);
      case "bash":
        return this.#addCommand(r, t);
      case "bash_activity":
        return this.#addActivity(r, t);
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
    which: Table,
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
      `\0${g.src_port}\0${g.dst_domain}\0${g.dst_ip}\0${g.dst_port}\0${g.netns}` +
      `\0${g.dst_nat_ip}\0${g.dst_nat_port}\0${g.dst_k8s_service}\0${g.dst_k8s_pod}`;
    const s = this.#series(this.#flows, key, t, "flows", (): Series<FlowRow> => ({
      row: {
        process: g.process_name ?? "",
        pid: g.pid ?? "",
        container: g.container_id?.slice(0, 12) ?? "",
        localPort: g.src_port ?? "",
        peer: peerOf(g),
        netns: g.netns ?? "",
        direction: g.direction === "outgoing" ? "out" : g.direction === "incoming" ? "in" : "?",
        transport: g.transport ?? "",
        inRate: 0,
        outRate: 0,
        retransmits: 0,
        failures: 0,
        rttUs: undefined,
      },
      firstMs: t,
      lastMs: t,
      sums: new SecondSums(this.#seconds, 4),
    }));
    if (!s) return;
    const f = r.fields, second = Math.floor(t / 1000);
    s.sums.add(second, num(f.bytes_read), 0);
    s.sums.add(second, num(f.bytes_written), 1);
    s.sums.add(second, num(f.retransmits), 2);
    let failures = 0;
    for (const name of FAILURE_FIELDS) failures += num(f[name]);
    if (failures) s.sums.add(second, failures, 3);
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

  #addDrop(r: Record, t: number): void {
    const g = r.tags;
    const key = `${g.reason}\0${g.direction}\0${g.netns}\0${g.transport}\0${g.src_ip}` +
      `\0${g.src_port}\0${g.dst_ip}\0${g.dst_port}\0${g.pid}\0${g.process_name}`;
    const s = this.#series(this.#drops, key, t, "drops", (): Series<DropRow> => ({
      row: {
        reason: g.reason ?? "?",
        direction: g.direction === "ingress" ? "in" : g.direction === "egress" ? "out" : "?",
        process: g.process_name ?? "",
        pid: g.pid ?? "",
        localPort: g.src_port ?? "",
        peer: g.dst_ip ? hostPort(g.dst_ip, g.dst_port) : "",
        netns: g.netns ?? "",
        transport: g.transport ?? "",
        packetRate: 0,
        byteRate: 0,
      },
      firstMs: t,
      lastMs: t,
      sums: new SecondSums(this.#seconds, 2),
    }));
    if (!s) return;
    const second = Math.floor(t / 1000);
    s.sums.add(second, num(r.fields.packets), 0);
    s.sums.add(second, num(r.fields.bytes), 1);
  }

  /** One line typed; the lines of one command (PS2 continuations) share its `cmd_id` and row. */
  #addCommand(r: Record, t: number): void {
    const f = r.fields, id = f.cmd_id === undefined ? undefined : String(f.cmd_id);
    const known = id === undefined ? undefined : this.#commandIds.get(id);
    if (known) {
      known.cmd = known.cmd ? `${known.cmd} ↵ ${f.cmd ?? ""}` : String(f.cmd ?? "");
      return;
    }
    this.#keepCommand({
      timeMs: t,
      user: String(f.user ?? ""),
      pid: String(f.pid ?? ""),
      cmd: String(f.cmd ?? ""),
      cmdId: id,
    });
  }

  /**
   * What a command did, into its row: the first record brings `exit_code` and `duration`, each
   * adds what its processes did since the last. A command whose `bash` line the view never saw
   * (typed before it started, or gone from the kept ones) gets a row of its own.
   */
  #addActivity(r: Record, t: number): void {
    const f = r.fields, id = String(f.cmd_id ?? "");
    let row = this.#commandIds.get(id);
    if (!row) {
      row = {
        timeMs: t - num(f.duration) / 1e6,
        user: r.tags.user ?? "",
        pid: String(f.pid ?? ""),
        cmd: String(f.cmd ?? ""),
        cmdId: id,
      };
      this.#keepCommand(row);
    }
    if (f.exit_code !== undefined) row.exitCode = num(f.exit_code);
    if (f.duration !== undefined) row.durationNs = num(f.duration);
    row.processes = (row.processes ?? 0) + num(f.processes);
    row.bytes = (row.bytes ?? 0) + num(f.bytes_read) + num(f.bytes_written);
    row.dnsQueries = (row.dnsQueries ?? 0) + num(f.dns_queries);
    row.connectFailures = (row.connectFailures ?? 0) + num(f.connect_failures);
    row.running = f.final === false;
  }

  #keepCommand(row: CommandRow): void {
    this.#commands.push(row);
    if (row.cmdId !== undefined) this.#commandIds.set(row.cmdId, row);
    if (this.#commands.length > 2 * this.#o.maxCommands) {
      const gone = this.#commands.length - this.#o.maxCommands;
      for (const c of this.#commands.slice(0, gone)) {
        if (c.cmdId !== undefined && this.#commandIds.get(c.cmdId) === c) {
          this.#commandIds.delete(c.cmdId);
        }
      }
      this.#commands = this.#commands.slice(gone);
    }
  }

  /** The series of `table` with something new within {@linkcode IDLE_KEEP_MS}; idle ones go. */
  *#live<S extends { lastMs: number }>(table: Map<string, S>, nowMs: number): Iterable<S> {
    for (const [key, s] of table) {
      if (nowMs - s.lastMs > IDLE_KEEP_MS) table.delete(key);
      else yield s;
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
    for (const s of this.#live(this.#flows, nowMs)) {
      const secs = seconds(s), row = s.row;
      row.inRate = s.sums.sum(after, upTo, 0) / secs;
      row.outRate = s.sums.sum(after, upTo, 1) / secs;
      row.retransmits = s.sums.sum(after, upTo, 2);
      row.failures = s.sums.sum(after, upTo, 3);
      flows.push(row);
    }
    const drops: DropRow[] = [];
    let dropRate = 0;
    for (const s of this.#live(this.#drops, nowMs)) {
      const secs = seconds(s), row = s.row;
      row.packetRate = s.sums.sum(after, upTo, 0) / secs;
      row.byteRate = s.sums.sum(after, upTo, 1) / secs;
      dropRate += row.packetRate;
      drops.push(row);
    }
    const dns: DnsRow[] = [];
    for (const s of this.#live(this.#dns, nowMs)) {
      s.row.qps = s.sums.sum(after, upTo) / seconds(s);
      dns.push(s.row);
    }
    return {
      flows,
      dns,
      drops,
      dropRate,
      commands: this.#commands.slice(-this.#o.maxCommands).reverse(),
      cpuPercent: this.#cpuPercent,
      rssBytes: this.#rssBytes,
    };
  }
}

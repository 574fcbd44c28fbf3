/**
 * The `dns` probe: the DNS requests made (and, if asked, answered) on this host, UDP and TCP,
 * IPv4 and IPv6, as `dnsflow` records: every `poll`, one per series (name, type, rcode, both
 * ends, the asking process) that saw requests, with their count, latency sum, mean and max and
 * retransmissions. It also hands each answer's addresses to `dns_domain` stages that name it
 * in `answers_from`, so netflow records get their `dst_domain`.
 *
 * ```yaml
 * probes:
 *   dns:
 *     type: dns
 *     ports: [53]            # DNS ports to watch (either end)
 *     sides: [outgoing]      # add `incoming` to also report queries a local server answers
 *     timeout: 5s            # no answer by then: rcode -1 (TIMEOUT)
 *     poll: 10s              # how often the kernel's sums are read
 *     per_request: false     # true: one record per request, at once (for debugging)
 * ```
 *
 * The kernel (bpf/dns.bpf.c) reads UDP messages, matches each response to its query and sums
 * the request into its row; user space takes the rows each poll (aligned to the clock, each
 * record stamped inside the interval it covers, so a minute's window gets that minute). What
 * the kernel does not read comes whole through the ring buffer and is read here as before
 * (dns_tracker.ts: TCP reassembly, odd messages), summed under the same keys
 * (dns_rows.ts). When the pipeline lets it (ctx.pushdown), the kernel folds the client's
 * ephemeral port to `*` before summing, and sends a response's answers to user space only
 * when they are new to it or their TTL has run out.
 */
import { bootToRealtimeOffsetNs, CLOCK_BOOTTIME, clockNs } from "../../ffi/libc.ts";
import type { BpfMap } from "../../ffi/map.ts";
import type { BpfObject } from "../../ffi/object.ts";
import { describeError } from "../errors.ts";
import { ipv6Bytes, parseIp } from "../ip.ts";
import { integerList } from "../pipeline/schema.ts";
import type { PortRange, ProbeStage, StageContext, StageDef } from "../pipeline/stage.ts";
import { cgroupV2Mount } from "../system/cgroup.ts";
import { openBpfObject } from "../system/bpf_objects.ts";
import { COMMANDS_MAP, shareCommands } from "./commands.ts";
import { CGROUP_V2_CHECK } from "./cgroup_v2_check.ts";
import { COMMON_DROPS, DECODE_ERRORS, decodeFailures, startReading } from "./drops.ts";
import {
  decodeDnsEvent,
  decodeName,
  decodePending,
  decodeRowEvent,
  decodeRowKey,
  decodeRowStats,
  DNS_COUNTS,
  DNS_EVENT_ROW,
  DNS_SETTINGS,
  DNS_SIDE_CLIENT,
  DNS_SIDE_SERVER,
  DNS_SWITCHES,
  DnsDecodeError,
  type DnsRowKey,
  type DnsRowStats,
  nameHash,
  pendingKeyBytes,
} from "./dns_event.ts";
import { nameOfWire, qtypeName, questionKey } from "./dns_fast_reader.ts";
import { answerRecord, dnsflowRecord, type DnsRow, DnsRows, rowOfRequest } from "./dns_rows.ts";
import { type ClaimedQuery, type DnsRequest, type DnsSegment, DnsTracker } from "./dns_tracker.ts";
import { Poller } from "./poller.ts";
import { settingsView, writeBss, writeFold } from "./sections.ts";

/** Options of a `dns` probe. */
export interface DnsConfig {
  ports: number[];
  /** `outgoing`: local processes' queries; `incoming`: queries a local server answers. */
  sides: string[];
  /** Milliseconds without an answer before a request counts as timed out. */
  timeout: number;
  max_pending: number;
  ring_buffer_size: number;
  /** The cgroup v2 directory to attach to; "" finds it. */
  cgroup: string;
  /** Milliseconds between reads of the kernel's sums. */
  poll: number;
  /** One record per request, at once, matched in user space (the path before kernel sums). */
  per_request: boolean;
  /** Rows the kernel sums between polls. */
  max_flows: number;
  /** Question names the kernel keeps (least recently used go first). */
  max_names: number;
}

const SIDES = ["outgoing", "incoming"];
/** Names not used for this many polls leave the name cache (the kernel's map is an LRU). */
const NAME_IDLE_POLLS = 60;

export const dnsProbe: StageDef<DnsConfig> = {
  type: "dns",
  kind: "probe",
  // CAP_NET_ADMIN: the kernel loads cgroup programs only with it (docs/capabilities.md).
  capabilities: ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"],
  bpfObject: "dns",
  consumes: [COMMANDS_MAP], // stamps cmd_id: the typed command of the asking process
  hostPaths: { cgroup: "/host/sys/fs/cgroup" },
  drops: COMMON_DROPS,
  losses: [DECODE_ERRORS, {
    counter: "pending_dropped",
    what: "DNS queries dropped unanswered",
    why: "more awaiting an answer than max_pending",
  }],
  checks: [CGROUP_V2_CHECK],
  describe: "DNS requests (UDP and TCP, IPv4 and IPv6): latency, rcode, name, asking process.",
  schema: {
    ports: {
      type: "custom",
      default: [53],
      parse: integerList("a port", 1, 65535, true),
      doc: "DNS ports: a packet with one of them at either end is DNS",
    },
    sides: {
      type: "strings",
      default: ["outgoing"],
      doc: "outgoing: queries local processes send; incoming: queries a local server answers",
    },
    timeout: {
      type: "duration",
      default: "5s",
      doc: "a request with no answer by then is reported with rcode -1 (TIMEOUT)",
    },
    poll: {
      type: "duration",
      default: "10s",
      doc: "how often the kernel's sums are read and emitted, aligned to the clock",
    },
    per_request: {
      type: "boolean",
      default: false,
      doc: "one record per request, at once, matched in user space (costs more; for debugging)",
    },
    max_pending: {
      type: "integer",
      default: 10000,
      min: 1,
      max: 1 << 22,
      doc: "queries awaiting an answer (kernel and user space each); beyond, pending_full or " +
        "pending_dropped",
    },
    max_flows: {
      type: "integer",
      default: 16384,
      min: 16,
      max: 1 << 22,
      doc: "rows the kernel sums between polls; beyond, rows go through the ring (rows_via_ring)",
    },
    max_names: {
      type: "integer",
      default: 8192,
      min: 16,
      max: 1 << 20,
      doc: "question names the kernel keeps beside their hash; the least recently used go first",
    },
    ring_buffer_size: {
      type: "size",
      default: "256KiB",
      doc: "ring buffer for the DNS messages the kernel does not count and answers for " +
        "dns_domain (per_request: every message; a power of two, 4KiB or more); overflow is " +
        "ring_lost",
    },
    cgroup: {
      type: "string",
      default: "",
      doc: "cgroup v2 directory to attach to; empty: found at start",
    },
  },
  validate(config, at) {
    const problems = config.sides
      .map((s, i) => [s, i] as const)
      .filter(([s]) => !SIDES.includes(s))
      .map(([s, i]) =>
        at.child("sides").child(i).problem(`unknown side "${s}"; known: ${SIDES.join(", ")}`)
      );
    const n = config.ring_buffer_size;
    if (n < 4096 || (n & (n - 1)) !== 0) {
      problems.push(
        at.child("ring_buffer_size").problem(
          `must be a power of two of at least 4KiB (the kernel's rule for ring buffers), got ${n} bytes`,
        ),
      );
    }
    return problems;
  },
  example: { ports: [53, 5353], sides: ["outgoing", "incoming"], timeout: "2s", poll: "10s" },

  explain(config) {
    return {
      details: [
        `cgroup_skb ingress and egress on ${config.cgroup || "the cgroup v2 root"}: ` +
        `DNS on ports ${config.ports.join(", ")}`,
        "cgroup/connect4,6 sendmsg4,6 (recvmsg4,6 with incoming): the process owning each " +
        "DNS socket",
        config.per_request
          ? "per_request: every message through the ring buffer, one record per request"
          : `UDP requests matched and summed in the kernel, read every ${config.poll} ms; ` +
            "TCP and odd messages through the ring buffer",
        `sides ${config.sides.join(", ")}; timeout ${config.timeout} ms; ` +
        `program objects: build/bpf/dns.bpf.o`,
      ],
      reads: [],
    };
  },

  intervalMs: (config) => (config.per_request ? 0 : config.poll),

  build(config, ctx) {
    return attach(config, ctx);
  },
};

/** Writes `struct dns_settings` (.rodata) before load. */
function writeSettings(
  obj: BpfObject,
  config: DnsConfig,
  fold: PortRange | undefined,
  ctx: StageContext,
) {
  const L = DNS_SETTINGS.offsets;
  const view = settingsView(obj, DNS_SETTINGS);
  const sides = (config.sides.includes("outgoing") ? DNS_SIDE_CLIENT : 0) |
    (config.sides.includes("incoming") ? DNS_SIDE_SERVER : 0);
  view.setUint32(L.sides, sides, true);
  view.setUint32(L.aggregate, config.per_request ? 0 : 1, true);
  const ttl = ctx.pushdown.answerTtl;
  view.setUint32(L.answers, ttl ? 1 : 0, true);
  writeFold(view, DNS_SETTINGS, fold);
  view.setBigUint64(L.min_ttl_ns, BigInt(ttl?.minMs ?? 0) * 1_000_000n, true);
  view.setBigUint64(L.max_ttl_ns, BigInt(ttl?.maxMs ?? 0) * 1_000_000n, true);
}

/** An IPv4 or IPv6 address as the kernel keys it: 16 bytes, IPv4 as IPv4-mapped IPv6. */
function addressBytes(ip: string): Uint8Array {
  const address = parseIp(ip);
  if (address === undefined) throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`);
  return ipv6Bytes(address);
}

function attach(config: DnsConfig, ctx: StageContext): ProbeStage {
  const stack = new DisposableStack();
  try {
    const obj = stack.use(openBpfObject("dns"));
    // per_request records are one request each: ephemeral_port folds them after.
    const fold = config.per_request ? undefined : ctx.pushdown.clientPorts;
    writeSettings(obj, config, fold, ctx);
    obj.map("events").setMaxEntries(config.ring_buffer_size);
    obj.map("pending").setMaxEntries(config.max_pending);
    obj.map("flows0").setMaxEntries(config.max_flows);
    obj.map("flows1").setMaxEntries(config.max_flows);
    obj.map("names").setMaxEntries(config.max_names);
    shareCommands(obj, ctx);
    obj.load();
    for (const port of config.ports) {
      obj.map("dns_ports").update(
        new Uint8Array(new Uint32Array([port]).buffer), // an array map: u32 keys
        new Uint8Array([1]),
      );
    }
    const cgroup = config.cgroup || cgroupV2Mount();
    const attached: string[] = [];
    // Owners first: a packet seen before its socket's owner is noted has pid 0. A client's
    // socket is noted when it connects or sends; only a server's needs its recvmsg noted, and
    // that hook runs for every unconnected UDP read on the host: attached only for `incoming`.
    const owners = ["dns_connect4", "dns_connect6", "dns_sendmsg4", "dns_sendmsg6"];
    if (config.sides.includes("incoming")) owners.push("dns_recvmsg4", "dns_recvmsg6");
    for (const name of [...owners, "dns_egress", "dns_ingress"]) {
      attached.push(stack.use(obj.program(name).attachCgroup(cgroup)).description);
    }
    const state = new DnsState(obj, config, ctx, fold);
    const ring = stack.use(obj.ringBuffer("events", (view, at, length) => {
      state.record(view, at, length);
    }, { onBatchEnd: () => state.batchEnd() }));

    const expire = () => {
      try {
        ring.drain(); // answers that arrived count before their queries time out
        state.expire();
      } catch (e) {
        ctx.log.warn(`${ctx.name}: ${describeError(e)}`);
      }
    };
    const timer = setInterval(expire, Math.min(1000, Math.max(50, config.timeout / 5)));
    // At the tick, before windows that close then: the records are stamped just before it.
    const polls = config.per_request ? undefined : new Poller(ctx, config.poll, (time) => {
      ring.drain();
      state.poll(time);
    });
    // Queries awaiting an answer fill `pending` (max_pending); `owners` is socket storage,
    // with no capacity and not countable from user space.
    const reading = startReading(ring, obj.map("drops"), ctx, state.fill());

    return {
      attached,
      push() {},
      async flush(reason) {
        expire();
        state.poll(ctx.clock.now(), true);
        if (reason === "shutdown") await ring.stop();
      },
      sideReadersRebuilt() {
        state.resendAnswers();
      },
      async close() {
        clearInterval(timer);
        polls?.cancel();
        await reading.stop();
        state.report();
        stack.dispose();
      },
    };
  } catch (e) {
    stack.dispose();
    throw e;
  }
}

/** The user-space half of a running dns probe: the ring's records, the kernel's maps, rows. */
class DnsState {
  readonly #obj: BpfObject;
  readonly #config: DnsConfig;
  readonly #ctx: StageContext;
  readonly #fold: PortRange | undefined;
  readonly #tracker: DnsTracker;
  readonly #rows = new DnsRows();
  readonly #pending: BpfMap;
  readonly #flows: BpfMap[];
  readonly #names: BpfMap;
  readonly #counts: BpfMap;
  /** Name hash → text, and the poll that last used it. */
  readonly #nameCache = new Map<bigint, { text: string; poll: number }>();
  #gen = 0;
  #answersGen = 0;
  #polls = 0;
  /** Boot time → wall clock (per_request records carry their own time). */
  #offset = bootToRealtimeOffsetNs();
  #cut = 0;
  #collapsed = 0;
  #requests = 0n;
  #namesUnknown = 0;
  #kernelPending = 0;
  #flowEntries = 0;
  readonly #decodeFailed: (e: unknown) => void;

  constructor(obj: BpfObject, config: DnsConfig, ctx: StageContext, fold: PortRange | undefined) {
    this.#obj = obj;
    this.#config = config;
    this.#ctx = ctx;
    this.#decodeFailed = decodeFailures(ctx, DnsDecodeError);
    this.#fold = fold;
    this.#pending = obj.map("pending");
    this.#flows = [obj.map("flows0"), obj.map("flows1")];
    this.#names = obj.map("names");
    this.#counts = obj.map("counts");
    this.#tracker = new DnsTracker({
      timeoutNs: BigInt(config.timeout) * 1_000_000n,
      maxPending: config.max_pending,
      claim: config.per_request ? undefined : (seg, bytes) => this.#claim(seg, bytes),
    });
  }

  /**
   * The bounded maps, for map_entries/map_capacity: `pending` is the kernel's when it matches
   * queries (a query it has no room for goes to user space, counted as pending_full), the
   * user-space tracker's with per_request.
   */
  fill() {
    const capacity = this.#config.max_pending;
    if (this.#config.per_request) {
      return [{ map: "pending", capacity, entries: () => this.#tracker.pending }];
    }
    return [
      { map: "pending", capacity, entries: () => this.#kernelPending },
      { map: "flows", capacity: this.#config.max_flows, entries: () => this.#flowEntries },
    ];
  }

  /** One ring buffer record. */
  record(view: DataView, at: number, length: number): void {
    try {
      if (length > 0 && view.getUint8(at) === DNS_EVENT_ROW) {
        const { key, stats } = decodeRowEvent(view, at, length);
        this.#rows.add(this.#kernelRow(key, stats));
        return;
      }
      const decoded = decodeDnsEvent(view, at, length);
      if (decoded.cut) this.#cut++;
      const time = decoded.segment.timeNs + this.#offset;
      if (decoded.answersOnly) {
        for (const a of this.#tracker.answers(decoded.segment)) {
          this.#ctx.emitSide(answerRecord(a, this.#ctx.host, time));
        }
        return;
      }
      const { requests, answers } = this.#tracker.add(decoded.segment);
      this.#finished(requests, decoded.segment.timeNs);
      for (const a of answers) this.#ctx.emitSide(answerRecord(a, this.#ctx.host, time));
    } catch (e) {
      this.#decodeFailed(e);
    }
  }

  batchEnd(): void {
    this.#offset = bootToRealtimeOffsetNs();
    // Counted once a drained batch, not per packet: a counter update costs about what
    // reading a packet does.
    if (this.#cut > 0) this.#ctx.counters.add("payloads_cut", this.#cut);
    this.#cut = 0;
  }

  /** Requests the tracker finished: records at once (per_request), else summed into rows. */
  #finished(requests: DnsRequest[], bootNs: bigint): void {
    for (const r of requests) {
      if (this.#config.per_request) {
        this.#requests++;
        this.#ctx.emit(dnsflowRecord(r, this.#ctx.host, bootNs + this.#offset));
      } else {
        this.#rows.add(this.#folded(rowOfRequest(r)));
      }
    }
  }

  /** The row with its client port folded, as the kernel folds its own. */
  #folded(row: DnsRow): DnsRow {
    const fold = this.#fold;
    if (!fold) return row;
    const client = row.side === "client";
    const port = client ? row.localPort : row.remotePort;
    if (port < fold.low || port > fold.high) return row;
    this.#collapsed++;
    return client ? { ...row, localPort: 0 } : { ...row, remotePort: 0 };
  }

  /**
   * For a response user space reads with no query of its own: the kernel's pending query, if
   * it holds it, taken (deleted) from there.
   */
  #claim(seg: DnsSegment, bytes: Uint8Array): ClaimedQuery | undefined {
    if (seg.transport !== "udp") return undefined;
    const q = questionKey(bytes);
    if (q === undefined) return undefined;
    const key = pendingKeyBytes(
      { ...seg, nameHash: nameHash(q.wire), id: q.id, qtype: q.qtype },
      addressBytes(seg.localIp),
      addressBytes(seg.remoteIp),
    );
    const value = new Uint8Array(this.#pending.valueSize);
    if (!this.#pending.lookup(key, value) || !this.#pending.delete(key)) return undefined;
    const p = decodePending(key, value);
    return {
      firstNs: p.firstNs,
      pid: p.pid,
      comm: p.comm,
      cgroupId: p.cgroupId,
      retransmits: p.retransmits,
      ...(p.cmdId ? { cmdId: p.cmdId } : {}),
    };
  }

  /** The name of a kernel hash: cached, or read from the kernel's map. */
  #name(hash: bigint): string {
    const cached = this.#nameCache.get(hash);
    if (cached !== undefined) {
      cached.poll = this.#polls;
      return cached.text;
    }
    const key = new Uint8Array(new BigUint64Array([hash]).buffer);
    const value = new Uint8Array(this.#names.valueSize);
    let text: string | undefined;
    if (this.#names.lookup(key, value)) text = nameOfWire(decodeName(value));
    if (text === undefined) {
      this.#namesUnknown++;
      return "";
    }
    this.#nameCache.set(hash, { text, poll: this.#polls });
    return text;
  }

  /** A row of what the kernel keyed, its question's name and type as text. */
  #kernelRow(key: DnsRowKey, stats: DnsRowStats): DnsRow {
    return {
      side: key.side,
      family: key.family,
      transport: key.transport,
      localIp: key.localIp,
      localPort: key.localPort,
      remoteIp: key.remoteIp,
      remotePort: key.remotePort,
      pid: key.pid,
      comm: key.comm,
      ...(key.cmdId ? { cmdId: key.cmdId } : {}),
      name: this.#name(key.nameHash),
      qtype: qtypeName(key.qtype),
      rcode: key.rcode,
      truncated: key.truncated,
      cgroupId: key.cgroupId,
      netns: key.netns,
      count: stats.count,
      latencySum: stats.latencySum,
      latencyMax: stats.latencyMax,
      retransmits: stats.retransmits,
    };
  }

  /** Times out queries older than the timeout, here and in the kernel; reports counters. */
  expire(): void {
    const now = clockNs(CLOCK_BOOTTIME);
    this.#finished(this.#tracker.expire(now), now);
    if (!this.#config.per_request) this.#expireKernel(now);
    this.report();
  }

  /** The kernel's pending queries past the timeout: deleted here (whoever deletes, counts). */
  #expireKernel(now: bigint): void {
    const timeoutNs = BigInt(this.#config.timeout) * 1_000_000n;
    const old: { key: Uint8Array<ArrayBuffer>; value: Uint8Array }[] = [];
    let entries = 0;
    for (const { key, value } of this.#pending.lookupBatch(1024)) {
      entries++;
      const first = new DataView(value.buffer, value.byteOffset, 8).getBigUint64(0, true);
      if (now - first > timeoutNs) old.push({ key: key.slice(), value: value.slice() });
    }
    this.#kernelPending = entries;
    for (const { key, value } of old) {
      if (!this.#pending.delete(key)) continue; // answered meanwhile
      this.#kernelPending--;
      const p = decodePending(key, value);
      // A timed-out query: a row of one request, no response (rcode -1).
      const unanswered = { ...p, transport: "udp", rcode: -1, truncated: false } as const;
      const stats = {
        count: 1n,
        latencySum: 0n,
        latencyMax: 0n,
        retransmits: BigInt(p.retransmits),
      };
      this.#rows.add(this.#folded(this.#kernelRow(unanswered, stats)));
    }
  }

  /**
   * Takes the kernel's rows (the generation programs write is switched first, then the other
   * one read and emptied; `both`: the other one too, at a flush) and emits every row summed
   * since the last poll, stamped `time`.
   */
  poll(time: bigint, both = false): void {
    if (!this.#config.per_request) {
      this.#polls++;
      for (let i = both ? 2 : 1; i > 0; i--) this.#takeGeneration();
      this.#forgetIdleNames();
    }
    for (const row of this.#rows.take()) {
      this.#requests += row.count;
      this.#ctx.emit(dnsflowRecord(row, this.#ctx.host, time));
    }
  }

  /** Writes `struct dns_switches` (.bss). */
  #writeSwitches(): void {
    writeBss(this.#obj, DNS_SWITCHES, (view) => {
      view.setUint32(DNS_SWITCHES.offsets.gen, this.#gen, true);
      view.setUint32(DNS_SWITCHES.offsets.answers_gen, this.#answersGen, true);
    });
  }

  /** New dns_domain stages read the answers: the kernel sends each again (a new LRU key). */
  resendAnswers(): void {
    this.#answersGen = (this.#answersGen + 1) >>> 0;
    this.#writeSwitches();
  }

  #takeGeneration(): void {
    const old = this.#gen;
    this.#gen ^= 1;
    this.#writeSwitches();
    let n = 0;
    for (const { key, value } of this.#flows[old].takeBatch(1024)) {
      n++;
      try {
        this.#rows.add(this.#kernelRow(decodeRowKey(key), decodeRowStats(value)));
      } catch (e) {
        this.#decodeFailed(e);
      }
    }
    this.#flowEntries = n;
  }

  #forgetIdleNames(): void {
    if (this.#polls % 10 !== 0) return;
    for (const [hash, n] of this.#nameCache) {
      if (this.#polls - n.poll > NAME_IDLE_POLLS) this.#nameCache.delete(hash);
    }
  }

  report(): void {
    const c = this.#ctx.counters;
    const s = this.#tracker.stats;
    const kernel = (name: typeof DNS_COUNTS[number]) =>
      this.#counts.sumPerCpuU64(DNS_COUNTS.indexOf(name));
    for (const name of DNS_COUNTS) {
      if (!name.startsWith("kernel_") && name !== "ports_collapsed") c.set(name, kernel(name));
    }
    c.set("ports_collapsed", kernel("ports_collapsed") + BigInt(this.#collapsed));
    c.set("retransmits", kernel("kernel_retransmits") + BigInt(s.retransmits));
    c.set("ignored", kernel("kernel_ignored") + BigInt(s.ignored));
    c.set("malformed", BigInt(s.malformed));
    c.set("unmatched_responses", BigInt(s.unmatchedResponses));
    c.set("pending_dropped", BigInt(s.pendingDropped));
    c.set("pending", BigInt(this.#tracker.pending + this.#kernelPending));
    c.set("tcp_bytes_buffered", BigInt(this.#tracker.buffered));
    c.set("requests", this.#requests);
    c.set("names_unknown", BigInt(this.#namesUnknown));
    c.set("name_cache_entries", BigInt(this.#nameCache.size));
  }
}

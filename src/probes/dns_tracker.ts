/**
 * DNS payloads the dns probe captures, turned into requests (a query matched to its response)
 * and answers (the addresses a response carried), for `dnsflow` records and `dns_domain` stages.
 *
 * The kernel hands over each DNS packet's payload: one whole message for UDP, a piece of the
 * 2-byte-length-prefixed stream for TCP. TCP is reassembled here per connection and direction.
 * A query waits in a bounded table until its response (same socket pair, DNS id, question name
 * and type) completes it, or until {@linkcode DnsTracker.expire} reports it as timed out.
 *
 * Messages are read by the hand-written reader (dns_fast_reader.ts), and by dns-packet
 * (dns_packet_reader.ts) wherever that one declines. A message cut short (the kernel copies at most a prefix of
 * a large packet) still gives its header, question and the answers before the cut, so a large
 * response still completes its request instead of showing up as a timeout.
 *
 * Pure and clock-free: times come with the segments, "now" with `expire`.
 */
import { decodeWithDnsPacket } from "./dns_packet_reader.ts";
import { GIVE_UP, readMessage } from "./dns_fast_reader.ts";
import { HEADER_SIZE, type Message, normalizeName, TYPE_CNAME } from "./dns_message.ts";

/** One DNS packet's payload as the probe saw it, with its socket. */
export interface DnsSegment {
  /** When the packet was seen, ns on a monotonic clock (the probe: the kernel's boot time). */
  timeNs: bigint;
  /** `client`: a local process asked (the local port is not the DNS port); `server`: a local DNS server answered. */
  side: "client" | "server";
  /** True: leaving this socket (egress); false: arriving. */
  outbound: boolean;
  family: "IPv4" | "IPv6";
  transport: "udp" | "tcp";
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  /** The local socket's process (0 / "" when unknown). */
  pid: number;
  comm: string;
  /** The local socket's cgroup v2 id (0 or absent: unknown), for the `container` transform. */
  cgroupId?: bigint;
  /** The local socket's network namespace inode (0 or absent: unknown). */
  netns?: number;
  cmdId?: string; // the asking process's typed command (bpf/commands.h), when in one
  /** UDP: one DNS message; TCP: a segment of the 2-byte-length-prefixed stream. */
  payload: Uint8Array;
  /**
   * Bytes the packet carried when the kernel copied only a prefix (absent: `payload` is all of
   * it). TCP needs it to step over the missing bytes and keep the stream's framing.
   */
  payloadLength?: number;
}

/** One request: a query and its response, or a query that got none in time. */
export interface DnsRequest extends
  Pick<
    DnsSegment,
    | "side"
    | "family"
    | "transport"
    | "localIp"
    | "localPort"
    | "remoteIp"
    | "remotePort"
    | "pid"
    | "comm"
    | "cgroupId"
    | "netns"
    | "cmdId"
  > {
  /** The question name, lower case, no trailing dot ("" for the root). */
  name: string;
  /** `A`, `AAAA`, `CNAME`, ... (dns-packet's names, plus `SVCB`, `HTTPS`), or `TYPE<n>`. */
  qtype: string;
  /** Response code (0 NOERROR, 3 NXDOMAIN, ..., EDNS extended codes included), -1 on timeout. */
  rcode: number;
  /** Response time minus first query time; absent on timeout. */
  latencyNs?: bigint;
  /** The response had the TC bit (the client will likely retry over TCP). */
  truncated: boolean;
  /** Copies of the query sent again while the first awaited its response. */
  retransmits: number;
}

/**
 * A query awaiting its response elsewhere than in the tracker (the kernel), found by the
 * tracker's `claim` for a response it reads with no query of its own.
 */
export interface ClaimedQuery {
  firstNs: bigint;
  pid: number;
  comm: string;
  cgroupId: bigint;
  retransmits: number;
  cmdId?: string;
}

/**
 * An address a response gave: an A or AAAA record. `name` is the name that was asked, CNAME
 * chains in the same response followed back to it.
 */
export interface DnsAnswer {
  name: string;
  address: string;
  /** Seconds, as the record gave it. */
  ttl: number;
}

/** What the tracker could not turn into requests, and why; each a running total. */
export interface DnsTrackerStats {
  /**
   * Payloads or messages that could not be read: empty, too short, no question, TCP framing
   * that is garbage or lost, a TCP message never completed.
   */
  malformed: number;
  /** Responses with no pending query (late, before our start, or travelling the query's way). */
  unmatchedResponses: number;
  /** Queries repeated while the first was pending; counted once. */
  retransmits: number;
  /** Pending queries dropped, oldest first, to stay within `maxPending`. */
  pendingDropped: number;
  /** Queries travelling the response's way for their side (not a request this side makes). */
  ignored: number;
}
const EMPTY = new Uint8Array(0);

/** Reads one DNS message; undefined when it has no readable header and question. */
function decodeMessage(bytes: Uint8Array): Message | undefined {
  const m = readMessage(bytes);
  return m === GIVE_UP ? decodeWithDnsPacket(bytes) : m;
}

/** A response's A and AAAA records, each named by the question it answers where CNAMEs lead back. */
function answersOf(m: Message, out: DnsAnswer[]): void {
  if (m.answers.length === 0) return;
  const cnames = new Map<string, string>();
  for (const a of m.answers) {
    if (a.type !== TYPE_CNAME) continue;
    const owner = normalizeName(a.name);
    if (!cnames.has(owner)) cnames.set(owner, normalizeName(a.data));
  }
  // Names the question reaches through the chain; the set also stops a CNAME loop.
  const reached = new Set([m.name]);
  for (let n = cnames.get(m.name); n !== undefined && !reached.has(n); n = cnames.get(n)) {
    reached.add(n);
  }
  for (const a of m.answers) {
    if (a.type === TYPE_CNAME) continue;
    const owner = normalizeName(a.name);
    out.push({ name: reached.has(owner) ? m.name : owner, address: a.data, ttl: a.ttl });
  }
}

interface Pending {
  firstNs: bigint;
  /** The query's segment, its payload left out (nothing to hold on to). */
  segment: DnsSegment;
  name: string;
  qtype: string;
  retransmits: number;
}

/** One direction of one TCP connection. */
interface Stream {
  /** Bytes of a message not complete yet (its length prefix first), or 1 byte of a prefix. */
  buf: Uint8Array;
  /** Bytes still to come of a message already read from a cut segment: passed over. */
  skip: number;
  lastNs: bigint;
}

/**
 * Matches queries to responses (see the module doc). Feed it every captured segment in the
 * order the kernel saw them, and call `expire` now and then.
 *
 * @example
 * ```ts
 * const tracker = new DnsTracker({ timeoutNs: 5_000_000_000n, maxPending: 10_000 });
 * const { requests, answers } = tracker.add(segment);
 * const timedOut = tracker.expire(nowNs());
 * ```
 */
export class DnsTracker {
  readonly #timeoutNs: bigint;
  readonly #maxPending: number;
  /** Insertion order is first-query order: the first entry is the oldest. */
  readonly #pending = new Map<string, Pending>();
  /** Only directions holding part of a message (or bytes to pass over); LRU order. */
  readonly #streams = new Map<string, Stream>();
  #buffered = 0;
  readonly #stats: DnsTrackerStats = {
    malformed: 0,
    unmatchedResponses: 0,
    retransmits: 0,
    pendingDropped: 0,
    ignored: 0,
  };

  readonly #claim?: (segment: DnsSegment, message: Uint8Array) => ClaimedQuery | undefined;

  /**
   * `timeoutNs`: how long a query waits for its response. `maxPending`: queries waiting at
   * most, and TCP directions holding a partial message at most. `claim`: for a response with
   * no query here, the query if another tracker (the kernel) holds it, taken from there.
   */
  constructor(options: {
    timeoutNs: bigint;
    maxPending: number;
    claim?: (segment: DnsSegment, message: Uint8Array) => ClaimedQuery | undefined;
  }) {
    if (options.timeoutNs < 0n) throw new RangeError(`timeoutNs ${options.timeoutNs} < 0`);
    if (!Number.isInteger(options.maxPending) || options.maxPending < 1) {
      throw new RangeError(`maxPending ${options.maxPending} is not a positive integer`);
    }
    this.#timeoutNs = options.timeoutNs;
    this.#maxPending = options.maxPending;
    this.#claim = options.claim;
  }

  /** Queries waiting for their response. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Bytes of partial TCP messages held. */
  get buffered(): number {
    return this.#buffered;
  }

  /** A copy of the running totals. */
  get stats(): DnsTrackerStats {
    return { ...this.#stats };
  }

  /**
   * One packet; returns the requests it completed and the answers it carried (those of every
   * response it held, matched or not). Never throws on bad payloads: counts them as malformed.
   */
  /**
   * The answers of one message the kernel already counted (sent for its answers only): read,
   * nothing matched or counted.
   */
  answers(segment: DnsSegment): DnsAnswer[] {
    const out: DnsAnswer[] = [];
    const m = segment.transport === "udp" ? decodeMessage(segment.payload) : undefined;
    if (m?.response) answersOf(m, out);
    return out;
  }

  add(segment: DnsSegment): { requests: DnsRequest[]; answers: DnsAnswer[] } {
    const out = { requests: [] as DnsRequest[], answers: [] as DnsAnswer[] };
    if (segment.transport === "udp") {
      this.#message(segment, segment.payload, out);
    } else if (segment.payload.length > 0 || (segment.payloadLength ?? 0) > 0) {
      this.#tcp(segment, out);
    } else {
      // No bytes: nothing the kernel should send; counted so every payload lands somewhere.
      this.#stats.malformed++;
    }
    return out;
  }

  /**
   * Requests whose first query is older than the timeout at `nowNs`, as rcode -1, oldest
   * first. Also drops TCP partial messages idle that long (counted malformed).
   */
  expire(nowNs: bigint): DnsRequest[] {
    const out: DnsRequest[] = [];
    // Not stopping at the first young entry: segments from several CPUs can come slightly
    // out of time order, and a full pass over a bounded table is cheap at this rate.
    for (const [key, p] of this.#pending) {
      if (nowNs - p.firstNs <= this.#timeoutNs) continue;
      this.#pending.delete(key);
      out.push(request(p, p.segment, -1, false));
    }
    for (const [key, s] of this.#streams) {
      if (nowNs - s.lastNs > this.#timeoutNs) this.#dropStream(key, s.buf.length > 0);
    }
    return out;
  }

  #dropStream(key: string, malformed: boolean): void {
    const s = this.#streams.get(key);
    if (!s) return;
    this.#buffered -= s.buf.length;
    this.#streams.delete(key);
    if (malformed) this.#stats.malformed++;
  }

  /**
   * Reassembles a TCP direction and reads each message it completes. A cut segment is its
   * captured bytes followed by `lost` unknown ones: a message the cut falls in is read as far
   * as it arrived and the rest of it passed over; a cut that takes a length prefix loses the
   * framing, and the direction starts afresh with its next segment.
   */
  #tcp(seg: DnsSegment, out: { requests: DnsRequest[]; answers: DnsAnswer[] }): void {
    const key =
      `${seg.localIp}|${seg.localPort}|${seg.remoteIp}|${seg.remotePort}|${seg.outbound}|${seg.netns}`;
    let lost = Math.max(0, (seg.payloadLength ?? 0) - seg.payload.length);
    let data = seg.payload;
    const s = this.#streams.get(key);
    if (s) {
      this.#dropStream(key, false); // kept again below if still partial, as the newest
      if (s.skip > 0) {
        let skip = s.skip;
        const n = Math.min(skip, data.length);
        skip -= n;
        data = data.subarray(n);
        if (skip > 0) {
          const m = Math.min(skip, lost);
          skip -= m;
          lost -= m;
          if (lost > 0) this.#stats.malformed++;
          else if (skip > 0) this.#keep(key, { buf: EMPTY, skip, lastNs: seg.timeNs });
          return;
        }
      } else {
        const joined = new Uint8Array(s.buf.length + data.length);
        joined.set(s.buf);
        joined.set(data, s.buf.length);
        data = joined;
      }
    }
    let at = 0;
    while (data.length - at >= 2) {
      const length = (data[at] << 8) | data[at + 1];
      if (length < HEADER_SIZE) {
        // Not a DNS message's length: we joined mid-stream or lost bytes. Start afresh.
        this.#stats.malformed++;
        return;
      }
      if (data.length - at < 2 + length) break;
      this.#message(seg, data.subarray(at + 2, at + 2 + length), out);
      at += 2 + length;
    }
    const rest = data.subarray(at);
    if (lost === 0) {
      // A partial message is at most 2 + 65535 bytes: the buffer never outgrows 65537.
      if (rest.length > 0) this.#keep(key, { buf: rest.slice(), skip: 0, lastNs: seg.timeNs });
      return;
    }
    if (rest.length < 2) {
      // The cut took a length prefix (or all of one): nowhere to resume from.
      this.#stats.malformed++;
      return;
    }
    const need = 2 + ((rest[0] << 8) | rest[1]) - rest.length;
    this.#message(seg, rest.subarray(2), out);
    if (lost > need) this.#stats.malformed++; // the cut took the next length prefix too
    else if (lost < need) this.#keep(key, { buf: EMPTY, skip: need - lost, lastNs: seg.timeNs });
  }

  #keep(key: string, s: Stream): void {
    if (this.#streams.size >= this.#maxPending) {
      const [oldest, o] = this.#streams.entries().next().value!;
      this.#dropStream(oldest, o.buf.length > 0);
    }
    this.#streams.set(key, s);
    this.#buffered += s.buf.length;
  }

  /** One whole (or cut) message: a query to remember or a response to match. */
  #message(
    seg: DnsSegment,
    bytes: Uint8Array,
    out: { requests: DnsRequest[]; answers: DnsAnswer[] },
  ): void {
    const m = decodeMessage(bytes);
    if (!m) {
      this.#stats.malformed++;
      return;
    }
    // A client's queries leave and a server's arrive.
    const queryWay = seg.side === "client";
    const key =
      `${seg.side}|${seg.transport}|${seg.localIp}|${seg.localPort}|${seg.remoteIp}|${seg.remotePort}|${m.id}|${m.name}|${m.qtype}|${seg.netns}`;
    if (!m.response) {
      if (seg.outbound !== queryWay) {
        this.#stats.ignored++;
        return;
      }
      const first = this.#pending.get(key);
      if (first) {
        first.retransmits++;
        this.#stats.retransmits++;
        return;
      }
      if (this.#pending.size >= this.#maxPending) {
        this.#pending.delete(this.#pending.keys().next().value!);
        this.#stats.pendingDropped++;
      }
      const segment = { ...seg, payload: EMPTY };
      this.#pending.set(key, {
        firstNs: seg.timeNs,
        segment,
        name: m.name,
        qtype: m.qtype,
        retransmits: 0,
      });
      return;
    }
    answersOf(m, out.answers);
    if (seg.outbound === queryWay) {
      this.#stats.unmatchedResponses++;
      return;
    }
    let p = this.#pending.get(key);
    if (p) {
      this.#pending.delete(key);
    } else {
      const claimed = this.#claim?.(seg, bytes);
      if (!claimed) {
        this.#stats.unmatchedResponses++;
        return;
      }
      const { firstNs, retransmits, ...owner } = claimed;
      p = { firstNs, segment: { ...seg, ...owner }, name: m.name, qtype: m.qtype, retransmits };
    }
    const latency = seg.timeNs - p.firstNs;
    out.requests.push(request(p, seg, m.rcode, m.truncated, latency > 0n ? latency : 0n));
  }
}

/** A finished request from its pending query and the segment that ended it. */
function request(
  p: Pending,
  end: DnsSegment,
  rcode: number,
  truncated: boolean,
  latencyNs?: bigint,
): DnsRequest {
  const q = p.segment;
  // Arriving packets can lack the process; the query (or the other end) may know it.
  const known = q.pid !== 0 ? q : end;
  const r: DnsRequest = {
    side: q.side,
    family: q.family,
    transport: q.transport,
    localIp: q.localIp,
    localPort: q.localPort,
    remoteIp: q.remoteIp,
    remotePort: q.remotePort,
    pid: known.pid,
    comm: known.comm,
    name: p.name,
    qtype: p.qtype,
    rcode,
    truncated,
    retransmits: p.retransmits,
  };
  if (latencyNs !== undefined) r.latencyNs = latencyNs;
  const cgroupId = q.cgroupId || end.cgroupId;
  if (cgroupId) r.cgroupId = cgroupId;
  if (q.netns) r.netns = q.netns;
  if (known.cmdId) r.cmdId = known.cmdId;
  return r;
}

/**
 * DNS payloads the dns probe captures, turned into requests (a query matched to its response)
 * and answers (the addresses a response carried), for `dnsflow` records and `dns_domain` stages.
 *
 * The kernel hands over each DNS packet's payload: one whole message for UDP, a piece of the
 * 2-byte-length-prefixed stream for TCP. TCP is reassembled here per connection and direction.
 * A query waits in a bounded table until its response (same socket pair, DNS id, question name
 * and type) completes it, or until {@linkcode DnsTracker.expire} reports it as timed out.
 *
 * Messages are read with dns-packet. A message cut short (the kernel copies at most a prefix of
 * a large packet) still gives its header, question and the answers before the cut, so a large
 * response still completes its request instead of showing up as a timeout.
 *
 * Pure and clock-free: times come with the segments, "now" with `expire`.
 */
import { Buffer } from "node:buffer";
// @ts-types="@types/dns-packet"
import dnsPacket from "dns-packet";
import ipaddr from "ipaddr.js";
import type { Record } from "../record.ts";
import { formatAddress } from "./netflow_event.ts";

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

const HEADER_SIZE = 12;
const EMPTY = new Uint8Array(0);
/** Types newer than dns-packet's table, common enough to name (browsers ask HTTPS). */
const TYPE_NAMES: { [type: number]: string } = { 64: "SVCB", 65: "HTTPS" };

const RCODE_NAMES: { [rcode: number]: string } = {
  [-1]: "TIMEOUT",
  0: "NOERROR",
  1: "FORMERR",
  2: "SERVFAIL",
  3: "NXDOMAIN",
  4: "NOTIMP",
  5: "REFUSED",
  6: "YXDOMAIN",
  7: "YXRRSET",
  8: "NXRRSET",
  9: "NOTAUTH",
  10: "NOTZONE",
  11: "DSOTYPENI",
  16: "BADVERS",
  17: "BADKEY",
  18: "BADTIME",
  19: "BADMODE",
  20: "BADNAME",
  21: "BADALG",
  22: "BADTRUNC",
  23: "BADCOOKIE",
};

/**
 * The name of a response code (IANA's mnemonics), `TIMEOUT` for -1, else `RCODE<n>`.
 *
 * @example
 * ```ts
 * rcodeName(3); // "NXDOMAIN"
 * rcodeName(-1); // "TIMEOUT"
 * rcodeName(12); // "RCODE12"
 * ```
 */
export function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`;
}

/** A name as records carry it: ASCII lower case (DNS ignores case only there), no final dot. */
function normalizeName(name: string): string {
  const lower = name.replace(/[A-Z]+/g, (s) => s.toLowerCase());
  return lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

function typeName(type: string): string {
  if (!type.startsWith("UNKNOWN_")) return type;
  const n = Number(type.slice("UNKNOWN_".length));
  return TYPE_NAMES[n] ?? `TYPE${n}`;
}

/** What the tracker needs of one message. */
interface Message {
  id: number;
  response: boolean;
  truncated: boolean;
  rcode: number;
  /** The first question's name (normalized) and type. */
  name: string;
  qtype: string;
  /** IN-class A, AAAA (data in RFC 5952 form) and CNAME answers, names as the message has them. */
  answers: RawAnswer[];
}

/** An answer the tracker uses: `type` 1 (A), 5 (CNAME) or 28 (AAAA). */
interface RawAnswer {
  type: number;
  name: string;
  data: string;
  ttl: number;
}

/** The fewest bytes a question (root name, type, class) and a record (plus TTL, length) take. */
const MIN_QUESTION = 5, MIN_RECORD = 11;

/** Header counts, and whether the bytes could hold that many questions and records at all. */
function counts(bytes: Uint8Array) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const questions = view.getUint16(4), answers = view.getUint16(6);
  const records = answers + view.getUint16(8) + view.getUint16(10);
  return {
    questions,
    answers,
    fits: HEADER_SIZE + questions * MIN_QUESTION + records * MIN_RECORD <= bytes.length,
  };
}

/** dns-packet's decode, or undefined when the bytes do not hold what the header promises. */
function tryDecode(bytes: Uint8Array): dnsPacket.DecodedPacket | undefined {
  // Counts no message this long could hold would make dns-packet allocate arrays that big,
  // then throw: both slow, and random bytes mostly look like that.
  if (!counts(bytes).fits) return undefined;
  try {
    const packet = dnsPacket.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
    // dns-packet reads a last A/AAAA record cut short as if zero-padded; `bytes` tells.
    return dnsPacket.decode.bytes <= bytes.length ? packet : undefined;
  } catch {
    // dns-packet throws (Error or RangeError) on anything it cannot read; all mean "not this".
    return undefined;
  }
}

/**
 * A message that does not decode whole (cut short, or a bad record late in it): its header,
 * questions and as many answers as decode, found by halving, since decoding fewer answers
 * only drops work that succeeded.
 */
function salvage(bytes: Uint8Array): dnsPacket.DecodedPacket | undefined {
  const { questions, answers } = counts(bytes);
  const room = bytes.length - HEADER_SIZE - questions * MIN_QUESTION;
  if (questions === 0 || room < 0) return undefined;
  const copy = bytes.slice();
  const view = new DataView(copy.buffer);
  view.setUint16(8, 0); // authorities
  view.setUint16(10, 0); // additionals
  const withAnswers = (n: number) => {
    view.setUint16(6, n);
    return tryDecode(copy);
  };
  let best = withAnswers(0);
  if (!best) return undefined;
  let lo = 0, hi = Math.min(answers, Math.floor(room / MIN_RECORD));
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    const packet = withAnswers(mid);
    if (packet) [lo, best] = [mid, packet];
    else hi = mid - 1;
  }
  return best;
}

/** Reads one DNS message with dns-packet; undefined when it has no readable header and question. */
function decodeWithDnsPacket(bytes: Uint8Array): Message | undefined {
  if (bytes.length < HEADER_SIZE) return undefined;
  const packet = tryDecode(bytes) ?? salvage(bytes);
  const question = packet?.questions?.[0];
  if (!packet || !question) return undefined;
  const flags = packet.flags ?? 0;
  let rcode = flags & 0xf;
  // EDNS carries the upper 8 bits of a 12-bit rcode (BADVERS, BADCOOKIE, ...) in its OPT record.
  for (const a of packet.additionals ?? []) {
    if (a.type === "OPT") rcode |= a.extendedRcode << 4;
  }
  const answers: RawAnswer[] = [];
  for (const a of packet.answers ?? []) {
    if (a.type === "OPT") continue;
    const raw = { name: a.name, ttl: a.ttl ?? 0 };
    if (a.type === "A" && a.class === "IN") answers.push({ ...raw, type: TYPE_A, data: a.data });
    if (a.type === "CNAME" && a.class === "IN") {
      answers.push({ ...raw, type: TYPE_CNAME, data: a.data });
    }
    if (a.type === "AAAA" && a.class === "IN") {
      const address = formatIpv6(a.data);
      if (address !== undefined) answers.push({ ...raw, type: TYPE_AAAA, data: address });
    }
  }
  return {
    id: packet.id ?? 0,
    response: packet.type === "response",
    truncated: packet.flag_tc,
    rcode,
    name: normalizeName(question.name),
    qtype: typeName(String(question.type)),
    answers,
  };
}

/*
 * The hand-written reader below is the fast path (dns-packet decoding every message was the
 * probe's biggest cost: docs/bench.md). It reads only what the tracker uses, and gives up,
 * handing the message to dns-packet, wherever dns-packet might read it differently (a record
 * whose data does not fill its length exactly, a message cut short): so both readers agree on
 * every message the fast path takes.
 */

const TYPE_A = 1, TYPE_CNAME = 5, TYPE_AAAA = 28, TYPE_OPT = 41, CLASS_IN = 1;
/** Gave up: let dns-packet read the message. */
const GIVE_UP = -1;
const utf8 = new TextDecoder();

/**
 * Reads the name at `at` as dns-packet does (its UTF-8 labels joined by dots, "." for the
 * root; a pointer only to bytes before the name; at most 254 bytes), into `name.text` when
 * `text`; returns the offset after it in the record, or GIVE_UP.
 */
function readName(bytes: Uint8Array, at: number, text: boolean, name: { text: string }): number {
  let labels = "";
  let offset = at, start = at, end = -1, total = 0, count = 0;
  for (;;) {
    if (offset >= bytes.length) return GIVE_UP;
    const len = bytes[offset++];
    if (len === 0) break;
    if ((len & 0xc0) === 0) {
      if (offset + len > bytes.length) return GIVE_UP;
      total += len + 1;
      if (total > 254) return GIVE_UP;
      if (text) {
        const label = asciiLabel(bytes, offset, len) ??
          utf8.decode(bytes.subarray(offset, offset + len));
        labels = count++ === 0 ? label : `${labels}.${label}`;
      }
      offset += len;
    } else if ((len & 0xc0) === 0xc0) {
      if (offset >= bytes.length) return GIVE_UP;
      const jump = ((len & 0x3f) << 8) | bytes[offset];
      if (jump >= start) return GIVE_UP; // only back to prior bytes: no loop
      if (end < 0) end = offset + 1;
      offset = start = jump;
    } else {
      return GIVE_UP;
    }
  }
  if (text) name.text = total === 0 ? "." : labels;
  return end < 0 ? offset : end;
}

/** An ASCII label (UTF-8 decodes it byte for byte) without a TextDecoder call; else undefined. */
function asciiLabel(bytes: Uint8Array, at: number, len: number): string | undefined {
  for (let i = at; i < at + len; i++) if (bytes[i] > 0x7f) return undefined;
  return String.fromCharCode.apply(null, bytes.subarray(at, at + len) as unknown as number[]);
}

/**
 * A question name in wire form (length-prefixed labels, no final 0) as records carry it: the
 * same text the message reader gives (UTF-8 labels joined by dots, ASCII lower case, no final
 * dot); undefined when it is not a name the reader would take.
 */
export function nameOfWire(wire: Uint8Array): string | undefined {
  const bytes = new Uint8Array(wire.length + 1);
  bytes.set(wire);
  const name = { text: "" };
  return readName(bytes, 0, true, name) === bytes.length ? normalizeName(name.text) : undefined;
}

/**
 * A message's question as the kernel keys it (bpf/dns.bpf.c): the name in wire form as the
 * message spells it, the DNS id and the type; undefined when the kernel could not have read it
 * (a pointer, over 254 bytes, cut short, not exactly one question).
 */
export function questionKey(
  bytes: Uint8Array,
): { wire: Uint8Array; id: number; qtype: number } | undefined {
  if (bytes.length < HEADER_SIZE || ((bytes[4] << 8) | bytes[5]) !== 1) return undefined;
  let at = HEADER_SIZE;
  for (;;) {
    if (at >= bytes.length) return undefined;
    const len = bytes[at];
    if (len === 0) break;
    if (len & 0xc0 || at + 1 + len > bytes.length) return undefined;
    at += 1 + len;
  }
  if (at - HEADER_SIZE > 254 || at + 5 > bytes.length) return undefined;
  const wire = bytes.slice(HEADER_SIZE, at);
  return { wire, id: (bytes[0] << 8) | bytes[1], qtype: (bytes[at + 1] << 8) | bytes[at + 2] };
}

/** Type names dns-packet gives, asked once per number: a one-question message of that type. */
const qtypeNames = new Map<number, string>();
/** The name of a query type as records carry it (`A`, `AAAA`, `HTTPS`, `TYPE65280`...). */
export function qtypeName(type: number): string {
  let name = qtypeNames.get(type);
  if (name === undefined) {
    const q = new Uint8Array([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, type >> 8, type & 0xff, 0, 1]);
    name = typeName(String(dnsPacket.decode(Buffer.from(q)).questions![0].type));
    qtypeNames.set(type, name);
  }
  return name;
}

/** The record data's length fits the type as dns-packet reads it (OPT: options tile it). */
function optionsFit(bytes: Uint8Array, at: number, rdlength: number): boolean {
  const end = at + rdlength;
  while (at < end) {
    if (at + 4 > end) return false;
    const code = (bytes[at] << 8) | bytes[at + 1], len = (bytes[at + 2] << 8) | bytes[at + 3];
    at += 4 + len;
    // Options dns-packet reads into fields: only lengths it reads within them.
    if (code === 8 && len < 4) return false;
    if (code === 11 && len === 1) return false;
    if (code === 14 && len % 2 === 1) return false;
  }
  return at === end;
}

const scratch = { text: "" };

/** Reads one DNS message by hand; undefined when unreadable, GIVE_UP to ask dns-packet. */
function readMessage(bytes: Uint8Array): Message | undefined | typeof GIVE_UP {
  if (bytes.length < HEADER_SIZE) return undefined;
  const flags = (bytes[2] << 8) | bytes[3];
  const questions = (bytes[4] << 8) | bytes[5];
  if (questions === 0) return undefined;
  let at = HEADER_SIZE;
  let name = "", qtype = 0;
  for (let q = 0; q < questions; q++) {
    at = readName(bytes, at, q === 0, scratch);
    if (at === GIVE_UP || at + 4 > bytes.length) return undefined; // dns-packet cannot either
    if (q === 0) [name, qtype] = [scratch.text, (bytes[at] << 8) | bytes[at + 1]];
    at += 4;
  }
  const response = (flags & 0x8000) !== 0;
  let rcode = flags & 0xf;
  const answers: RawAnswer[] = [];
  // A query's answers and records are never used, and it is read whole whenever its
  // questions are: dns-packet would drop unreadable records and keep the question.
  if (response) {
    const answerCount = (bytes[6] << 8) | bytes[7];
    const additionalsFrom = answerCount + ((bytes[8] << 8) | bytes[9]);
    const records = additionalsFrom + ((bytes[10] << 8) | bytes[11]);
    for (let r = 0; r < records; r++) {
      const isAnswer = r < answerCount;
      const owner = readName(bytes, at, isAnswer, scratch);
      if (owner === GIVE_UP || owner + 10 > bytes.length) return GIVE_UP;
      const type = (bytes[owner] << 8) | bytes[owner + 1];
      const klass = ((bytes[owner + 2] << 8) | bytes[owner + 3]) & 0x7fff;
      const rdlength = (bytes[owner + 8] << 8) | bytes[owner + 9];
      const data = owner + 10;
      if (data + rdlength > bytes.length) return GIVE_UP;
      at = data + rdlength;
      if (type === TYPE_OPT) {
        if (!optionsFit(bytes, data, rdlength)) return GIVE_UP;
        if (!isAnswer && r >= records - ((bytes[10] << 8) | bytes[11])) {
          rcode |= bytes[owner + 4] << 4;
        }
        continue;
      }
      if (type === TYPE_A || type === TYPE_AAAA || type === TYPE_CNAME) {
        // dns-packet reads these whatever their length says: only the exact one agrees.
        if (type === TYPE_A && rdlength !== 4) return GIVE_UP;
        if (type === TYPE_AAAA && rdlength !== 16) return GIVE_UP;
        if (!isAnswer || klass !== CLASS_IN) {
          if (type === TYPE_CNAME && readName(bytes, data, false, scratch) !== at) return GIVE_UP;
          continue;
        }
        const ownerName = scratch.text;
        const ttl = ((bytes[owner + 4] << 24) | (bytes[owner + 5] << 16) | (bytes[owner + 6] << 8) |
          bytes[owner + 7]) >>> 0;
        let value: string;
        if (type === TYPE_A) {
          value = `${bytes[data]}.${bytes[data + 1]}.${bytes[data + 2]}.${bytes[data + 3]}`;
        } else if (type === TYPE_AAAA) {
          value = formatAddress(bytes, false, data);
        } else {
          if (readName(bytes, data, true, scratch) !== at) return GIVE_UP;
          value = scratch.text;
        }
        answers.push({ type, name: ownerName, data: value, ttl });
        continue;
      }
      // Other types: framed by their length (dns-packet reads some of them its own way; a
      // message where the two would differ is malformed either way).
    }
  }
  return {
    id: (bytes[0] << 8) | bytes[1],
    response,
    truncated: (flags & 0x0200) !== 0,
    rcode,
    name: normalizeName(name),
    qtype: qtypeName(qtype),
    answers,
  };
}

/**
 * Both readers, for the test that holds them to agreeing wherever the hand-written one reads a
 * message; the tracker uses only `decodeMessage`.
 */
export const messageReaders = { byHand: readMessage, withDnsPacket: decodeWithDnsPacket, GIVE_UP };

/** Reads one DNS message; undefined when it has no readable header and question. */
function decodeMessage(bytes: Uint8Array): Message | undefined {
  const m = readMessage(bytes);
  return m === GIVE_UP ? decodeWithDnsPacket(bytes) : m;
}

/** Text form of an AAAA address as the netflow probe writes addresses (RFC 5952). */
function formatIpv6(text: string): string | undefined {
  try {
    return ipaddr.IPv6.parse(text).toString();
  } catch {
    return undefined;
  }
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
    const key = `${seg.localIp}|${seg.localPort}|${seg.remoteIp}|${seg.remotePort}|${seg.outbound}`;
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
      `${seg.side}|${seg.transport}|${seg.localIp}|${seg.localPort}|${seg.remoteIp}|${seg.remotePort}|${m.id}|${m.name}|${m.qtype}`;
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
  if (known.cmdId) r.cmdId = known.cmdId;
  return r;
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

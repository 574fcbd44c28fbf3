/**
 * The DNS message reader built on dns-packet: slower than the hand-written one
 * (dns_fast_reader.ts), which hands it every message it declines, so it reads all the odd
 * ones: records whose data does not fill their length, messages cut short (salvaged as far as
 * they decode).
 *
 * @module
 */
import { Buffer } from "node:buffer";
// @ts-types="@types/dns-packet"
import dnsPacket from "dns-packet";
import { parseIp } from "../ip.ts";
import {
  HEADER_SIZE,
  type Message,
  normalizeName,
  type RawAnswer,
  TYPE_A,
  TYPE_AAAA,
  TYPE_CNAME,
  typeName,
} from "./dns_message.ts";

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
export function decodeWithDnsPacket(bytes: Uint8Array): Message | undefined {
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
      // dns-packet writes AAAA data its own way; records carry the form the probes write.
      const address = parseIp(a.data)?.toString();
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

/**
 * The hand-written DNS message reader: the dns probe's fast path (dns-packet decoding every
 * message was the probe's biggest cost: docs/bench.md). It reads only what the tracker uses,
 * and gives up ({@linkcode GIVE_UP}), handing the message to dns-packet (dns_packet_reader.ts),
 * wherever dns-packet might read it differently (a record whose data does not fill its length
 * exactly, a message cut short): so both readers agree on every message the fast path takes.
 * Also the question key the kernel reads (bpf/dns.bpf.c) and its text.
 *
 * @module
 */
// @ts-types="@types/dns-packet"
import dnsPacket from "dns-packet";
import { Buffer } from "node:buffer";
import { formatIpv6 } from "../ip.ts";
import {
  CLASS_IN,
  HEADER_SIZE,
  type Message,
  normalizeName,
  type RawAnswer,
  TYPE_A,
  TYPE_AAAA,
  TYPE_CNAME,
  TYPE_OPT,
  typeName,
} from "./dns_message.ts";

/** Gave up: let dns-packet read the message. */
export const GIVE_UP = -1;
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
export function readMessage(bytes: Uint8Array): Message | undefined | typeof GIVE_UP {
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
          value = formatIpv6(bytes, data);
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

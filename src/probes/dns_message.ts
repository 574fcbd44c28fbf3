/**
 * What the dns probe reads of one DNS message ({@linkcode Message}), and the names records give
 * its parts: question names, query types, response codes. Both readers give this shape: the
 * hand-written fast one (dns_fast_reader.ts) and dns-packet (dns_packet_reader.ts).
 *
 * @module
 */

export const HEADER_SIZE = 12;
export const TYPE_A = 1, TYPE_CNAME = 5, TYPE_AAAA = 28, TYPE_OPT = 41, CLASS_IN = 1;
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
export function normalizeName(name: string): string {
  const lower = name.replace(/[A-Z]+/g, (s) => s.toLowerCase());
  return lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

/** dns-packet's name of a type, with `UNKNOWN_<n>` as `SVCB`, `HTTPS` or `TYPE<n>`. */
export function typeName(type: string): string {
  if (!type.startsWith("UNKNOWN_")) return type;
  const n = Number(type.slice("UNKNOWN_".length));
  return TYPE_NAMES[n] ?? `TYPE${n}`;
}

/** What the tracker needs of one message. */
export interface Message {
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
export interface RawAnswer {
  type: number;
  name: string;
  data: string;
  ttl: number;
}

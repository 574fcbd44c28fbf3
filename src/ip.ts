/**
 * IP addresses, for every part of the collector: reading the text that records and pipelines
 * carry, matching networks, and writing addresses the one way records carry them. Built on
 * ipaddr.js, which only this module imports, so that probes, transforms and host facts read
 * and write an address alike.
 *
 * What it reads, stricter than ipaddr.js alone where that matters:
 * - IPv4 only as a dotted quad of plain decimals, each 0 to 255 with no leading zero
 *   (`10.0.0.1`; not `10.1`, `0x0a000001` or `010.0.0.1`, which ipaddr.js reads as inet_aton
 *   does, inet_ntop never writes, and "010" is octal to some tools and decimal to others).
 * - IPv6 in any RFC 4291 text form, an embedded IPv4 tail (`::ffff:1.2.3.4`) held to the same
 *   dotted quad. `::1.2.3.4` is the deprecated IPv4-compatible address `::102:304`, as RFC 4291
 *   says, not the IPv4-mapped `::ffff:1.2.3.4` ipaddr.js would make of it.
 * - A zone (`fe80::1%eth0`) only when asked for, and then dropped: it names a local interface,
 *   not part of the address. Any interface name is taken (Linux names may hold `.`, `-`, `_`,
 *   `@`; ipaddr.js takes letters and digits only).
 *
 * What it writes: IPv4 as a dotted quad, IPv6 in RFC 5952 form (`2001:db8::1`), IPv4-mapped
 * IPv6 included (`::ffff:a00:1`); a record's IPv4 address is never written mapped.
 *
 * @module
 */
import ipaddr from "ipaddr.js";

/** An IPv4 address (ipaddr.js's). */
export type IPv4 = ipaddr.IPv4;
/** An IPv6 address (ipaddr.js's); `zoneId` is always unset here. */
export type IPv6 = ipaddr.IPv6;
/** An IPv4 or IPv6 address; `kind()` tells which. */
export type IpAddress = IPv4 | IPv6;

/** A network: its first address and prefix length, host bits clear. */
export interface Network<A extends IpAddress = IpAddress> {
  address: A;
  bits: number;
}

const OCTET = String.raw`(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)`;
/** A dotted quad in the one form inet_ntop writes; the groups are the four octets. */
const DOTTED_QUAD = new RegExp(String.raw`^${OCTET}\.${OCTET}\.${OCTET}\.${OCTET}$`);
/** The same without groups: a test that records no captures is faster. */
const DOTTED_QUAD_TEST = new RegExp(DOTTED_QUAD.source.replaceAll("(", "(?:"));

/**
 * Whether `text` is an IPv4 address as this module reads them: cheaper than
 * {@linkcode parseIp} when the text is all that is needed (nothing is allocated).
 */
export function isIpv4Text(text: string): boolean {
  return DOTTED_QUAD_TEST.test(text);
}

/**
 * Reads an IPv4 or IPv6 address (see the module doc for the forms), or undefined. With
 * `zone: true` an IPv6 zone (`fe80::1%eth0`) is dropped; without it, text with a zone is not an
 * address. Never throws.
 *
 * @example
 * ```ts
 * parseIp("10.1.2.3")?.kind(); // "ipv4"
 * parseIp("fe80::1%eth0", { zone: true })?.toString(); // "fe80::1"
 * parseIp("010.1.2.3"); // undefined
 * ```
 */
export function parseIp(text: string, options?: { zone?: boolean }): IpAddress | undefined {
  if (!text.includes(":")) {
    const m = DOTTED_QUAD.exec(text);
    return m ? new ipaddr.IPv4([+m[1], +m[2], +m[3], +m[4]]) : undefined;
  }
  const pct = text.indexOf("%");
  if (pct >= 0) {
    if (!options?.zone) return undefined;
    text = text.slice(0, pct);
  }
  // An embedded IPv4 tail is held to the dotted quad (ipaddr.js reads it more loosely) and
  // handed over as two hex groups: ipaddr.js reads `::a.b.c.d` as IPv4-mapped, and reads the
  // hex form faster.
  if (text.includes(".")) {
    const last = text.lastIndexOf(":");
    const tail = DOTTED_QUAD.exec(text.slice(last + 1));
    if (!tail) return undefined;
    const high = ((+tail[1] << 8) | +tail[2]).toString(16);
    const low = ((+tail[3] << 8) | +tail[4]).toString(16);
    text = `${text.slice(0, last + 1)}${high}:${low}`;
  }
  try {
    return ipaddr.IPv6.parse(text);
  } catch {
    // ipaddr.js throws on text it cannot read; such text names no address.
    return undefined;
  }
}

/**
 * `answer` for address text, each answer remembered, at most `max` of them (then it starts
 * afresh rather than grow): records repeat few addresses, and a parse through ipaddr.js costs
 * several times a lookup. `answer` must be pure and never return undefined.
 *
 * @example
 * ```ts
 * const isLoopback = rememberPerAddress((text) => parseIp(text)?.range() === "loopback");
 * ```
 */
export function rememberPerAddress<T>(
  answer: (text: string) => T,
  max = 4096,
): (text: string) => T {
  const answers = new Map<string, T>();
  return (text) => {
    let a = answers.get(text);
    if (a === undefined) {
      a = answer(text);
      if (answers.size >= max) answers.clear();
      answers.set(text, a);
    }
    return a;
  };
}

/**
 * Whether an IPv6 address is IPv4-mapped (`::ffff:a.b.c.d`). Reads the parts: ipaddr.js's
 * `isIPv4MappedAddress()` walks its whole table of special ranges, which per record costs more
 * than the parse.
 */
export function isIpv4Mapped(address: IPv6): boolean {
  const p = address.parts;
  return p[5] === 0xffff && p[4] === 0 && p[3] === 0 && p[2] === 0 && p[1] === 0 && p[0] === 0;
}

/** The IPv4 address an IPv4-mapped IPv6 address carries; any other address as it is. */
export function unmapIpv4(address: IpAddress): IpAddress {
  if (address.kind() === "ipv4" || !isIpv4Mapped(address as IPv6)) return address;
  const p = (address as IPv6).parts;
  return new ipaddr.IPv4([p[6] >> 8, p[6] & 0xff, p[7] >> 8, p[7] & 0xff]);
}

const PREFIX_LENGTH = /^\d{1,3}$/;

/**
 * Reads a network: `10.0.0.0/8`, `fd00::/8`, or a bare address (all its bits). Returns what is
 * wrong, as a phrase about `text`, when it is not one: not an address, a prefix length out of
 * range, or host bits set (with the network meant).
 *
 * @example
 * ```ts
 * parseNetwork("10.0.0.0/8"); // { address: 10.0.0.0, bits: 8 }
 * parseNetwork("10.1.2.3/8"); // `"10.1.2.3/8" has host bits set (did you mean "10.0.0.0/8"?)`
 * ```
 */
export function parseNetwork(text: string): Network | string {
  const slash = text.indexOf("/");
  const addr = slash < 0 ? text : text.slice(0, slash);
  const address = parseIp(addr);
  if (address === undefined) {
    return `"${text}" is not a network: "${addr}" is not an IPv4 or IPv6 address`;
  }
  const max = address.kind() === "ipv4" ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const b = text.slice(slash + 1);
    if (!PREFIX_LENGTH.test(b) || Number(b) > max) {
      return `"${text}" is not a network: the prefix length must be 0 to ${max}`;
    }
    bits = Number(b);
  }
  const base = firstAddress(address, bits);
  if (base.toNormalizedString() !== address.toNormalizedString()) {
    return `"${text}" has host bits set (did you mean "${base}/${bits}"?)`;
  }
  return { address, bits };
}

/** The first address of the network of `bits` that `address` is in. */
function firstAddress(address: IpAddress, bits: number): IpAddress {
  if (address.kind() === "ipv4") {
    const mask = ipaddr.IPv4.subnetMaskFromPrefixLength(bits).octets;
    return new ipaddr.IPv4((address as IPv4).octets.map((o, i) => o & mask[i]));
  }
  const mask = ipaddr.IPv6.subnetMaskFromPrefixLength(bits).parts;
  return new ipaddr.IPv6((address as IPv6).parts.map((p, i) => p & mask[i]));
}

/** Whether `address` is in `network`; an IPv4 address is never in an IPv6 network, nor back. */
export function inNetwork(address: IpAddress, network: Network): boolean {
  return address.kind() === network.address.kind() &&
    address.match(network.address, network.bits);
}

/** Whether `address` is in any of `networks` (see {@linkcode inNetwork}). */
export function inAnyNetwork(address: IpAddress, networks: readonly Network[]): boolean {
  for (const n of networks) if (inNetwork(address, n)) return true;
  return false;
}

/**
 * The RFC 5952 text of the 16-byte IPv6 address at `at` in `bytes` (`2001:db8::1`). Indexed in
 * place: a subarray per address costs more than the formatting on hot paths.
 *
 * @example
 * ```ts
 * formatIpv6(new Uint8Array([0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1])); // "2001:db8::1"
 * ```
 */
export function formatIpv6(bytes: Uint8Array, at = 0): string {
  const parts = new Array<number>(8);
  for (let i = 0; i < 8; i++) parts[i] = (bytes[at + 2 * i] << 8) | bytes[at + 2 * i + 1];
  return new ipaddr.IPv6(parts).toRFC5952String();
}

/**
 * An address as the kernel keys addresses: 16 bytes, IPv4 as IPv4-mapped IPv6
 * (`10.0.0.1` is `::ffff:10.0.0.1`).
 */
export function ipv6Bytes(address: IpAddress): Uint8Array<ArrayBuffer> {
  const v6 = address.kind() === "ipv4" ? (address as IPv4).toIPv4MappedAddress() : address;
  return new Uint8Array(v6.toByteArray());
}

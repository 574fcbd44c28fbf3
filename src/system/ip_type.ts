/**
 * What kind of address an IP is, for the `src_ip_type` / `dst_ip_type` and `family` tags of
 * `netflow` and `dnsflow` records.
 *
 * Classes, checked in this order:
 * - `loopback`: 127.0.0.0/8 and ::1.
 * - `private`: RFC 1918 (10/8, 172.16/12, 192.168/16) and IPv6 unique local fc00::/7.
 * - `multicast`: 224.0.0.0/4 and ff00::/8.
 * - `other`: everything else: public unicast, and also link-local (169.254/16, fe80::/10),
 *   unspecified (0.0.0.0, ::), broadcast, carrier-grade NAT (100.64/10) and anything that does
 *   not parse. Link-local is `other` because DataKit, whose tag values these are, puts it there:
 *   a dashboard built for DataKit data then reads ours the same way.
 *
 * An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) is the IPv4 address it carries, for both the
 * class and the family: a dual-stack socket reports an IPv4 peer that way, but on the wire the
 * flow is IPv4, and that is what DataKit's (and Datadog's) tracers report too.
 *
 * Only the forms sockets print are read: IPv4 as a dotted quad of plain decimals (`10.0.0.1`,
 * not `10.1`, `0x0a000001` or `010.0.0.1`, which ipaddr.js would accept and inet_ntop never
 * writes), IPv6 in any RFC 4291 text form, with or without a `%zone`.
 *
 * Called for every record with few distinct addresses: `ipType` remembers its answers
 * (a bounded table), since parsing an address costs more than the rest of a dnsflow record.
 */
import ipaddr from "ipaddr.js";

/** The value of a `*_ip_type` tag. */
export type IpType = "loopback" | "private" | "multicast" | "other";

/** The value of a `family` tag. */
export type IpFamily = "IPv4" | "IPv6";

type IPv4 = ipaddr.IPv4;
type IPv6 = ipaddr.IPv6;

const v4 = (cidr: string) => ipaddr.IPv4.parseCIDR(cidr);
const v6 = (cidr: string) => ipaddr.IPv6.parseCIDR(cidr);

// Parsed once at load: a fixed, small list, so matching costs a few integer compares.
const V4_LOOPBACK = [v4("127.0.0.0/8")];
const V4_PRIVATE = [v4("10.0.0.0/8"), v4("172.16.0.0/12"), v4("192.168.0.0/16")];
const V4_MULTICAST = [v4("224.0.0.0/4")];
const V6_LOOPBACK = [v6("::1/128")];
const V6_PRIVATE = [v6("fc00::/7")];
const V6_MULTICAST = [v6("ff00::/8")];

// A dotted quad of plain decimals, each at most three digits with no leading zero; ipaddr.js
// then checks each is at most 255.
const DOTTED_QUAD = /^(?:0|[1-9]\d{0,2})(?:\.(?:0|[1-9]\d{0,2})){3}$/;

/** Parses `ip`, turning an IPv4-mapped IPv6 address into its IPv4 one; undefined if invalid. */
function parse(ip: string): IPv4 | IPv6 | undefined {
  try {
    if (ip.includes(":")) {
      const addr = ipaddr.IPv6.parse(ip);
      return addr.isIPv4MappedAddress() ? addr.toIPv4Address() : addr;
    }
    return DOTTED_QUAD.test(ip) ? ipaddr.IPv4.parse(ip) : undefined;
  } catch {
    // ipaddr.js throws on text it cannot read; a tag value is not worth an exception.
    return undefined;
  }
}

function inAny<A extends IPv4 | IPv6>(addr: A, ranges: [A, number][]): boolean {
  for (const range of ranges) if (addr.match(range)) return true;
  return false;
}

/**
 * The class of an IP address: `loopback`, `private`, `multicast`, or `other` (public,
 * link-local, unspecified, unparsable).
 *
 * @example
 * ```ts
 * ipType("10.1.2.3"); // "private"
 * ipType("::ffff:127.0.0.1"); // "loopback"
 * ipType("fe80::1"); // "other"
 * ```
 */
export function ipType(ip: string): IpType {
  let type = ipTypes.get(ip);
  if (type === undefined) {
    type = classify(ip);
    // Bounded: a host talking to very many addresses starts afresh rather than grow.
    if (ipTypes.size >= IP_TYPES_MAX) ipTypes.clear();
    ipTypes.set(ip, type);
  }
  return type;
}

/** Addresses whose class `ipType` remembers at most. */
const IP_TYPES_MAX = 4096;
const ipTypes = new Map<string, IpType>();

function classify(ip: string): IpType {
  const addr = parse(ip);
  if (addr === undefined) return "other";
  if (addr.kind() === "ipv4") {
    const a = addr as IPv4;
    if (inAny(a, V4_LOOPBACK)) return "loopback";
    if (inAny(a, V4_PRIVATE)) return "private";
    if (inAny(a, V4_MULTICAST)) return "multicast";
    return "other";
  }
  const a = addr as IPv6;
  if (inAny(a, V6_LOOPBACK)) return "loopback";
  if (inAny(a, V6_PRIVATE)) return "private";
  if (inAny(a, V6_MULTICAST)) return "multicast";
  return "other";
}

/**
 * The family of an IP address (`IPv4`-mapped IPv6 counts as `IPv4`), or undefined when the text
 * is not an address: a `family` tag that guessed would be wrong more quietly than a missing one.
 *
 * @example
 * ```ts
 * ipFamily("2001:db8::1"); // "IPv6"
 * ipFamily("::ffff:192.0.2.1"); // "IPv4"
 * ipFamily("not an ip"); // undefined
 * ```
 */
export function ipFamily(ip: string): IpFamily | undefined {
  const addr = parse(ip);
  if (addr === undefined) return undefined;
  return addr.kind() === "ipv4" ? "IPv4" : "IPv6";
}

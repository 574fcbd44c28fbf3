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
 * Addresses are read as src/ip.ts reads them: only the forms sockets print (IPv4 as a dotted
 * quad of plain decimals, not `10.1`, `0x0a000001` or `010.0.0.1`), IPv6 in any RFC 4291 text
 * form, with or without a `%zone`.
 *
 * Called for every record with few distinct addresses: `ipType` remembers its answers
 * (a bounded table), since parsing an address costs more than the rest of a dnsflow record.
 */
import {
  inAnyNetwork,
  type IpAddress,
  type Network,
  parseIp,
  parseNetwork,
  rememberPerAddress,
  unmapIpv4,
} from "../ip.ts";

/** The value of a `*_ip_type` tag. */
export type IpType = "loopback" | "private" | "multicast" | "other";

/** The value of a `family` tag. */
export type IpFamily = "IPv4" | "IPv6";

/** A network of the fixed tables below (their text is known good). */
const net = (cidr: string) => parseNetwork(cidr) as Network;

// Parsed once at load: a fixed, small list, so matching costs a few integer compares.
const LOOPBACK = [net("127.0.0.0/8"), net("::1/128")];
const PRIVATE = [net("10.0.0.0/8"), net("172.16.0.0/12"), net("192.168.0.0/16"), net("fc00::/7")];
const MULTICAST = [net("224.0.0.0/4"), net("ff00::/8")];

/** Parses `ip`, turning an IPv4-mapped IPv6 address into its IPv4 one; undefined if invalid. */
function parse(ip: string): IpAddress | undefined {
  const address = parseIp(ip, { zone: true });
  return address && unmapIpv4(address);
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
  return rememberedType(ip);
}

const rememberedType = rememberPerAddress(classify);

function classify(ip: string): IpType {
  const addr = parse(ip);
  if (addr === undefined) return "other";
  if (inAnyNetwork(addr, LOOPBACK)) return "loopback";
  if (inAnyNetwork(addr, PRIVATE)) return "private";
  if (inAnyNetwork(addr, MULTICAST)) return "multicast";
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

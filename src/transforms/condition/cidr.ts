/**
 * The `cidr` operator: the value must be an IP address in one of the listed networks. An
 * IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) also matches IPv4 networks, and a zone
 * (`fe80::1%eth0`) is ignored. Networks are read once, at load; a record costs one parse of its
 * address (src/ip.ts, which says which forms are read), or a lookup when the address was seen
 * lately.
 *
 * @module
 */
import {
  inAnyNetwork,
  type IPv6,
  isIpv4Mapped,
  type Network,
  parseIp,
  parseNetwork,
  rememberPerAddress,
  unmapIpv4,
} from "../../ip.ts";
import { type At, describeValue } from "../../pipeline/schema.ts";
import type { Compiled, Matcher } from "./compiled.ts";

/** A record's address may carry a zone; a network in the YAML may not. */
const ZONE_IGNORED = { zone: true };

/** Compiles a `cidr:` value: one network (`10.0.0.0/8`, a bare address) or a list of them. */
export function compileCidr(value: unknown, at: At): Compiled | undefined {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) {
    at.report(`expected a network such as "10.0.0.0/8" or a list of them, got an empty list`);
    return undefined;
  }
  const v4: Network[] = [];
  const v6: Network[] = [];
  const shown: string[] = [];
  let ok = true;
  list.forEach((item, i) => {
    const itemAt = Array.isArray(value) ? at.child(i) : at;
    const net = typeof item === "string" ? parseNetwork(item) : undefined;
    if (typeof item !== "string" || typeof net === "string" || net === undefined) {
      itemAt.report(
        typeof net === "string"
          ? net
          : `expected a network such as "10.0.0.0/8" or "fd00::/8", got ${describeValue(item)}`,
      );
      ok = false;
      return;
    }
    (net.address.kind() === "ipv4" ? v4 : v6).push(net);
    shown.push(at.source.template(itemAt.path) ?? item);
  });
  if (!ok) return undefined;
  const inNetworks = (text: string) => {
    const ip = parseIp(text, ZONE_IGNORED);
    if (ip === undefined) return false;
    if (ip.kind() === "ipv4") return inAnyNetwork(ip, v4);
    if (inAnyNetwork(ip, v6)) return true;
    // An IPv4-mapped address (::ffff:a.b.c.d) is the IPv4 address.
    return v4.length > 0 && isIpv4Mapped(ip as IPv6) && inAnyNetwork(unmapIpv4(ip), v4);
  };
  const remembered = rememberPerAddress(inNetworks);
  const match: Matcher = (v) => typeof v === "string" && remembered(v);
  return { match, text: `cidr ${shown.join(", ")}` };
}

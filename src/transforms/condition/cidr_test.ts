import assert from "node:assert/strict";
import { bash, cond, problems } from "./_testing.ts";

Deno.test("parseCondition() cidr matches IPv4 and IPv6 networks", () => {
  const c = cond({ field: "ip", cidr: ["10.0.0.0/8", "192.168.1.7", "fd00::/8"] });
  assert.equal(c.test(bash({ ip: "10.20.30.40" })), true);
  assert.equal(c.test(bash({ ip: "11.0.0.1" })), false);
  assert.equal(c.test(bash({ ip: "192.168.1.7" })), true);
  assert.equal(c.test(bash({ ip: "192.168.1.8" })), false);
  assert.equal(c.test(bash({ ip: "fd12:3456::1" })), true);
  assert.equal(c.test(bash({ ip: "fe80::1" })), false);
  assert.equal(c.test(bash({ ip: "::ffff:10.1.2.3" })), true, "IPv4-mapped");
  assert.equal(c.test(bash({ ip: "not an ip" })), false);
  assert.equal(c.test(bash({ ip: "10.0.0" })), false);
  assert.equal(c.test(bash({ ip: 10n })), false);
  const one = cond({ tag: "peer", cidr: "fe80::/10" });
  assert.equal(one.test(bash({}, { peer: "fe80::1%eth0" })), true, "a zone is ignored");
  assert.equal(one.test(bash({}, { peer: "2001:db8::1" })), false);
  assert.equal(cond({ field: "ip", cidr: "0.0.0.0/0" }).test(bash({ ip: "8.8.8.8" })), true);
  assert.equal(cond({ field: "ip", cidr: "::/0" }).test(bash({ ip: "::1" })), true);
  assert.equal(cond({ field: "ip", cidr: "::/0" }).test(bash({ ip: "8.8.8.8" })), false);
});

Deno.test("parseCondition() reports a bad CIDR at its own position", () => {
  assert.deepEqual(problems({ field: "ip", cidr: ["10.0.0.0/8", "10.0.0.0/33", "300.1.1.1"] }), [
    `when.cidr[1]: "10.0.0.0/33" is not a network: the prefix length must be 0 to 32`,
    `when.cidr[2]: "300.1.1.1" is not a network: "300.1.1.1" is not an IPv4 or IPv6 address`,
  ]);
  assert.deepEqual(problems({ field: "ip", cidr: "10.1.2.3/8" }), [
    `when.cidr: "10.1.2.3/8" has host bits set (did you mean "10.0.0.0/8"?)`,
  ]);
  assert.deepEqual(problems({ field: "ip", cidr: "fd00::1/8" }), [
    `when.cidr: "fd00::1/8" has host bits set (did you mean "fd00::/8"?)`,
  ]);
  assert.deepEqual(problems({ field: "ip", cidr: 10 }), [
    `when.cidr: expected a network such as "10.0.0.0/8" or "fd00::/8", got 10`,
  ]);
});

// The cidr operator reads addresses through src/ip.ts (ipaddr.js); where ipaddr.js alone would
// answer otherwise, the answers are the hand-written parser's it replaced.
Deno.test("parseCondition() cidr keeps its answers where ipaddr.js alone would differ", () => {
  const c = cond({ field: "ip", cidr: ["1.0.0.0/8", "10.0.0.0/8"] });
  // IPv4-compatible, not IPv4-mapped: not in 1.0.0.0/8.
  assert.equal(c.test(bash({ ip: "::1.2.3.4" })), false);
  assert.equal(c.test(bash({ ip: "::ffff:1.2.3.4" })), true);
  // Leading zeros and inet_aton's short forms are no address.
  for (const ip of ["010.0.0.1", "10.1", "0x0a000001", "::ffff:010.0.0.1"]) {
    assert.equal(c.test(bash({ ip })), false, ip);
  }
  // Any interface name as a zone, and an empty one.
  const link = cond({ tag: "peer", cidr: "fe80::/10" });
  for (const peer of ["fe80::1%eth0.100", "fe80::1%br-1a2b_c", "fe80::1%"]) {
    assert.equal(link.test(bash({}, { peer })), true, peer);
  }
  assert.deepEqual(problems({ field: "ip", cidr: ["fe80::%eth0/10", "010.0.0.0/8"] }), [
    `when.cidr[0]: "fe80::%eth0/10" is not a network: "fe80::%eth0" is not an IPv4 or IPv6 address`,
    `when.cidr[1]: "010.0.0.0/8" is not a network: "010.0.0.0" is not an IPv4 or IPv6 address`,
  ]);
});

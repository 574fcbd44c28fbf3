import assert from "node:assert/strict";
import { ipFamily, ipType } from "./ip_type.ts";

function classifies(cases: { [ip: string]: string }) {
  for (const [ip, want] of Object.entries(cases)) assert.equal(ipType(ip), want, ip);
}

Deno.test("ipType() finds loopback in 127.0.0.0/8 and ::1 only", () => {
  classifies({
    "127.0.0.1": "loopback",
    "127.0.0.0": "loopback",
    "127.255.255.255": "loopback",
    "126.255.255.255": "other",
    "128.0.0.0": "other",
    "::1": "loopback",
    "0:0:0:0:0:0:0:1": "loopback",
    "::2": "other",
  });
});

Deno.test("ipType() finds private in RFC 1918 and IPv6 unique local fc00::/7", () => {
  classifies({
    "10.0.0.0": "private",
    "10.255.255.255": "private",
    "9.255.255.255": "other",
    "11.0.0.0": "other",
    "172.16.0.0": "private",
    "172.31.255.255": "private",
    "172.15.255.255": "other",
    "172.32.0.0": "other",
    "192.168.0.1": "private",
    "192.168.255.255": "private",
    "192.167.255.255": "other",
    "192.169.0.0": "other",
    "fc00::1": "private",
    "fd12:3456:789a::1": "private",
    "FD00::1": "private",
    "fbff:ffff::1": "other",
    "fe00::1": "other",
  });
});

Deno.test("ipType() finds multicast in 224.0.0.0/4 and ff00::/8", () => {
  classifies({
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "223.255.255.255": "other",
    "240.0.0.0": "other",
    "ff02::1": "multicast",
    "ff05::1:3": "multicast",
    "feff::1": "other",
  });
});

Deno.test("ipType() calls public, link-local, unspecified and the like other", () => {
  classifies({
    "8.8.8.8": "other",
    "2001:db8::1": "other",
    "2606:4700:4700::1111": "other",
    "169.254.169.254": "other", // link-local, as DataKit has it
    "fe80::1": "other",
    "fe80::1%eth0": "other",
    "0.0.0.0": "other",
    "::": "other",
    "255.255.255.255": "other",
    "100.64.0.1": "other", // carrier-grade NAT is not RFC 1918
  });
});

Deno.test("ipType() classifies an IPv4-mapped IPv6 address as the IPv4 address it carries", () => {
  classifies({
    "::ffff:127.0.0.1": "loopback",
    "::ffff:10.1.2.3": "private",
    "::ffff:0a01:0203": "private", // the same address written in hex
    "::FFFF:192.168.1.1": "private",
    "::ffff:224.0.0.251": "multicast",
    "::ffff:8.8.8.8": "other",
    "::ffff:169.254.1.1": "other",
  });
});

Deno.test("ipType() calls anything that is not an address other, without throwing", () => {
  classifies({
    "": "other",
    "garbage": "other",
    "10.0.0": "other",
    "10.0.0.1.2": "other",
    "256.1.1.1": "other",
    " 10.0.0.1": "other",
    "10.0.0.1 ": "other",
    "10.0.0.1:8080": "other",
    "[::1]": "other",
    "::1/128": "other",
    "10.0.0.0/8": "other",
    "1:2:3:4:5:6:7:8:9": "other",
    "::ffff:300.1.1.1": "other",
    "gggg::1": "other",
  });
});

Deno.test("ipType() reads only dotted quads of plain decimals as IPv4, as sockets print them", () => {
  // ipaddr.js alone would read these as 10.0.0.1 or 127.0.0.1; inet_ntop never writes them.
  classifies({
    "10.1": "other",
    "167772161": "other",
    "0x0a000001": "other",
    "0x7f.0.0.1": "other",
    "010.0.0.1": "other",
  });
});

Deno.test("ipFamily() tells IPv4 from IPv6, and mapped addresses count as IPv4", () => {
  assert.equal(ipFamily("10.1.2.3"), "IPv4");
  assert.equal(ipFamily("0.0.0.0"), "IPv4");
  assert.equal(ipFamily("::ffff:10.1.2.3"), "IPv4");
  assert.equal(ipFamily("::ffff:0a01:0203"), "IPv4");
  assert.equal(ipFamily("::1"), "IPv6");
  assert.equal(ipFamily("::"), "IPv6");
  assert.equal(ipFamily("2001:db8::1"), "IPv6");
  assert.equal(ipFamily("fe80::1%eth0"), "IPv6");
});

Deno.test("ipFamily() gives undefined for text that is not an address", () => {
  for (const ip of ["", "garbage", "10.1", "256.0.0.1", "[::1]", "::1/128", "10.0.0.1:80"]) {
    assert.equal(ipFamily(ip), undefined, ip);
  }
});

Deno.test("ipType() classifies an address the same after its remembered answers were dropped", () => {
  assert.equal(ipType("10.1.2.3"), "private");
  for (let i = 0; i < 5000; i++) ipType(`203.0.${i >> 8}.${i & 255}`); // beyond the table's bound
  assert.equal(ipType("10.1.2.3"), "private");
  assert.equal(ipType("203.0.19.135"), "other");
});

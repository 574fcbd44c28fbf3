import assert from "node:assert/strict";
import { DomainCache, normalizeAddress } from "./domain_cache.ts";

const T = 1_764_000_000_000_000_000n;
const S = 1_000_000_000n; // one second in ns
const MS = 1_000_000n;

const cache = (maxEntries = 100, minTtlMs = 10_000, maxTtlMs = 3_600_000) =>
  new DomainCache({ maxEntries, minTtlMs, maxTtlMs });

Deno.test("lifetimeMs() clamps the answer's TTL to [min, max]", () => {
  const c = cache(10, 10_000, 3_600_000);
  assert.equal(c.lifetimeMs(0n), 10_000, "TTL 0 (dnsmasq's local records) lives min_ttl");
  assert.equal(c.lifetimeMs(5n), 10_000);
  assert.equal(c.lifetimeMs(300n), 300_000);
  assert.equal(c.lifetimeMs(86_400n), 3_600_000);
  assert.equal(c.lifetimeMs(4_294_967_295n), 3_600_000, "the largest TTL DNS can carry");
});

Deno.test("lookup() returns a name until just before its expiry and not at it", () => {
  const c = cache();
  c.add("93.184.216.34", "example.com", 300n, T);
  assert.equal(c.lookup("93.184.216.34", T + 300n * S - 1n), "example.com");
  assert.equal(c.lookup("93.184.216.34", T + 300n * S), undefined, "expired exactly at t+TTL");
  assert.equal(c.expirations, 1);
  assert.equal(c.size, 0, "the expired entry met by the lookup is removed");
  assert.equal(c.lookup("93.184.216.34", T + 300n * S), undefined);
  assert.equal(c.expirations, 1, "counted once");
  assert.deepEqual([c.hits, c.misses], [1, 2]);
});

Deno.test("a TTL-0 answer lives min_ttl and a long one max_ttl", () => {
  const c = cache(10, 10_000, 60_000);
  c.add("10.0.0.1", "router.lan", 0n, T);
  c.add("10.0.0.2", "long.example", 86_400n, T);
  assert.equal(c.lookup("10.0.0.1", T + 10_000n * MS - 1n), "router.lan");
  assert.equal(c.lookup("10.0.0.1", T + 10_000n * MS), undefined);
  assert.equal(c.lookup("10.0.0.2", T + 60n * S - 1n), "long.example");
  assert.equal(c.lookup("10.0.0.2", T + 60n * S), undefined);
});

Deno.test("add() evicts the least recently used, and a lookup counts as a use", () => {
  const c = cache(3);
  c.add("10.0.0.1", "a", 300n, T);
  c.add("10.0.0.2", "b", 300n, T);
  c.add("10.0.0.3", "c", 300n, T);
  assert.equal(c.lookup("10.0.0.1", T), "a"); // now b is the least recently used
  c.add("10.0.0.4", "d", 300n, T);
  assert.equal(c.evictions, 1);
  assert.equal(c.size, 3);
  assert.equal(c.lookup("10.0.0.2", T), undefined, "b went first");
  c.add("10.0.0.5", "e", 300n, T); // c is now the least recently used
  assert.equal(c.evictions, 2);
  assert.equal(c.lookup("10.0.0.3", T), undefined, "then c");
  assert.deepEqual(
    ["10.0.0.1", "10.0.0.4", "10.0.0.5"].map((ip) => c.lookup(ip, T)),
    ["a", "d", "e"],
  );
  assert.equal(c.expirations, 0);
});

Deno.test("add() pushing out an already expired entry counts an expiration, not an eviction", () => {
  const c = cache(2);
  c.add("10.0.0.1", "old", 0n, T); // lives 10 s
  c.add("10.0.0.2", "b", 300n, T);
  c.add("10.0.0.3", "c", 300n, T + 20n * S);
  assert.deepEqual([c.evictions, c.expirations, c.size], [0, 1, 2]);
});

Deno.test("a newer answer for an address replaces its name and expiry", () => {
  const c = cache(2);
  c.add("10.0.0.1", "first.example", 300n, T);
  c.add("10.0.0.2", "other.example", 300n, T);
  c.add("10.0.0.1", "second.example", 20n, T + 10n * S);
  assert.equal(c.size, 2);
  assert.equal(c.evictions, 0, "a replacement evicts nothing");
  assert.equal(c.lookup("10.0.0.1", T + 29n * S), "second.example");
  assert.equal(c.lookup("10.0.0.1", T + 30n * S), undefined, "the newer, shorter expiry holds");
  // The replacement also made 10.0.0.1 the most recent: 10.0.0.2 goes first.
  const d = cache(2);
  d.add("10.0.0.1", "x", 300n, T);
  d.add("10.0.0.2", "y", 300n, T);
  d.add("10.0.0.1", "x2", 300n, T);
  d.add("10.0.0.3", "z", 300n, T);
  assert.equal(d.lookup("10.0.0.2", T), undefined);
  assert.equal(d.lookup("10.0.0.1", T), "x2");
});

Deno.test("normalizeAddress() writes each address in one form", () => {
  assert.equal(normalizeAddress("10.0.0.1"), "10.0.0.1");
  assert.equal(normalizeAddress("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
  assert.equal(normalizeAddress("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
  assert.equal(normalizeAddress("0:0:0:0:0:0:0:1"), "::1");
  assert.equal(normalizeAddress("::ffff:93.184.216.34"), "93.184.216.34");
  assert.equal(normalizeAddress("::FFFF:5db8:d822"), "93.184.216.34");
  assert.equal(normalizeAddress("fe80::1%eth0"), "fe80::1");
  for (const bad of ["", "example.com", "10.1", "010.0.0.1", "256.0.0.1", "1:2:3", "::g"]) {
    assert.equal(normalizeAddress(bad), undefined, bad);
  }
});

Deno.test("an answer's address text matches netflow's text of the same address", () => {
  const c = cache();
  c.add("2606:2800:0220:0001:0248:1893:25C8:1946", "example.com", 300n, T);
  c.add("::ffff:192.0.2.7", "mapped.example", 300n, T);
  assert.equal(c.lookup("2606:2800:220:1:248:1893:25c8:1946", T), "example.com");
  assert.equal(c.lookup("192.0.2.7", T), "mapped.example", "an IPv4-mapped answer names IPv4");
  c.add("198.51.100.1", "v4.example", 300n, T);
  assert.equal(c.lookup("::ffff:198.51.100.1", T), "v4.example", "a dual-stack socket's text");
  assert.equal(c.add("not-an-ip", "x", 300n, T), false);
  assert.equal(c.lookup("not-an-ip", T), undefined);
  assert.equal(c.size, 3);
});

Deno.test("1,000,000 answers into 100,000 entries: the size holds and 900,000 are evicted", () => {
  const c = cache(100_000);
  const started = performance.now();
  for (let i = 0; i < 1_000_000; i++) {
    c.add(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, `h${i}.example`, 300n, T);
  }
  const ms = performance.now() - started;
  assert.equal(c.size, 100_000);
  assert.equal(c.evictions, 900_000);
  assert.equal(c.expirations, 0);
  // The newest 100,000 stay: the last one added and the first one kept are there.
  assert.equal(c.lookup("10.15.66.63", T), "h999999.example");
  assert.equal(c.lookup("10.13.187.160", T), "h900000.example");
  assert.equal(c.lookup("10.13.187.159", T), undefined, "h899999 was evicted");
  assert.ok(ms < 10_000, `took ${ms.toFixed(0)} ms`);
});

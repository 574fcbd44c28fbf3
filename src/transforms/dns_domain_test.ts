import assert from "node:assert/strict";
import { ManualClock } from "../pipeline/clock.ts";
import { buildStage, configureStage } from "../pipeline/testing.ts";
import type { Record } from "../record.ts";
import { type DnsDomainConfig, dnsDomainTransform } from "./dns_domain.ts";

const T = 1_764_000_000_000_000_000n; // buildStage's clock starts here
const S = 1_000_000_000n;

function answer(name: string, address: string, ttl: bigint): Record {
  return {
    measurement: "dns_answer",
    tags: { host: "test-host" },
    fields: { name, address, ttl },
    time: T,
  };
}

function flow(dstIp: string, dstDomain?: string): Record {
  const tags: Record["tags"] = {
    host: "test-host",
    source: "netflow",
    direction: "outgoing",
    dst_ip: dstIp,
    dst_port: "443",
  };
  if (dstDomain !== undefined) tags.dst_domain = dstDomain;
  return { measurement: "netflow", tags, fields: { bytes_written: 100n }, time: T };
}

const build = (options: { [key: string]: unknown } = {}) =>
  buildStage(dnsDomainTransform, { answers_from: "dns", ...options });

Deno.test("dns_domain fills dst_domain from an answer seen before the flow", async () => {
  const { stage, emitted } = await build();
  stage.side!("answers_from", answer("example.com", "93.184.216.34", 300n));
  const input = flow("93.184.216.34", "");
  const before = structuredClone(input);
  stage.push(input);
  assert.equal(emitted.length, 1);
  assert.equal(emitted[0].tags.dst_domain, "example.com");
  assert.notEqual(emitted[0], input, "a copy");
  assert.equal(emitted[0].fields, input.fields, "fields shared");
  assert.deepEqual(input, before, "the input is not changed");
});

Deno.test("dns_domain fills a missing tag too, and matches IPv6 in another spelling", async () => {
  const { stage, emitted } = await build();
  stage.side!("answers_from", answer("v6.example", "2001:DB8:0:0:0:0:0:1", 60n));
  stage.push(flow("2001:db8::1"));
  assert.equal(emitted[0].tags.dst_domain, "v6.example");
});

Deno.test("dns_domain passes a miss on unchanged: the same object", async () => {
  const { stage, emitted, counters } = await build();
  stage.side!("answers_from", answer("example.com", "93.184.216.34", 300n));
  const input = flow("198.51.100.9", "");
  stage.push(input);
  assert.equal(emitted[0], input);
  assert.equal(counters.get("domain_misses", { stage: "dns_domain" }), 1n);
});

Deno.test("dns_domain leaves a non-empty dst_domain alone and does not look it up", async () => {
  const { stage, emitted, counters } = await build();
  stage.side!("answers_from", answer("example.com", "93.184.216.34", 300n));
  const input = flow("93.184.216.34", "already.example");
  stage.push(input);
  assert.equal(emitted[0], input);
  assert.equal(counters.get("domain_hits", { stage: "dns_domain" }), 0n);
  assert.equal(counters.get("domain_misses", { stage: "dns_domain" }), 0n);
});

Deno.test("dns_domain passes records without the ip tag and ignores other side records", async () => {
  const { stage, emitted, counters } = await build();
  const bash: Record = {
    measurement: "bash",
    tags: { host: "test-host", source: "bash" },
    fields: { cmd: "ls" },
    time: T,
  };
  stage.side!("answers_from", { ...answer("x.example", "10.0.0.1", 300n), measurement: "dns" });
  stage.side!("answers_from", answer("y.example", "10.0.0.2", 300n));
  stage.side!("answers_from", {
    ...answer("z.example", "10.0.0.3", 0n),
    fields: { name: "z.example", address: "10.0.0.3", ttl: 300 }, // a float TTL: not the contract
  });
  stage.push(bash);
  stage.push(flow("10.0.0.1"));
  stage.push(flow("10.0.0.2"));
  stage.push(flow("10.0.0.3"));
  assert.equal(emitted[0], bash);
  assert.deepEqual(emitted.slice(1).map((r) => r.tags.dst_domain), [
    undefined,
    "y.example",
    undefined,
  ]);
  assert.equal(counters.get("domain_cache_entries", { stage: "dns_domain" }), 1n);
});

Deno.test("dns_domain names a record that sums a span (a poll) if the name was live in it", async () => {
  const { stage, emitted, clock } = await buildStage(
    dnsDomainTransform,
    { answers_from: "dns", min_ttl: "10s" },
    new ManualClock(T),
    { inputSpanMs: 60_000 }, // records sum a minute
  );
  stage.side!("answers_from", answer("router.lan", "192.168.1.1", 0n)); // live until T + 10 s
  clock.advance(T + 69n * S); // a poll covering (T + 9 s, T + 69 s]: it was live then
  stage.push(flow("192.168.1.1", ""));
  clock.advance(T + 70n * S); // covering (T + 10 s, T + 70 s]: it was not
  stage.push(flow("192.168.1.1", ""));
  assert.deepEqual(emitted.map((r) => r.tags.dst_domain), ["router.lan", ""]);
});

Deno.test("dns_domain stops naming an address once its TTL is up", async () => {
  const { stage, emitted, clock, counters } = await build({ min_ttl: "10s" });
  stage.side!("answers_from", answer("example.com", "93.184.216.34", 30n));
  stage.side!("answers_from", answer("router.lan", "192.168.1.1", 0n)); // dnsmasq local: TTL 0
  clock.advance(T + 10n * S - 1n);
  stage.push(flow("192.168.1.1", ""));
  clock.advance(T + 10n * S);
  stage.push(flow("192.168.1.1", ""));
  clock.advance(T + 30n * S - 1n);
  stage.push(flow("93.184.216.34", ""));
  clock.advance(T + 30n * S);
  stage.push(flow("93.184.216.34", ""));
  assert.deepEqual(emitted.map((r) => r.tags.dst_domain), ["router.lan", "", "example.com", ""]);
  const c = (name: string) => counters.get(name, { stage: "dns_domain" });
  assert.equal(c("domain_expirations"), 2n);
  assert.equal(c("domain_cache_entries"), 0n);
});

Deno.test("dns_domain counts hits, misses, evictions and the entries held", async () => {
  const { stage, counters } = await build({ max_entries: 2 });
  const c = (name: string) => counters.get(name, { stage: "dns_domain" });
  assert.equal(c("domain_cache_entries"), 0n);
  stage.side!("answers_from", answer("a.example", "10.0.0.1", 300n));
  stage.side!("answers_from", answer("b.example", "10.0.0.2", 300n));
  assert.equal(c("domain_cache_entries"), 2n);
  stage.side!("answers_from", answer("c.example", "10.0.0.3", 300n)); // evicts 10.0.0.1
  stage.push(flow("10.0.0.1"));
  stage.push(flow("10.0.0.2"));
  stage.push(flow("10.0.0.3"));
  stage.push(flow("not an address"));
  assert.equal(c("domain_hits"), 2n);
  assert.equal(c("domain_misses"), 2n);
  assert.equal(c("domain_evictions"), 1n);
  assert.equal(c("domain_expirations"), 0n);
  assert.equal(c("domain_cache_entries"), 2n);
});

Deno.test("dns_domain fills another tag from another ip tag when told to", async () => {
  const { stage, emitted } = await build({ tag: "src_domain", ip_tag: "src_ip" });
  stage.side!("answers_from", answer("me.example", "10.0.0.5", 300n));
  const r = flow("93.184.216.34");
  r.tags.src_ip = "10.0.0.5";
  stage.push(r);
  assert.equal(emitted[0].tags.src_domain, "me.example");
  assert.equal(emitted[0].tags.dst_domain, undefined);
});

Deno.test("dns_domain reports a missing answers_from and inconsistent options at their keys", () => {
  const messages = (options: { [key: string]: unknown }) =>
    configureStage(dnsDomainTransform, options).errors.map((e) => `${e.path}: ${e.reason}`);
  assert.match(messages({})[0], /^test\.dns_domain\.answers_from: is required/);
  assert.deepEqual(messages({ answers_from: "dns", min_ttl: "2h" }), [
    "test.dns_domain.min_ttl: 2h is above max_ttl 1h",
  ]);
  assert.match(
    messages({ answers_from: "dns", max_ttl: "0s" })[0],
    /max_ttl: invalid duration "0s"/,
  );
  assert.match(messages({ answers_from: "dns", tag: "dst_ip" })[0], /tag: is also ip_tag/);
  assert.match(messages({ answers_from: "dns", max_entries: 0 })[0], /max_entries: expected/);
});

Deno.test("dns_domain explains what it fills from where, and that it sends no queries", () => {
  const { config } = configureStage(dnsDomainTransform, dnsDomainTransform.example);
  const details = dnsDomainTransform.explain!(config as DnsDomainConfig).details!;
  assert.deepEqual(details, [
    "dst_ip → dst_domain from the DNS answers of dns, each kept for its TTL clamped to " +
    "10s..1h, at most 100000 addresses",
    "sends no DNS queries (no reverse lookups)",
  ]);
});

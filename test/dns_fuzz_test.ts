/**
 * 100,000 random and mutated DNS payloads through DnsTracker.add: none may throw, and each
 * must land in exactly one of the tracker's outcomes, so no payload is silently lost.
 *
 * Seeded, so a failure repeats; set DNS_FUZZ_SEED to try other inputs.
 */
import assert from "node:assert/strict";
// @ts-types="@types/dns-packet"
import dnsPacket from "dns-packet";
import { parseIp } from "../src/ip.ts";
import { type DnsRequest, type DnsSegment, DnsTracker } from "../src/probes/dns_tracker.ts";

const SEED = Number(Deno.env.get("DNS_FUZZ_SEED") ?? 0x5eed);
const UDP_PAYLOADS = 60_000, TCP_SEGMENTS = 30_000, CUT_SEGMENTS = 10_000;
const MS = 1_000_000n;

/** mulberry32: small, seedable, good enough to pick mutations. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const random = prng(SEED);
const int = (n: number) => Math.floor(random() * n);
const pick = <T>(items: readonly T[]): T => items[int(items.length)];

const NAMES = [
  "example.com",
  "WWW.Example.com",
  "a.b.c.d.example.org",
  "x",
  "",
  "xn--bcher-kva.ch",
];
const TYPES = ["A", "AAAA", "CNAME", "MX", "TXT", "SRV", "NS", "PTR", "SOA", "CAA", "HTTPS"];

/** A query and a response to it (various record types), as the wire carries them. */
function exchange(): [Uint8Array, Uint8Array] {
  const name = pick(NAMES), id = int(4);
  const picked = pick(TYPES);
  const type = (picked === "HTTPS" ? "UNKNOWN_65" : picked) as dnsPacket.RecordType;
  const q = dnsPacket.encode({
    type: "query",
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name }],
    additionals: random() < 0.5 ? [] : [{
      type: "OPT",
      name: ".",
      udpPayloadSize: 1232,
      extendedRcode: 0,
      ednsVersion: 0,
      flags: 0,
      flag_do: false,
      options: [{
        code: 8,
        family: 1,
        sourcePrefixLength: 24,
        scopePrefixLength: 0,
        ip: "10.1.2.0",
      }],
    } as dnsPacket.Answer],
  });
  const answers: dnsPacket.Answer[] = [
    { type: "CNAME", name, ttl: 60, data: "edge.cdn.net" },
    { type: "A", name: "edge.cdn.net", ttl: 20, data: `192.0.2.${int(256)}` },
    { type: "AAAA", name: "edge.cdn.net", ttl: 20, data: "2001:db8::1" },
    { type: "MX", name, ttl: 5, data: { preference: 10, exchange: "mx.example.com" } },
    { type: "TXT", name, ttl: 5, data: "v=spf1 -all" },
    { type: "SRV", name, data: { priority: 1, weight: 2, port: 443, target: "t.example" } },
    { type: "CAA", name, data: { flags: 0, tag: "issue", value: "ca.example" } },
  ];
  const r = dnsPacket.encode({
    type: "response",
    id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | pick([0, 0, 2, 3, 5]),
    questions: [{ type, name }],
    answers: answers.filter(() => random() < 0.5),
    authorities: random() < 0.3
      ? [{
        type: "SOA",
        name: "example.com",
        data: {
          mname: "ns.example.com",
          rname: "hostmaster.example.com",
          serial: 1,
          refresh: 2,
          retry: 3,
          expire: 4,
          minimum: 5,
        },
      }]
      : [],
  });
  return [new Uint8Array(q), new Uint8Array(r)];
}

/** Bit flips, truncation, header count corruption, splices, or plain random bytes. */
function mutate(bytes: Uint8Array): Uint8Array {
  switch (int(6)) {
    case 0: {
      const out = bytes.slice();
      for (let i = 1 + int(8); i > 0 && out.length; i--) out[int(out.length)] ^= 1 << int(8);
      return out;
    }
    case 1:
      return bytes.slice(0, int(bytes.length + 1));
    case 2: {
      const out = bytes.slice();
      if (out.length >= 12) out[4 + int(8)] = int(256);
      return out;
    }
    case 3: {
      const other = exchange()[int(2)];
      const head = bytes.subarray(0, int(bytes.length + 1)),
        tail = other.subarray(int(other.length));
      const out = new Uint8Array(head.length + tail.length);
      out.set(head);
      out.set(tail, head.length);
      return out;
    }
    case 4:
      return new Uint8Array(int(600)).map(() => int(256));
    default:
      return bytes;
  }
}

const sockets = [0, 1, 2].map((i) => ({
  side: i === 2 ? "server" as const : "client" as const,
  family: "IPv4" as const,
  localIp: "10.0.0.5",
  localPort: i === 2 ? 53 : 40000 + i,
  remoteIp: "10.0.0.2",
  remotePort: i === 2 ? 40999 : 53,
  pid: 4242,
  comm: "fuzz",
}));

/**
 * The tracker's outcomes so far, one per message read, with new queries read off the pending
 * table: each raised `pending` (or dropped the oldest) until a response or `expire` ended it.
 */
function outcomes(t: DnsTracker, completed: number, timedOut = 0): number {
  const s = t.stats;
  const queries = t.pending + s.pendingDropped + completed + timedOut;
  return s.malformed + s.unmatchedResponses + s.retransmits + s.ignored + queries + completed;
}

function checkRequests(requests: DnsRequest[]): void {
  for (const r of requests) {
    assert.ok(r.rcode >= -1 && r.rcode < 4096, `rcode ${r.rcode}`);
    assert.ok(r.latencyNs === undefined || r.latencyNs >= 0n);
    assert.ok(!/[A-Z]/.test(r.name) && !r.name.endsWith("."), r.name);
  }
}

Deno.test(`DnsTracker.add() takes ${UDP_PAYLOADS} mutated UDP payloads without throwing and counts each once (seed ${SEED})`, () => {
  const t = new DnsTracker({ timeoutNs: 50n * MS, maxPending: 16 });
  let now = 0n, completed = 0, timedOut = 0, answers = 0;
  for (let i = 0; i < UDP_PAYLOADS;) {
    const socket = pick(sockets);
    for (const [k, message] of exchange().entries()) {
      const queryLeaves = socket.side === "client";
      // Mostly the right way for its side (queries one way, responses the other); now and
      // then the wrong one.
      const asQuery = (k === 0) === random() < 0.9;
      const outbound = asQuery ? queryLeaves : !queryLeaves;
      const segment: DnsSegment = {
        ...socket,
        transport: "udp",
        timeNs: now += MS,
        outbound,
        payload: random() < 0.5 ? message : mutate(message),
      };
      const before = outcomes(t, completed, timedOut);
      const out = t.add(segment);
      completed += out.requests.length;
      answers += out.answers.length;
      checkRequests(out.requests);
      for (const a of out.answers) assert.ok(parseIp(a.address) !== undefined, a.address);
      assert.equal(outcomes(t, completed, timedOut) - before, 1, `payload ${i} counted once`);
      i++;
    }
    if (i % 97 === 0) timedOut += t.expire(now).length;
  }

  assert.equal(outcomes(t, completed, timedOut), UDP_PAYLOADS);
  // The mix reaches every path, not just "malformed".
  const s = t.stats;
  assert.ok(completed > 1000 && timedOut > 100 && answers > 1000, `${completed} ${timedOut}`);
  assert.ok(
    s.malformed > 1000 && s.unmatchedResponses > 1000 && s.retransmits > 100,
    JSON.stringify(s),
  );
  assert.ok(s.ignored > 100 && s.pendingDropped > 0, JSON.stringify(s));
});

/** A TCP stream of exchanges cut into segments, its length prefixes now and then corrupted. */
function* tcpSegments(count: number, cut: boolean): Generator<DnsSegment> {
  let now = 0n;
  for (let i = 0; i < count;) {
    const socket = { ...pick(sockets), localPort: 30000 + int(16) };
    for (const [k, message] of exchange().entries()) {
      const body = random() < 0.3 ? mutate(message) : message;
      const stream = new Uint8Array(2 + body.length);
      stream.set(body, 2);
      const length = random() < 0.9 ? body.length : int(65536);
      [stream[0], stream[1]] = [length >> 8, length & 0xff];
      for (let at = 0; at < stream.length && i < count; i++) {
        const end = random() < 0.5 ? stream.length : at + 1 + int(stream.length - at);
        const captured = cut && random() < 0.3 ? at + int(end - at + 1) : end;
        const segment: DnsSegment = {
          ...socket,
          transport: "tcp",
          timeNs: now += MS,
          outbound: (k === 0) === (socket.side === "client"),
          payload: stream.slice(at, captured),
        };
        if (captured < end) segment.payloadLength = end - at;
        yield segment;
        at = end;
      }
    }
  }
}

Deno.test(`DnsTracker.add() takes ${TCP_SEGMENTS} mutated TCP segments without throwing and reads or holds each (seed ${SEED})`, () => {
  const t = new DnsTracker({ timeoutNs: 50n * MS, maxPending: 8 });
  let completed = 0, timedOut = 0, read = 0, held = 0;
  for (const segment of tcpSegments(TCP_SEGMENTS, false)) {
    const before = outcomes(t, completed, timedOut), buffered = t.buffered;
    const out = t.add(segment);
    completed += out.requests.length;
    checkRequests(out.requests);
    // Either it ended at least one message (or the stream, as malformed), or all of it waits.
    if (outcomes(t, completed, timedOut) > before) read++;
    else if (t.buffered - buffered === segment.payload.length) held++;
    else assert.fail(`segment of ${segment.payload.length} bytes neither read nor held`);
    if ((read + held) % 101 === 0) timedOut += t.expire(segment.timeNs).length;
  }

  assert.equal(read + held, TCP_SEGMENTS);
  assert.ok(held > 1000 && completed > 1000, `held ${held}, completed ${completed}`);
  t.expire(1n << 62n);
  assert.deepEqual([t.buffered, t.pending], [0, 0]);
});

Deno.test(`DnsTracker.add() takes ${CUT_SEGMENTS} cut TCP segments without throwing (seed ${SEED})`, () => {
  const t = new DnsTracker({ timeoutNs: 50n * MS, maxPending: 8 });
  let completed = 0, n = 0;
  for (const segment of tcpSegments(CUT_SEGMENTS, true)) {
    const out = t.add(segment);
    completed += out.requests.length;
    checkRequests(out.requests);
    assert.ok(t.buffered >= 0 && t.buffered <= 8 * 65537 && t.pending <= 8);
    if (++n % 101 === 0) t.expire(segment.timeNs);
  }

  assert.ok(completed > 100, `completed ${completed}`);
  t.expire(1n << 62n);
  assert.deepEqual([t.buffered, t.pending], [0, 0]);
});

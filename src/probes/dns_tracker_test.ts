import assert from "node:assert/strict";
// @ts-types="@types/dns-packet"
import dnsPacket from "dns-packet";
import { CLIENT, query, response, SECOND, seg, SERVER, SUCCESS, T0 } from "./_dns_testing.ts";
import { rcodeName } from "./dns_message.ts";
import { DnsTracker } from "./dns_tracker.ts";
import { dnsflowRecord } from "./dns_rows.ts";

const TCP_CLIENT = { ...CLIENT, transport: "tcp", localPort: 40001 } as const;
/** Messages as a DNS-over-TCP stream: each after its 2-byte big-endian length. */
function framed(...messages: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(messages.reduce((n, m) => n + 2 + m.length, 0));
  let at = 0;
  for (const m of messages) {
    out[at] = m.length >> 8;
    out[at + 1] = m.length & 0xff;
    out.set(m, at + 2);
    at += 2 + m.length;
  }
  return out;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function tracker(maxPending = 100): DnsTracker {
  return new DnsTracker({ timeoutNs: 5n * SECOND, maxPending });
}

const NO_TROUBLE = { malformed: 0, unmatchedResponses: 0, retransmits: 0, pendingDropped: 0 };

/** The counting part of the stats, for short assertions. */
function trouble(t: DnsTracker) {
  const { malformed, unmatchedResponses, retransmits, pendingDropped } = t.stats;
  return { malformed, unmatchedResponses, retransmits, pendingDropped };
}

Deno.test("DnsTracker matches a UDP query to its response: one request with the latency between them", () => {
  const t = tracker();

  const first = t.add(seg(CLIENT, true, T0, query("WwW.ExAmple.COM")));
  assert.deepEqual(first, { requests: [], answers: [] });
  assert.equal(t.pending, 1);
  const done = t.add(
    seg(CLIENT, false, T0 + 12_345_678n, response("WwW.ExAmple.COM", { answers: [] })),
  );

  assert.deepEqual(done.requests, [{
    ...CLIENT,
    name: "www.example.com",
    qtype: "A",
    rcode: 0,
    latencyNs: 12_345_678n,
    truncated: false,
    retransmits: 0,
  }]);
  assert.equal(t.pending, 0);
  assert.deepEqual(trouble(t), NO_TROUBLE);
});

Deno.test("DnsTracker reports NXDOMAIN, SERVFAIL and REFUSED responses with their rcode", () => {
  const t = tracker();
  const rcodes: number[] = [];
  for (const [i, rcode] of [3, 2, 5].entries()) {
    const name = `n${i}.example`;
    t.add(seg(CLIENT, true, T0, query(name, "A", i)));
    const { requests } = t.add(seg(CLIENT, false, T0 + 1n, response(name, { id: i, rcode })));
    rcodes.push(...requests.map((r) => r.rcode));
  }

  assert.deepEqual(rcodes, [3, 2, 5]);
  assert.deepEqual(rcodes.map(rcodeName), ["NXDOMAIN", "SERVFAIL", "REFUSED"]);
});

Deno.test("DnsTracker counts a retransmitted query once and measures latency from the first", () => {
  const t = tracker();

  t.add(seg(CLIENT, true, T0, query("example.com")));
  t.add(seg(CLIENT, true, T0 + SECOND, query("example.com")));
  const { requests } = t.add(seg(CLIENT, false, T0 + 1_500_000_000n, response("example.com")));

  assert.equal(requests.length, 1);
  assert.equal(requests[0].latencyNs, 1_500_000_000n);
  assert.equal(requests[0].retransmits, 1);
  assert.equal(t.stats.retransmits, 1);
  assert.equal(t.pending, 0);
});

Deno.test("DnsTracker.expire() reports an unanswered query as rcode -1 once older than the timeout, not before", () => {
  const t = tracker();
  t.add(seg(CLIENT, true, T0, query("slow.example", "AAAA")));

  assert.deepEqual(t.expire(T0 + 5n * SECOND), []);
  const expired = t.expire(T0 + 5n * SECOND + 1n);

  assert.deepEqual(expired, [{
    ...CLIENT,
    name: "slow.example",
    qtype: "AAAA",
    rcode: -1,
    truncated: false,
    retransmits: 0,
  }]);
  assert.ok(!("latencyNs" in expired[0]));
  assert.equal(t.pending, 0);
  assert.deepEqual(t.expire(T0 + 60n * SECOND), []);
  // The answer that comes after all has nothing to complete.
  t.add(seg(CLIENT, false, T0 + 6n * SECOND, response("slow.example", { type: "AAAA" })));
  assert.equal(t.stats.unmatchedResponses, 1);
});

Deno.test("DnsTracker counts responses that match no pending query: other id, name, type or socket", () => {
  const t = tracker();
  t.add(seg(CLIENT, true, T0, query("example.com", "A", 7)));

  const strays = [
    seg(CLIENT, false, T0 + 1n, response("example.com", { id: 8 })),
    seg(CLIENT, false, T0 + 1n, response("example.org", { id: 7 })),
    seg(CLIENT, false, T0 + 1n, response("example.com", { id: 7, type: "AAAA" })),
    seg({ ...CLIENT, localPort: 40002 }, false, T0 + 1n, response("example.com", { id: 7 })),
    seg({ ...CLIENT, remoteIp: "10.0.0.3" }, false, T0 + 1n, response("example.com", { id: 7 })),
    seg(
      { ...CLIENT, transport: "tcp" },
      false,
      T0 + 1n,
      framed(response("example.com", { id: 7 })),
    ),
  ];
  const requests = strays.flatMap((s) => t.add(s).requests);

  assert.deepEqual(requests, []);
  assert.equal(t.stats.unmatchedResponses, 6);
  assert.equal(t.pending, 1);
});

Deno.test("DnsTracker ignores a query going the response's way, and counts such a response unmatched", () => {
  const t = tracker();

  t.add(seg(CLIENT, false, T0, query("example.com"))); // a client's queries leave
  t.add(seg(CLIENT, true, T0, query("example.com")));
  const { requests } = t.add(seg(CLIENT, true, T0 + 1n, response("example.com")));

  assert.deepEqual(requests, []);
  assert.equal(t.pending, 1);
  assert.deepEqual(t.stats, { ...NO_TROUBLE, unmatchedResponses: 1, ignored: 1 });
});

Deno.test("DnsTracker takes a response's query from its claim when it holds none, and counts it unmatched otherwise", () => {
  const claimed: string[] = [];
  const t = new DnsTracker({
    timeoutNs: 5n * SECOND,
    maxPending: 10,
    claim(segment, bytes) {
      claimed.push(`${segment.localPort}:${bytes.length}`);
      if (segment.localPort !== CLIENT.localPort) return undefined;
      return { firstNs: T0 - 2000n, pid: 77, comm: "held", cgroupId: 5n, retransmits: 3 };
    },
  });

  const { requests } = t.add(seg(CLIENT, false, T0, response("held.example")));
  const stray = t.add(seg({ ...CLIENT, localPort: 1 }, false, T0, response("held.example")));

  assert.deepEqual(requests, [{
    ...CLIENT,
    pid: 77,
    comm: "held",
    cgroupId: 5n,
    name: "held.example",
    qtype: "A",
    rcode: 0,
    latencyNs: 2000n,
    truncated: false,
    retransmits: 3,
  }]);
  assert.deepEqual(stray.requests, []);
  assert.equal(claimed.length, 2);
  assert.equal(t.stats.unmatchedResponses, 1);
});

Deno.test("DnsTracker.answers() reads a counted response's answers and counts nothing", () => {
  const t = tracker();
  const answers = t.answers(seg(
    CLIENT,
    false,
    T0,
    response("www.example.com", {
      answers: [{ type: "A", name: "www.example.com", ttl: 30, data: "192.0.2.1" }],
    }),
  ));
  assert.deepEqual(answers, [{ name: "www.example.com", address: "192.0.2.1", ttl: 30 }]);
  assert.equal(t.pending, 0);
  assert.deepEqual(trouble(t), NO_TROUBLE);
});

Deno.test("DnsTracker matches a local server's inbound query to its outbound response", () => {
  const t = tracker();

  t.add(seg(SERVER, false, T0, query("host.corp.lan")));
  const { requests } = t.add(seg(SERVER, true, T0 + 250_000n, response("host.corp.lan")));

  assert.deepEqual(requests, [{
    ...SERVER,
    name: "host.corp.lan",
    qtype: "A",
    rcode: 0,
    latencyNs: 250_000n,
    truncated: false,
    retransmits: 0,
  }]);
  assert.equal(dnsflowRecord(requests[0], "h", T0).tags.direction, "incoming");
});

Deno.test("DnsTracker reads two TCP messages in one segment", () => {
  const t = tracker();

  t.add(seg(TCP_CLIENT, true, T0, framed(query("a.example", "A", 1), query("b.example", "A", 2))));
  assert.equal(t.pending, 2);
  const { requests } = t.add(
    seg(
      TCP_CLIENT,
      false,
      T0 + 9n,
      framed(response("a.example", { id: 1 }), response("b.example", { id: 2, rcode: 3 })),
    ),
  );

  assert.deepEqual(requests.map((r) => [r.name, r.rcode, r.transport, r.latencyNs]), [
    ["a.example", 0, "tcp", 9n],
    ["b.example", 3, "tcp", 9n],
  ]);
  assert.equal(t.buffered, 0);
});

Deno.test("DnsTracker reassembles a TCP message split across three segments, timed by the last", () => {
  const t = tracker();
  t.add(seg(TCP_CLIENT, true, T0, framed(query("split.example"))));
  const stream = framed(response("split.example", {
    answers: [{ type: "A", name: "split.example", ttl: 30, data: "203.0.113.9" }],
  }));
  const [a, b] = [5, 20];

  const one = t.add(seg(TCP_CLIENT, false, T0 + 1n, stream.subarray(0, a)));
  const two = t.add(seg(TCP_CLIENT, false, T0 + 2n, stream.subarray(a, b)));
  assert.equal(t.buffered, b);
  const three = t.add(seg(TCP_CLIENT, false, T0 + 3n, stream.subarray(b)));

  assert.deepEqual([one.requests, two.requests], [[], []]);
  assert.deepEqual(three.requests.map((r) => [r.name, r.latencyNs]), [["split.example", 3n]]);
  assert.deepEqual(three.answers, [{ name: "split.example", address: "203.0.113.9", ttl: 30 }]);
  assert.equal(t.buffered, 0);
  assert.deepEqual(trouble(t), NO_TROUBLE);
});

Deno.test("DnsTracker reassembles a TCP length prefix split between segments", () => {
  const t = tracker();
  const stream = framed(query("prefix.example"));

  t.add(seg(TCP_CLIENT, true, T0, stream.subarray(0, 1)));
  assert.equal(t.pending, 0);
  t.add(seg(TCP_CLIENT, true, T0 + 1n, stream.subarray(1)));

  assert.equal(t.pending, 1);
  const { requests } = t.add(seg(TCP_CLIENT, false, T0 + 4n, framed(response("prefix.example"))));
  assert.deepEqual(requests.map((r) => [r.name, r.latencyNs]), [["prefix.example", 3n]]);
});

Deno.test("DnsTracker keeps the two directions of a TCP connection apart", () => {
  const t = tracker();
  const q = framed(query("dirs.example")), r = framed(response("dirs.example"));

  t.add(seg(TCP_CLIENT, true, T0, q.subarray(0, 10)));
  t.add(seg(TCP_CLIENT, false, T0 + 1n, r.subarray(0, 10))); // must not join the query
  t.add(seg(TCP_CLIENT, true, T0 + 2n, q.subarray(10)));
  const { requests } = t.add(seg(TCP_CLIENT, false, T0 + 3n, r.subarray(10)));

  assert.deepEqual(requests.map((x) => [x.name, x.latencyNs]), [["dirs.example", 1n]]);
});

Deno.test("DnsTracker takes the process from the query, or from the response when the query had none", () => {
  const t = tracker();
  const anonymous = { ...CLIENT, pid: 0, comm: "" };

  t.add(seg(CLIENT, true, T0, query("a.example")));
  const a = t.add(seg(anonymous, false, T0 + 1n, response("a.example"))).requests;
  t.add(seg(anonymous, true, T0, query("b.example")));
  const b = t.add(seg(CLIENT, false, T0 + 1n, response("b.example"))).requests;

  assert.deepEqual([...a, ...b].map((r) => [r.name, r.pid, r.comm]), [
    ["a.example", 4242, "curl"],
    ["b.example", 4242, "curl"],
  ]);
});

Deno.test("DnsTracker names an address reached through a CNAME chain by the asked name", () => {
  const t = tracker();
  t.add(seg(CLIENT, true, T0, query("WWW.Example.com")));

  const { answers } = t.add(seg(
    CLIENT,
    false,
    T0 + 1n,
    response("WWW.Example.com", {
      answers: [
        { type: "CNAME", name: "WWW.Example.com", ttl: 300, data: "Web.Example.NET" },
        { type: "CNAME", name: "web.example.net", ttl: 300, data: "edge.cdn.net" },
        { type: "A", name: "EDGE.cdn.net", ttl: 20, data: "198.51.100.1" },
        { type: "A", name: "edge.cdn.net", ttl: 20, data: "198.51.100.2" },
        { type: "A", name: "unrelated.example.org", ttl: 60, data: "192.0.2.7" },
      ],
    }),
  ));

  assert.deepEqual(answers, [
    { name: "www.example.com", address: "198.51.100.1", ttl: 20 },
    { name: "www.example.com", address: "198.51.100.2", ttl: 20 },
    { name: "unrelated.example.org", address: "192.0.2.7", ttl: 60 },
  ]);
});

Deno.test("DnsTracker stops at a CNAME loop", () => {
  const t = tracker();
  const { answers } = t.add(seg(
    CLIENT,
    false,
    T0,
    response("a.loop", {
      answers: [
        { type: "CNAME", name: "a.loop", data: "b.loop" },
        { type: "CNAME", name: "b.loop", data: "a.loop" },
        { type: "A", name: "b.loop", ttl: 1, data: "192.0.2.1" },
      ],
    }),
  ));

  assert.deepEqual(answers, [{ name: "a.loop", address: "192.0.2.1", ttl: 1 }]);
});

Deno.test("DnsTracker reports AAAA answers in RFC 5952 form, and their request's qtype", () => {
  const t = tracker();
  t.add(seg(CLIENT, true, T0, query("v6.example", "AAAA")));

  const { requests, answers } = t.add(seg(
    CLIENT,
    false,
    T0 + 1n,
    response("v6.example", {
      type: "AAAA",
      answers: [
        { type: "AAAA", name: "v6.example", ttl: 3600, data: "2001:DB8:0:0:0:0:0:1" },
        // The longest run of zeros is the one shortened, as netflow writes it.
        { type: "AAAA", name: "v6.example", ttl: 3600, data: "2001:db8:0:0:1:0:0:0" },
      ],
    }),
  ));

  assert.deepEqual(requests.map((r) => r.qtype), ["AAAA"]);
  assert.deepEqual(answers, [
    { name: "v6.example", address: "2001:db8::1", ttl: 3600 },
    { name: "v6.example", address: "2001:db8:0:0:1::", ttl: 3600 },
  ]);
});

Deno.test("DnsTracker drops the oldest pending query beyond maxPending, without reporting it as a timeout", () => {
  const t = tracker(2);

  for (const [i, name] of ["one.example", "two.example", "three.example"].entries()) {
    t.add(seg(CLIENT, true, T0 + BigInt(i), query(name)));
  }

  assert.equal(t.pending, 2);
  assert.equal(t.stats.pendingDropped, 1);
  t.add(seg(CLIENT, false, T0 + 5n, response("one.example")));
  assert.equal(t.stats.unmatchedResponses, 1);
  assert.deepEqual(t.expire(T0 + 60n * SECOND).map((r) => r.name), [
    "two.example",
    "three.example",
  ]);
});

Deno.test("DnsTracker counts unreadable payloads as malformed instead of throwing", () => {
  const t = tracker();
  const noQuestion = new Uint8Array(dnsPacket.encode({ type: "query", id: 1, questions: [] }));
  const random = new Uint8Array(64).map((_, i) => (i * 167 + 13) & 0xff);
  const payloads = [
    new Uint8Array(0),
    random,
    query("example.com").subarray(0, 7), // a header cut short
    query("example.com").subarray(0, 20), // a question cut short
    noQuestion,
  ];

  for (const p of payloads) assert.deepEqual(t.add(seg(CLIENT, true, T0, p)).requests, []);
  t.add(seg(TCP_CLIENT, true, T0, new Uint8Array(0)));

  assert.equal(t.stats.malformed, payloads.length + 1);
  assert.equal(t.pending, 0);
});

Deno.test("DnsTracker drops a TCP stream at a length prefix too short for a message, counted malformed, and reads the next segment afresh", () => {
  const t = tracker();

  // What follows a garbage prefix is not trusted, even if it looks like a message.
  t.add(seg(TCP_CLIENT, true, T0, concat(new Uint8Array([0, 3, 1, 2, 3]), framed(query("x.y")))));
  assert.deepEqual([t.stats.malformed, t.pending, t.buffered], [1, 0, 0]);
  t.add(seg(TCP_CLIENT, true, T0 + 1n, framed(query("after.example"))));

  assert.equal(t.pending, 1);
});

Deno.test("DnsTracker.expire() drops a TCP message never completed, counted malformed", () => {
  const t = tracker();
  t.add(seg(TCP_CLIENT, true, T0, framed(query("stuck.example")).subarray(0, 9)));
  assert.equal(t.buffered, 9);

  t.expire(T0 + 5n * SECOND);
  assert.equal(t.buffered, 9);
  t.expire(T0 + 6n * SECOND);

  assert.equal(t.buffered, 0);
  assert.equal(t.stats.malformed, 1);
});

Deno.test("DnsTracker completes a request from a UDP response cut short, with the answers before the cut", () => {
  const t = tracker();
  t.add(seg(CLIENT, true, T0, query("big.example")));
  const whole = response("big.example", {
    answers: [1, 2, 3].map((i) => ({
      type: "A" as const,
      name: "big.example",
      ttl: 9,
      data: `192.0.2.${i}`,
    })),
  });

  // The last A record loses two of its four address bytes.
  const cut = t.add(seg(CLIENT, false, T0 + 1n, whole.subarray(0, whole.length - 2)));

  assert.deepEqual(cut.requests.map((r) => [r.name, r.rcode]), [["big.example", 0]]);
  assert.deepEqual(cut.answers.map((a) => a.address), ["192.0.2.1", "192.0.2.2"]);
  assert.equal(t.stats.malformed, 0);
});

Deno.test("DnsTracker reads a cut TCP segment as far as it goes and passes over the missing bytes", () => {
  const t = tracker();
  t.add(seg(TCP_CLIENT, true, T0, framed(query("big.example", "TXT", 1))));
  t.add(seg(TCP_CLIENT, true, T0, framed(query("next.example", "A", 2))));
  const big = framed(response("big.example", {
    id: 1,
    type: "TXT",
    answers: [{ type: "TXT", name: "big.example", data: "x".repeat(200) }],
  }));
  const next = framed(response("next.example", { id: 2 }));

  // The kernel kept 100 of the first 150 bytes; the next 60 are the rest of the message.
  const first = t.add(seg(TCP_CLIENT, false, T0 + 1n, big.subarray(0, 100), 150));
  const second = t.add(seg(TCP_CLIENT, false, T0 + 2n, big.subarray(150, 210)));
  const third = t.add(seg(TCP_CLIENT, false, T0 + 3n, concat(big.subarray(210), next)));

  assert.deepEqual(first.requests.map((r) => [r.name, r.qtype, r.latencyNs]), [
    ["big.example", "TXT", 1n],
  ]);
  assert.deepEqual(second.requests, []);
  assert.deepEqual(third.requests.map((r) => [r.name, r.latencyNs]), [["next.example", 3n]]);
  assert.deepEqual(trouble(t), NO_TROUBLE);
});

Deno.test("DnsTracker counts malformed a TCP cut that takes a length prefix, and reads the next segment afresh", () => {
  const answer = { type: "A", name: "a.example", ttl: 1, data: "192.0.2.1" } as const;
  const first = response("a.example", { id: 1, answers: [answer] });
  const stream = framed(first, response("b.example", { id: 2 }));
  // Cut right after the first message, or in its answer: either way the second's prefix is gone.
  for (const captured of [2 + first.length, first.length - 2]) {
    const t = tracker();
    t.add(
      seg(TCP_CLIENT, true, T0, framed(query("a.example", "A", 1), query("b.example", "A", 2))),
    );

    const { requests } = t.add(
      seg(TCP_CLIENT, false, T0 + 1n, stream.subarray(0, captured), 2 + first.length + 4),
    );

    assert.deepEqual(requests.map((r) => r.name), ["a.example"], `at ${captured}`);
    assert.deepEqual([t.stats.malformed, t.buffered], [1, 0], `at ${captured}`);
    t.add(seg(TCP_CLIENT, false, T0 + 2n, framed(response("b.example", { id: 2 }))));
    assert.equal(t.pending, 0);
  }
});

Deno.test("DnsTracker reports the TC bit, EDNS extended rcodes, and unknown types as TYPE<n>", () => {
  const t = tracker();
  t.add(seg(CLIENT, true, T0, query("tc.example", "TXT", 1)));
  t.add(seg(CLIENT, true, T0, query("cookie.example", "A", 2)));
  t.add(seg(CLIENT, true, T0, query("https.example", "UNKNOWN_65" as "A", 3)));
  t.add(seg(CLIENT, true, T0, query("odd.example", "UNKNOWN_4660" as "A", 4)));
  const opt = {
    type: "OPT",
    name: ".",
    udpPayloadSize: 1232,
    extendedRcode: 1,
    ednsVersion: 0,
    flags: 0,
    flag_do: false,
    options: [],
  } as dnsPacket.Answer;

  const requests = [
    response("tc.example", { id: 1, type: "TXT", flags: dnsPacket.TRUNCATED_RESPONSE }),
    response("cookie.example", { id: 2, rcode: 7, additionals: [opt] }), // 1 << 4 | 7 = 23
    response("https.example", { id: 3, type: "UNKNOWN_65" as "A" }),
    response("odd.example", { id: 4, type: "UNKNOWN_4660" as "A" }),
  ].flatMap((r) => t.add(seg(CLIENT, false, T0 + 1n, r)).requests);

  assert.deepEqual(requests.map((r) => [r.qtype, r.rcode, rcodeName(r.rcode), r.truncated]), [
    ["TXT", 0, "NOERROR", true],
    ["A", 23, "BADCOOKIE", false],
    ["HTTPS", 0, "NOERROR", false],
    ["TYPE4660", 0, "NOERROR", false],
  ]);
});

Deno.test("new DnsTracker() rejects a maxPending that is not a positive integer", () => {
  assert.throws(() => new DnsTracker({ timeoutNs: SECOND, maxPending: 0 }), RangeError);
  assert.throws(() => new DnsTracker({ timeoutNs: SECOND, maxPending: 1.5 }), RangeError);
});

Deno.test("a request carries its socket's cgroup id to dnsflowRecord()'s integer field cgroup_id", () => {
  const t = tracker();
  const socket = { ...CLIENT, cgroupId: 123_456_789_012n };
  t.add(seg(socket, true, T0, query("svc.test")));
  // The arriving response may come from a socket the kernel saw no cgroup for: the query's wins.
  const { requests } = t.add(
    seg({ ...CLIENT, cgroupId: 0n }, false, T0 + 1n, response("svc.test")),
  );

  assert.equal(requests[0].cgroupId, 123_456_789_012n);
  const record = dnsflowRecord(requests[0], "h", T0);
  assert.equal(record.fields.cgroup_id, 123_456_789_012n);
  assert.equal(record.tags.cgroup_id, undefined);
  assert.equal(dnsflowRecord(SUCCESS, "h", T0).fields.cgroup_id, undefined); // unknown: none
});

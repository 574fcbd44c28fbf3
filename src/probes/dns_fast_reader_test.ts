import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
// @ts-types="@types/dns-packet"
import dnsPacket from "dns-packet";
import { CLIENT, query, response, SECOND, seg, T0 } from "./_dns_testing.ts";
import { GIVE_UP, nameOfWire, questionKey, readMessage } from "./dns_fast_reader.ts";
import { decodeWithDnsPacket } from "./dns_packet_reader.ts";
import { DnsTracker } from "./dns_tracker.ts";

Deno.test("questionKey() gives the kernel's view of a question, nameOfWire() its text", () => {
  const q = questionKey(query("WwW.Example.COM", "AAAA", 0x1234))!;
  assert.deepEqual(
    [...q.wire],
    [
      3,
      ...new TextEncoder().encode("WwW"),
      7,
      ...new TextEncoder().encode("Example"),
      3,
      67,
      79,
      77,
    ],
  );
  assert.equal(q.id, 0x1234);
  assert.equal(q.qtype, 28);
  assert.equal(nameOfWire(q.wire), "www.example.com");
  assert.equal(nameOfWire(new Uint8Array(0)), ""); // the root
  assert.equal(questionKey(query("a.example").subarray(0, 14)), undefined); // cut in the name
});

Deno.test("the hand-written DNS reader agrees with dns-packet on every message and cut it reads, and reads the common ones", () => {
  const opt = (extendedRcode: number, options: unknown[] = []) =>
    ({
      type: "OPT",
      name: ".",
      udpPayloadSize: 1232,
      extendedRcode,
      ednsVersion: 0,
      flags: 0,
      options,
    }) as dnsPacket.Answer;
  const ecs = { code: 8, family: 1, sourcePrefixLength: 24, scopePrefixLength: 0, ip: "10.1.2.0" };
  const soa = {
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
  } as dnsPacket.Answer;
  const common = [
    query("example.com"),
    query("WWW.Example.COM.", "AAAA", 7),
    query(".", "NS"),
    query("bücher.example", "HTTPS" as "A"),
    new Uint8Array(dnsPacket.encode({
      type: "query",
      id: 9,
      questions: [{ type: "A", name: "ecs.example" }],
      additionals: [opt(0, [ecs, { code: 10, data: Buffer.alloc(8) }])],
    })),
    response("example.com", {
      answers: [{ type: "A", name: "example.com", ttl: 4_000_000_000, data: "192.0.2.1" }],
    }),
    response("Www.Example.com", {
      type: "AAAA",
      answers: [
        { type: "CNAME", name: "WWW.example.com", ttl: 60, data: "Edge.CDN.net." },
        { type: "AAAA", name: "edge.cdn.net", ttl: 20, data: "2001:db8::1" },
        { type: "AAAA", name: "edge.cdn.net", ttl: 20, data: "::ffff:192.0.2.9" },
        { type: "A", name: "edge.cdn.net", class: "CH", ttl: 20, data: "192.0.2.2" },
      ],
      additionals: [opt(1, [ecs])],
      rcode: 7,
    }),
    response("nx.example", { rcode: 3, additionals: [soa] }),
  ];
  // dns-packet writes no pointers: a response whose answer names point at the question's.
  const compressed = new Uint8Array([
    ...[0xab, 0xcd, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0],
    ...[3, 0x77, 0x77, 0x77, 7, ...new TextEncoder().encode("example"), 3, 0x63, 0x6f, 0x6d, 0],
    ...[0, 1, 0, 1],
    ...[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6, 3, 0x63, 0x64, 0x6e, 0xc0, 16], // cdn.example.com
    ...[0xc0, 45, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 3],
  ]);
  const other = [
    response("mx.example", {
      type: "MX",
      answers: [{ type: "MX", name: "mx.example", data: { preference: 1, exchange: "m.example" } }],
    }),
    response("txt.example", {
      type: "TXT",
      answers: [{ type: "TXT", name: "txt.example", data: "v=spf1 -all" }],
    }),
  ];

  for (const message of [...common, compressed]) {
    assert.notEqual(readMessage(message), GIVE_UP, "read by hand");
  }
  let read = 0, gaveUp = 0;
  for (const message of [...common, compressed, ...other]) {
    for (let n = 0; n <= message.length; n++) {
      const cut = message.slice(0, n);
      const mine = readMessage(cut);
      if (mine === GIVE_UP) gaveUp++;
      else {
        read++;
        assert.deepEqual(mine, decodeWithDnsPacket(cut), `${n} of ${message.length} bytes`);
      }
    }
  }
  assert.ok(read > 300 && gaveUp > 100, `${read} read, ${gaveUp} given up`);
  // The pointers were followed: the A record is named by the question through the CNAME.
  const t = new DnsTracker({ timeoutNs: 5n * SECOND, maxPending: 100 });
  t.add(seg(CLIENT, true, T0, query("www.example.com", "A", 0xabcd)));
  const out = t.add(seg(CLIENT, false, T0 + 1n, compressed));
  assert.deepEqual(out.answers, [{ name: "www.example.com", address: "192.0.2.3", ttl: 60 }]);
  assert.equal(out.requests.length, 1);
});

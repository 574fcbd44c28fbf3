/**
 * What the dns probe's user-space work costs per DNS message, without the kernel: ring records
 * as bpf/dns.bpf.c writes them (a dig-like query and its one-A-record response, the shape of
 * `deno task bench`'s DNS workload) through decodeDnsEvent, DnsTracker and the record builders,
 * as dns.ts runs them. One iteration is 256 queries and their responses: 512 messages, so the
 * figure per message is the time per iteration / 512.
 *
 *   deno bench --allow-read src/probes/dns_bench.ts
 */
// @ts-types="@types/dns-packet"
import dnsPacket from "dns-packet";
import { decodeDnsEvent, DNS_EVENT, DNS_EVENT_HEADER } from "./dns_event.ts";
import { DnsTracker } from "./dns_tracker.ts";
import { answerRecord, dnsflowRecord } from "./dns_rows.ts";

const IDS = 4096, BATCH = 256;

/** One ring record: UDP over IPv4 between 127.0.0.1:40000 (python3) and 127.0.0.1:53. */
function event(payload: Uint8Array, outbound: boolean, timeNs: bigint): DataView {
  const bytes = new Uint8Array(DNS_EVENT_HEADER + payload.length);
  const view = new DataView(bytes.buffer), L = DNS_EVENT.offsets;
  view.setBigUint64(L.boot_ns, timeNs, true);
  view.setBigUint64(L.cgroup_id, 4242n, true);
  view.setUint32(L.pid, 1234, true);
  view.setUint32(L.payload_len, payload.length, true);
  view.setUint16(L.captured, payload.length, true);
  bytes.set([1, 2, 17, 1, outbound ? 1 : 0], L.kind); // a message, AF_INET, UDP, client side
  view.setUint16(L.local_port, 40000, true);
  view.setUint16(L.remote_port, 53, true);
  bytes.set([127, 0, 0, 1], L.local_addr + 12);
  bytes.set([127, 0, 0, 1], L.remote_addr + 12);
  bytes.set(new TextEncoder().encode("python3"), L.comm);
  bytes.set(payload, L.payload);
  return view;
}

const exchanges = Array.from({ length: IDS }, (_, id) => {
  const question = { type: "A" as const, name: "bench.test" };
  const query = dnsPacket.encode({
    type: "query",
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [question],
  });
  const response = dnsPacket.encode({
    type: "response",
    id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE |
      dnsPacket.AUTHORITATIVE_ANSWER,
    questions: [question],
    answers: [{ type: "A", name: "bench.test", ttl: 0, data: "127.0.0.7" }],
  });
  return [
    event(new Uint8Array(query), true, BigInt(id) * 1000n),
    event(new Uint8Array(response), false, BigInt(id) * 1000n + 500n),
  ];
});

const tracker = new DnsTracker({ timeoutNs: 5_000_000_000n, maxPending: 10_000 });
let i = 0, sink = 0;

Deno.bench("dns probe user space: 256 queries and their responses (512 messages)", () => {
  for (let n = 0; n < BATCH; n++) {
    for (const view of exchanges[i++ % IDS]) {
      const { segment } = decodeDnsEvent(view, 0, view.byteLength);
      const { requests, answers } = tracker.add(segment);
      for (const r of requests) {
        sink += dnsflowRecord(r, "host", segment.timeNs).fields.count as bigint > 0n ? 1 : 0;
      }
      for (const a of answers) sink += answerRecord(a, "host", segment.timeNs).tags.host.length;
    }
  }
});

Deno.bench("decodeDnsEvent() alone: 512 events", () => {
  for (let n = 0; n < BATCH; n++) {
    for (const view of exchanges[i++ % IDS]) {
      sink += decodeDnsEvent(view, 0, view.byteLength).segment.pid;
    }
  }
});

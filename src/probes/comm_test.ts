/**
 * What each probe gives as `process_name` for a non-ASCII name: the kernel keeps a task's name
 * as the bytes the process set (UTF-8 on any current system), at most 15 of them and a NUL
 * (TASK_COMM_LEN 16), cut wherever byte 15 falls. bash records carry no process name.
 */
import assert from "node:assert/strict";
import {
  decodeClosedFlow,
  decodeFlowDelta,
  FLOW_COUNTS,
  FLOW_DELTA,
  FLOW_ID,
  FLOW_KEY,
  sumUdpCounts,
  UDP_COUNTS,
} from "./netflow_event.ts";
import {
  decodeDnsEvent,
  decodePending,
  decodeRowEvent,
  DNS_EVENT,
  DNS_FLOW_KEY,
  DNS_PENDING,
  DNS_PENDING_KEY,
  DNS_ROW_EVENT,
} from "./dns_event.ts";

/** The kernel's `char[16]` for a process that named itself `name` (raw bytes, as prctl takes). */
function kernelComm(name: Uint8Array): Uint8Array {
  const field = new Uint8Array(16);
  field.set(name.subarray(0, 15));
  return field;
}

const utf8 = (s: string) => new TextEncoder().encode(s);

/** Names as a process sets them, and the process_name every probe now gives. */
const NAMES: [string, Uint8Array, string][] = [
  ["a UTF-8 name", utf8("grüße"), "grüße"],
  // g r ü ß e - 日 本 take 14 bytes; the 15th is the first of 語's three.
  ["a UTF-8 name cut mid-character at 15 bytes", utf8("grüße-日本語-worker"), "grüße-日本\uFFFD"],
  ["bytes that are not UTF-8 (Latin-1 é)", new Uint8Array([0x63, 0x61, 0x66, 0xe9]), "caf\uFFFD"],
  ["an ASCII name", utf8("curl"), "curl"],
];

/** One netflow `struct flow_delta` (IPv4 TCP, outgoing) carrying `comm`. */
function flowDelta(comm: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(FLOW_DELTA.size);
  const key = FLOW_DELTA.offsets.id;
  bytes[key + FLOW_KEY.offsets.family] = 2; // AF_INET
  bytes[key + FLOW_KEY.offsets.transport] = 6; // IPPROTO_TCP
  bytes[key + FLOW_KEY.offsets.direction] = 1; // outgoing
  bytes.set(comm, FLOW_DELTA.offsets.counts + FLOW_COUNTS.offsets.comm);
  return bytes;
}

/** What the netflow probe gives for a flow of a process with this `comm`, by each path. */
function netflowNames(comm: Uint8Array): string[] {
  const delta = flowDelta(comm);
  const udp = new Uint8Array(2 * UDP_COUNTS.size); // two CPUs, the second saw the flow
  udp.set(comm, UDP_COUNTS.size + UDP_COUNTS.offsets.comm);
  return [
    decodeFlowDelta(new DataView(delta.buffer), 0).comm, // an iterator's record or a close
    decodeClosedFlow(delta.slice(0, FLOW_ID.size), delta.slice(FLOW_ID.size)).comm,
    sumUdpCounts(udp).comm,
  ];
}

/** What the dns probe gives for a message, a kernel row and a pending query with this `comm`. */
function dnsNames(comm: Uint8Array, pid: number): string[] {
  const L = DNS_EVENT.offsets;
  const event = new Uint8Array(L.payload);
  event.set([1, 2, 17, 1], L.kind); // a message, AF_INET, UDP, client side
  new DataView(event.buffer).setUint32(L.pid, pid, true);
  event.set(comm, L.comm);

  const row = new Uint8Array(DNS_ROW_EVENT.size);
  const key = DNS_ROW_EVENT.offsets.key;
  row[0] = 3; // DNS_EVENT_ROW
  row.set([2, 17, 1], key + DNS_FLOW_KEY.offsets.family); // AF_INET, UDP, client side
  new DataView(row.buffer).setUint32(key + DNS_FLOW_KEY.offsets.pid, pid, true);
  row.set(comm, key + DNS_FLOW_KEY.offsets.comm);

  const pendingKey = new Uint8Array(DNS_PENDING_KEY.size);
  pendingKey.set([2, 1], DNS_PENDING_KEY.offsets.family); // AF_INET, client side
  const pending = new Uint8Array(DNS_PENDING.size);
  new DataView(pending.buffer).setUint32(DNS_PENDING.offsets.pid, pid, true);
  pending.set(comm, DNS_PENDING.offsets.comm);

  return [
    decodeDnsEvent(new DataView(event.buffer), 0, event.length).segment.comm,
    decodeRowEvent(new DataView(row.buffer), 0, row.length).key.comm,
    decodePending(pendingKey, pending).comm,
  ];
}

for (const [what, name, expected] of NAMES) {
  Deno.test(`netflow and dns give the same process_name for ${what}: ${JSON.stringify(expected)}`, () => {
    const comm = kernelComm(name);
    assert.deepEqual(netflowNames(comm), [expected, expected, expected], "netflow");
    // A pid of its own for each name: dns remembers names by pid.
    assert.deepEqual(dnsNames(comm, 100 + NAMES.findIndex((n) => n[1] === name)), [
      expected,
      expected,
      expected,
    ], "dns");
  });
}

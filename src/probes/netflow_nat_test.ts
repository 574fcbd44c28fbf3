import assert from "node:assert/strict";
import type { FlowKey } from "./netflow_event.ts";
import {
  ConntrackDecodeError,
  type ConntrackEvent,
  decodeConntrackEvents,
  IPS_DST_NAT,
  NatTable,
} from "./netflow_nat.ts";

// Messages built as ctnetlink sends them (linux/netfilter/nfnetlink_conntrack.h): a netlink
// header, nfgenmsg, then attributes; nested ones flagged NLA_F_NESTED, numbers big-endian.

const NESTED = 0x8000;

function attr(type: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array((4 + payload.length + 3) & ~3);
  new DataView(out.buffer).setUint16(0, 4 + payload.length, true);
  new DataView(out.buffer).setUint16(2, type, true);
  out.set(payload, 4);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const be16 = (n: number) => new Uint8Array([n >> 8, n & 0xff]);
const be32 = (n: number) => new Uint8Array([n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
const v4 = (ip: string) => new Uint8Array(ip.split(".").map(Number));

interface Tuple {
  src: Uint8Array;
  dst: Uint8Array;
  proto: number;
  sport: number;
  dport: number;
}

function tuple(type: number, t: Tuple): Uint8Array {
  const v6 = t.src.length === 16;
  return attr(
    type | NESTED,
    concat(
      attr(1 | NESTED, concat(attr(v6 ? 3 : 1, t.src), attr(v6 ? 4 : 2, t.dst))),
      attr(
        2 | NESTED,
        concat(attr(1, new Uint8Array([t.proto])), attr(2, be16(t.sport)), attr(3, be16(t.dport))),
      ),
    ),
  );
}

/** One conntrack event message: IPCTNL_MSG_CT_NEW (0) or _DELETE (2). */
function message(msg: number, orig: Tuple, reply: Tuple, status: number, id: number): Uint8Array {
  const body = concat(
    new Uint8Array([2, 0, 0, 0]), // nfgenmsg: AF_INET, version 0, res_id 0
    tuple(1, orig),
    tuple(2, reply),
    attr(12, be32(id)), // CTA_ID before CTA_STATUS, as the kernel orders them
    attr(3, be32(status)),
  );
  const header = new DataView(new ArrayBuffer(16));
  header.setUint32(0, 16 + body.length, true);
  header.setUint16(4, (1 << 8) | msg, true); // NFNL_SUBSYS_CTNETLINK
  return concat(new Uint8Array(header.buffer), body);
}

/** 10.0.0.5:40000 → 198.18.0.10:80, answered by 198.19.0.2:8080. */
const ORIG = { src: v4("10.0.0.5"), dst: v4("198.18.0.10"), proto: 6, sport: 40000, dport: 80 };
const REPLY = { src: v4("198.19.0.2"), dst: v4("10.0.0.5"), proto: 6, sport: 8080, dport: 40000 };

const EVENT: ConntrackEvent = {
  kind: "new",
  id: 0x8000_0001,
  transport: "tcp",
  source: { ip: "10.0.0.5", port: 40000 },
  destination: { ip: "198.18.0.10", port: 80 },
  translated: { ip: "198.19.0.2", port: 8080 },
};

const KEY: FlowKey = {
  pid: 7,
  family: "IPv4",
  transport: "tcp",
  direction: "outgoing",
  localPort: 40000,
  remotePort: 80,
  localIp: "10.0.0.5",
  remoteIp: "198.18.0.10",
  netns: 4026531992,
};

Deno.test("decodeConntrackEvents() reads a translated NEW and DELETE, several in one datagram", () => {
  const bytes = concat(
    message(0, ORIG, REPLY, IPS_DST_NAT | 0b1010, 0x8000_0001),
    message(2, ORIG, REPLY, IPS_DST_NAT, 0x8000_0001),
  );

  assert.deepEqual(decodeConntrackEvents(bytes), [EVENT, { ...EVENT, kind: "destroy" }]);
});

Deno.test("decodeConntrackEvents() reads IPv6 and UDP tuples, and skips untranslated and other protocols", () => {
  const a = new Uint8Array(16), b = new Uint8Array(16), c = new Uint8Array(16);
  a.set([0x20, 0x01, 0x0d, 0xb8], 0), a[15] = 1;
  b.set([0x20, 0x01, 0x0d, 0xb8], 0), b[15] = 2;
  c.set([0xfd, 0], 0), c[15] = 3;
  const udp6 = message(
    0,
    { src: a, dst: b, proto: 17, sport: 5000, dport: 53 },
    { src: c, dst: a, proto: 17, sport: 5353, dport: 5000 },
    IPS_DST_NAT,
    9,
  );
  const untranslated = message(0, ORIG, { ...REPLY, src: v4("198.18.0.10"), sport: 80 }, 0, 1);
  const icmp = message(0, { ...ORIG, proto: 1 }, { ...REPLY, proto: 1 }, IPS_DST_NAT, 2);

  assert.deepEqual(decodeConntrackEvents(concat(untranslated, udp6, icmp)), [{
    kind: "new",
    id: 9,
    transport: "udp",
    source: { ip: "2001:db8::1", port: 5000 },
    destination: { ip: "2001:db8::2", port: 53 },
    translated: { ip: "fd00::3", port: 5353 },
  }]);
});

Deno.test("decodeConntrackEvents() rejects a message or attribute cut short with a ConntrackDecodeError", () => {
  const whole = message(0, ORIG, REPLY, IPS_DST_NAT, 1);
  assert.throws(
    () => decodeConntrackEvents(whole.subarray(0, whole.length - 8)),
    ConntrackDecodeError,
  );
  const lying = whole.slice();
  new DataView(lying.buffer).setUint16(20, 4000, true); // the first attribute's length
  assert.throws(() => decodeConntrackEvents(lying), ConntrackDecodeError);
});

Deno.test("NatTable.lookup() finds an outgoing flow's translation by its socket's ends, only outgoing", () => {
  const table = new NatTable(16);
  table.add(EVENT);

  assert.deepEqual(table.lookup(KEY), { ip: "198.19.0.2", port: 8080 });
  assert.equal(table.lookup({ ...KEY, localPort: 40001 }), undefined);
  assert.equal(table.lookup({ ...KEY, transport: "udp" }), undefined);
  assert.equal(table.lookup({ ...KEY, direction: "incoming" }), undefined);
});

Deno.test("NatTable.lookup() gives a folded client port the translation its destination's entries agree on", () => {
  const table = new NatTable(16);
  table.add(EVENT);
  table.add({ ...EVENT, id: 2, source: { ip: "10.0.0.5", port: 40001 } });

  assert.deepEqual(table.lookup({ ...KEY, localPort: 0 }), { ip: "198.19.0.2", port: 8080 });
  assert.deepEqual(table.lookup({ ...KEY, localPort: -1 }), { ip: "198.19.0.2", port: 8080 });

  // A second backend: the folded flow cannot be split between them.
  table.add({
    ...EVENT,
    id: 3,
    source: { ip: "10.0.0.5", port: 40002 },
    translated: { ip: "198.19.0.3", port: 8080 },
  });
  assert.equal(table.lookup({ ...KEY, localPort: -1 }), undefined);
  assert.deepEqual(table.lookup({ ...KEY, localPort: 40002 }), { ip: "198.19.0.3", port: 8080 });
});

Deno.test("NatTable forgets a destroyed translation at the end of the poll, not a newer one of the same flow", () => {
  const table = new NatTable(16);
  table.add(EVENT);
  table.add({ ...EVENT, kind: "destroy" });
  assert.ok(table.lookup(KEY), "still there for the poll that reads the close");
  table.endPoll();
  assert.equal(table.lookup(KEY), undefined);
  assert.equal(table.size, 0);

  // The port reused: the old entry's DESTROY comes after the new entry's NEW.
  table.add({ ...EVENT, id: 5, translated: { ip: "198.19.0.9", port: 8080 } });
  table.add({ ...EVENT, kind: "destroy" });
  table.endPoll();
  assert.deepEqual(table.lookup(KEY), { ip: "198.19.0.9", port: 8080 });
});

Deno.test("NatTable keeps at most maxEntries, forgetting the oldest and counting it", () => {
  const table = new NatTable(16);
  for (let port = 1; port <= 20; port++) {
    table.add({ ...EVENT, id: port, source: { ip: "10.0.0.5", port } });
  }

  assert.equal(table.size, 16);
  assert.equal(table.evicted, 4);
  assert.equal(table.lookup({ ...KEY, localPort: 4 }), undefined);
  assert.ok(table.lookup({ ...KEY, localPort: 5 }));
});

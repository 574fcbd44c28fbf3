/**
 * The `netdrop` set against drops the test makes happen, each count checked against what the
 * kernel's own counters say (/proc/net/snmp, nstat) or against the packets the test sent.
 * Traffic stays on loopback, most of it inside a network namespace the test makes, so
 * iptables rules and the kernel's counters are the test's alone.
 */
import assert from "node:assert/strict";
import type { Collector } from "./_collector.ts";
import { kernelTest } from "./_kernel.ts";
import { freePort, run, startProbe, stopAndRead as stopAndReadRecords } from "./_netflow.ts";

const NEEDS = { objects: ["netdrop"] };
const NS_NEEDS = { ...NEEDS, tools: ["ip", "python3"] };

type Drop = ReturnType<Collector["records"]>[number];

/** A collector running only the netdrop probe, polling every second (and `ephemeral_port`). */
function startNetdrop(
  options: { poll?: string; probe?: string; collapse?: boolean } = {},
): Promise<Collector> {
  return startProbe("netdrop", "drops", options);
}

/** Stops the collector (its last poll takes what is left) and returns its netdrop records. */
function stopAndRead(collector: Collector): Promise<Drop[]> {
  return stopAndReadRecords(collector, "netdrop");
}

/** Packets of the records that match `where` (tag → value). NETDROP_TEST_DEBUG=1 shows them. */
function packets(drops: Drop[], where: Record<string, string>): number {
  return drops
    .filter((d) => Object.entries(where).every(([k, v]) => d.tags[k] === v))
    .reduce((total, d) => {
      if (Deno.env.get("NETDROP_TEST_DEBUG")) console.error(JSON.stringify(d));
      return total + Number(d.fields.packets);
    }, 0);
}

/** Runs `fn` with a new network namespace whose loopback is up; deletes it after. */
async function withNamespace(fn: (ns: string) => Promise<void>): Promise<void> {
  const ns = `nd-${crypto.randomUUID().slice(0, 8)}`;
  await run("ip", ["netns", "add", ns]);
  try {
    await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
    await fn(ns);
  } finally {
    await run("ip", ["netns", "del", ns]).catch(() => {});
  }
}

/** Runs a Python program in `ns`; returns what it printed. */
function python(ns: string, program: string): Promise<string> {
  return run("ip", ["netns", "exec", ns, "python3", "-"], program);
}

/** The kernel's counter `name` of `/proc/net/snmp`'s `Udp:` table, in `ns`. */
async function udpCounter(ns: string, name: string): Promise<number> {
  const lines = (await run("ip", ["netns", "exec", ns, "cat", "/proc/net/snmp"]))
    .split("\n").filter((l) => l.startsWith("Udp: "));
  const names = lines[0].split(/\s+/), values = lines[1].split(/\s+/);
  const at = names.indexOf(name);
  assert.ok(at > 0, `no Udp ${name} in /proc/net/snmp`);
  return Number(values[at]);
}

kernelTest(
  "netdrop: 20 connects to a closed loopback port are 20 NO_SOCKET drops (and 5 on ::1)",
  NEEDS,
  async () => {
    const port = freePort();
    await using collector = await startNetdrop();
    for (let i = 0; i < 20; i++) {
      await assert.rejects(
        Deno.connect({ hostname: "127.0.0.1", port }),
        Deno.errors.ConnectionRefused,
      );
    }
    for (let i = 0; i < 5; i++) {
      await assert.rejects(Deno.connect({ hostname: "::1", port }), Deno.errors.ConnectionRefused);
    }
    const drops = await stopAndRead(collector);
    const where = { transport: "tcp", src_ip: "127.0.0.1", src_port: String(port) };
    assert.equal(packets(drops, { ...where, reason: "NO_SOCKET", direction: "ingress" }), 20);
    // The refusals (resets) reached their sockets: consumed, not dropped.
    assert.equal(packets(drops, where), 20);
    // Bytes from the IP header on, although TCP had pulled it: the same SYN over IPv6 is its
    // 20 more bytes of IP header.
    const sizes = new Map<string, Set<number>>();
    for (const d of drops.filter((d) => d.tags.src_port === String(port))) {
      const set = sizes.get(d.tags.family) ?? new Set();
      set.add(Number(d.fields.bytes) / Number(d.fields.packets));
      sizes.set(d.tags.family, set);
    }
    const [v4Size, v6Size] = ["IPv4", "IPv6"].map((f) => [...sizes.get(f) ?? []]);
    assert.equal(v4Size.length, 1, `one SYN size: ${v4Size}`);
    assert.equal(v6Size[0] - v4Size[0], 20, `IPv4 SYNs ${v4Size}, IPv6 ${v6Size} bytes`);
    assert.ok(v4Size[0] >= 20 + 20, `${v4Size[0]} bytes: IP and TCP headers at least`);
    const v6 = { family: "IPv6", src_ip: "::1", src_port: String(port), dst_ip: "::1" };
    assert.equal(packets(drops, { ...v6, reason: "NO_SOCKET", direction: "ingress" }), 5);
  },
);

kernelTest(
  "netdrop: 200 short connections that close cleanly are no drops (their queues freed at close are teardown)",
  NEEDS,
  async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const served = (async () => {
      for await (const conn of listener) {
        const buf = new Uint8Array(16);
        await conn.read(buf);
        await conn.write(new TextEncoder().encode("ok"));
        conn.close();
      }
    })().catch(() => {});
    await using collector = await startNetdrop();
    for (let i = 0; i < 200; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(new TextEncoder().encode("hi"));
      await conn.read(new Uint8Array(16));
      conn.close();
    }
    const drops = await stopAndRead(collector);
    listener.close();
    await served;
    const mine = drops.filter((d) =>
      d.tags.src_port === String(port) || d.tags.dst_port === String(port)
    );
    assert.deepEqual(mine.map((d) => `${d.tags.reason} ${d.fields.packets}`), []);
  },
);

kernelTest(
  "netdrop: through ephemeral_port, the kernel folds the clients' ports: one series per service port",
  NEEDS,
  async () => {
    // A closed port below every Linux ephemeral range, so that only the client's is folded.
    let port = 0;
    while (!port) {
      const p = 20000 + Math.floor(Math.random() * 10000);
      try {
        Deno.listen({ hostname: "127.0.0.1", port: p }).close();
        port = p;
      } catch { /* in use: another */ }
    }
    await using collector = await startNetdrop({ collapse: true });
    for (let i = 0; i < 20; i++) {
      await assert.rejects(
        Deno.connect({ hostname: "127.0.0.1", port }),
        Deno.errors.ConnectionRefused,
      );
    }
    const drops = await stopAndRead(collector);
    const ours = drops.filter((d) =>
      d.tags.src_port === String(port) && d.tags.reason === "NO_SOCKET"
    );
    assert.equal(packets(ours, {}), 20);
    assert.deepEqual(new Set(ours.map((d) => d.tags.dst_port)), new Set(["*"]));
    assert.ok(ours.length <= 2, `${ours.length} records: at most one per poll`);
  },
);

kernelTest(
  "netdrop: keys beyond max_keys are counted in their reason's bucket, none lost",
  NEEDS,
  async () => {
    const port = freePort();
    // One poll for the whole test: 40 clients' drops, each its own key, into 16 keys.
    await using collector = await startNetdrop({ poll: "60s", probe: "    max_keys: 16" });
    for (let i = 0; i < 40; i++) {
      await assert.rejects(
        Deno.connect({ hostname: "127.0.0.1", port }),
        Deno.errors.ConnectionRefused,
      );
    }
    const drops = await stopAndRead(collector);
    const keyed = packets(drops, { reason: "NO_SOCKET", src_port: String(port) });
    const buckets = drops.filter((d) => d.tags.direction === undefined);
    const inBuckets = packets(buckets, {});
    assert.ok(keyed < 40, `only ${keyed} of 40 had a key of their own`);
    // Other drops on this host may share the buckets: ours are in, at least.
    assert.ok(keyed + packets(buckets, { reason: "NO_SOCKET" }) >= 40);
    const m = /keys_overflowed\{stage=drops\}=(\d+)/.exec(collector.stderr);
    assert.equal(Number(m?.[1]), inBuckets, "keys_overflowed counts the buckets' packets");
  },
);

kernelTest(
  "netdrop: an iptables DROP rule's 30 UDP datagrams are 30 NETFILTER_DROP on that port",
  { ...NS_NEEDS, tools: [...NS_NEEDS.tools, "iptables"] },
  async () => {
    await withNamespace(async (ns) => {
      const port = 40000 + Math.floor(Math.random() * 20000), out = port + 1;
      const drop = (chain: string, port: number) =>
        run("ip", [
          ...["netns", "exec", ns, "iptables", "-A", chain],
          ...["-p", "udp", "--dport", String(port), "-j", "DROP"],
        ]);
      await drop("INPUT", port);
      await drop("OUTPUT", out); // dropped on the way out, in the sender's process
      await using collector = await startNetdrop();
      const pid = await python(
        ns,
        `
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(30):
    s.sendto(b"x" * 100, ("127.0.0.1", ${port}))
for i in range(10):
    try:
        s.sendto(b"x" * 100, ("127.0.0.1", ${out}))
    except PermissionError:  # what a local sender hears of an OUTPUT drop
        pass
print(os.getpid())
`,
      );
      const drops = await stopAndRead(collector);
      // Received: this host's end (src) is the port the datagrams were sent to.
      const on = { transport: "udp", src_port: String(port), dst_ip: "127.0.0.1" };
      assert.equal(packets(drops, { ...on, reason: "NETFILTER_DROP", direction: "ingress" }), 30);
      assert.equal(packets(drops, on), 30);
      // The namespace's inode, which keeps its addresses apart from the host's.
      const netns = await run("ip", [
        "netns",
        "exec",
        ns,
        "stat",
        "-L",
        "-c",
        "%i",
        "/proc/self/ns/net",
      ]);
      assert.equal(packets(drops, { ...on, netns: netns.trim() }), 30);
      const bytes = drops.filter((d) => d.tags.src_port === String(port))
        .reduce((n, d) => n + Number(d.fields.bytes), 0);
      assert.equal(bytes, 30 * (20 + 8 + 100), "bytes from the IP header on");
      // Sent: the peer's port is dst; the sending socket's owner is known.
      const sent = { transport: "udp", dst_port: String(out), reason: "NETFILTER_DROP" };
      assert.equal(packets(drops, { ...sent, direction: "egress", pid: pid.trim() }), 10);
      assert.equal(packets(drops, sent), 10);
    });
  },
);

kernelTest(
  "netdrop: a UDP socket that never reads: SOCKET_RCVBUFF equals the RcvbufErrors delta",
  NS_NEEDS,
  async () => {
    await withNamespace(async (ns) => {
      const port = 40000 + Math.floor(Math.random() * 20000);
      await using collector = await startNetdrop();
      const before = await udpCounter(ns, "RcvbufErrors");
      const pid = await python(
        ns,
        `
import os, socket
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the kernel's minimum
r.bind(("127.0.0.1", ${port}))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(300):
    s.sendto(b"x" * 1000, ("127.0.0.1", ${port}))
print(os.getpid())
`,
      );
      const kernel = await udpCounter(ns, "RcvbufErrors") - before;
      const drops = await stopAndRead(collector);
      const where = { reason: "SOCKET_RCVBUFF", transport: "udp", src_port: String(port) };
      assert.ok(kernel > 100, `the tiny buffer overflowed (RcvbufErrors +${kernel})`);
      assert.equal(packets(drops, where), kernel);
      // The socket was made after the probe started: its owner is known.
      assert.equal(packets(drops, { ...where, pid: pid.trim(), process_name: "python3" }), kernel);
    });
  },
);

kernelTest(
  "netdrop: a listener with backlog 1 flooded with connects: listen overflows counted, at most nstat's",
  { ...NS_NEEDS, tools: [...NS_NEEDS.tools, "iptables", "nstat"] },
  async () => {
    await withNamespace(async (ns) => {
      const port = 40000 + Math.floor(Math.random() * 20000);
      const overflows = async () => {
        const out = await run("ip", [
          "netns",
          "exec",
          ns,
          "nstat",
          "-asz",
          "TcpExtListenOverflows",
        ]);
        return Number(/TcpExtListenOverflows\s+(\d+)/.exec(out)?.[1] ?? 0);
      };
      await using collector = await startNetdrop();
      const before = await overflows();
      // A SYN the full queue refuses is consumed, not dropped: the kernel drops (with a reason)
      // the handshake's last ACK, of a connection it took the SYN of while there was room. So
      // one client's ACK is held back (iptables) while two others fill the queue, then let
      // through with data; then the flood, whose SYNs are refused.
      const holdAck = [
        "OUTPUT",
        "-p",
        "tcp",
        "-s",
        "127.0.0.2",
        "--dport",
        String(port),
        "--tcp-flags",
        "SYN,ACK,FIN,RST",
        "ACK",
        "-j",
        "DROP",
      ];
      await python(
        ns,
        `
import socket, subprocess, time
l = socket.socket()
l.bind(("127.0.0.1", ${port}))
l.listen(1)
subprocess.run(["iptables", "-A", ${holdAck.map((a) => JSON.stringify(a)).join(", ")}], check=True)
late = socket.socket()
late.bind(("127.0.0.2", 0))
late.connect(("127.0.0.1", ${port}))
queued = [socket.create_connection(("127.0.0.1", ${port})) for i in range(2)]
subprocess.run(["iptables", "-D", ${holdAck.map((a) => JSON.stringify(a)).join(", ")}], check=True)
late.send(b"x")
flood = []
for i in range(20):
    c = socket.socket()
    c.setblocking(False)
    c.connect_ex(("127.0.0.1", ${port}))
    flood.append(c)
time.sleep(1)
`,
      );
      const kernel = await overflows() - before;
      const drops = await stopAndRead(collector);
      const ours = packets(drops, {
        reason: "TCP_LISTEN_OVERFLOW",
        transport: "tcp",
        src_port: String(port),
      });
      assert.ok(ours > 0, `listen overflows counted: ${ours} (nstat ${kernel})`);
      assert.ok(ours <= kernel, `${ours} listen-overflow drops, nstat ListenOverflows +${kernel}`);
    });
  },
);

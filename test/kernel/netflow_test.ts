/**
 * The `netflow` set against real traffic, each figure checked against what another tool says
 * of the same sockets: iperf3's own byte counts, `ss -ti`, the kernel's `nstat` counters, and
 * datagrams of sizes the test chose. All traffic stays on loopback or in a network namespace
 * the test makes.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { Collector, tempPipeline } from "./_collector.ts";
import { kernelTest } from "./_kernel.ts";
import {
  figure,
  freePort,
  listenLoopback,
  NEEDS,
  run,
  startNetflow,
  stopAndRead,
  sum,
  summaryCounter,
  vethNamespace,
} from "./_netflow.ts";

// ---------------------------------------------------------------------------------------------
// iperf3: bytes within 1% of iperf3's own counts, both ends, both directions, v4 and v6.

for (const family of ["IPv4", "IPv6"] as const) {
  kernelTest(
    `netflow: iperf3 TCP ${family} bytes match iperf3's counts on both ends, with pids and direction`,
    { ...NEEDS, tools: ["iperf3"] },
    async () => {
      const host = family === "IPv4" ? "127.0.0.1" : "::1";
      await using collector = await startNetflow();
      const results: { reverse: boolean; report: IperfReport; client: number; server: number }[] =
        [];
      for (const reverse of [false, true]) {
        const port = freePort();
        const server = new Deno.Command("iperf3", {
          args: ["-s", "-1", "-p", String(port), "-B", host],
          stdout: "null",
          stderr: "null",
        }).spawn();
        // No probe connection: iperf3 -s -1 would take it for the test. Retry until it listens.
        let client!: Deno.ChildProcess, out!: Deno.CommandOutput;
        for (let attempt = 0; attempt < 50; attempt++) {
          await new Promise((r) => setTimeout(r, 100));
          client = new Deno.Command("iperf3", {
            args: ["-c", host, "-p", String(port), "-t", "5", "-J", ...(reverse ? ["-R"] : [])],
            stdout: "piped",
            stderr: "piped",
          }).spawn();
          out = await client.output();
          if (out.success || !new TextDecoder().decode(out.stdout).includes("refused")) break;
        }
        await server.status;
        assert.ok(out.success, new TextDecoder().decode(out.stdout));
        results.push({
          reverse,
          report: JSON.parse(new TextDecoder().decode(out.stdout)),
          client: client.pid,
          server: server.pid,
        });
      }
      const flows = await stopAndRead(collector);

      for (const { reverse, report, client, server } of results) {
        const stream = report.start.connected[0];
        const sent = report.end.sum_sent.bytes, received = report.end.sum_received.bytes;
        const clientEnd = {
          pid: String(client),
          src_port: String(stream.local_port),
          dst_port: String(stream.remote_port),
          family,
          transport: "tcp",
        };
        const serverEnd = {
          pid: String(server),
          src_port: String(stream.remote_port),
          dst_port: String(stream.local_port),
          family,
          transport: "tcp",
        };
        const what = `${family} ${reverse ? "reverse" : "forward"}`;
        // The sender wrote `sent`; the receiver read `received` (iperf3 -J, both ends' view).
        const [sender, receiver] = reverse ? [serverEnd, clientEnd] : [clientEnd, serverEnd];
        figure(
          `${what} bytes_written vs iperf3 sum_sent`,
          sum(flows, "bytes_written", sender),
          sent,
        );
        figure(
          `${what} bytes_read vs iperf3 sum_received`,
          sum(flows, "bytes_read", receiver),
          received,
        );
        assertWithin(sum(flows, "bytes_written", sender), sent, 0.01, `${what}: sender wrote`);
        assertWithin(sum(flows, "bytes_read", receiver), received, 0.01, `${what}: receiver read`);
        assert.ok(sum(flows, "bytes_written", sender) > 100_000_000, `${what}: real traffic`);
        assert.equal(sum(flows, "tcp_established", { ...clientEnd, direction: "outgoing" }), 1);
        assert.equal(sum(flows, "tcp_established", { ...serverEnd, direction: "incoming" }), 1);
        assert.equal(sum(flows, "tcp_closed", clientEnd), 1, `${what}: client closed`);
        assert.equal(sum(flows, "tcp_closed", serverEnd), 1, `${what}: server closed`);
        for (
          const f of flows.filter((f) =>
            f.tags.src_port === clientEnd.src_port && f.tags.pid === clientEnd.pid
          )
        ) {
          assert.equal(f.tags.direction, "outgoing", `${what}: client side`);
          assert.equal(f.tags.src_ip_type, "loopback");
          assert.equal(f.tags.process_name, "iperf3");
        }
      }
    },
  );
}

interface IperfReport {
  start: { connected: { local_port: number; remote_port: number }[] };
  end: { sum_sent: { bytes: number }; sum_received: { bytes: number } };
}

function assertWithin(actual: number, expected: number, fraction: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= expected * fraction,
    `${what}: ${actual} bytes, expected ${expected} within ${fraction * 100}%`,
  );
}

// ---------------------------------------------------------------------------------------------
// Short connections: every handshake and close counted once; the client's port collapsed.

kernelTest(
  "netflow: 200 short TCP connections give exactly 200 established and 200 closed per side",
  NEEDS,
  async () => {
    const { listener, port } = listenLoopback();
    const served = (async () => {
      for await (const conn of listener) {
        const buf = new Uint8Array(64);
        const n = await conn.read(buf);
        if (n) await conn.write(buf.subarray(0, n));
        conn.close();
      }
    })();
    await using collector = await startNetflow({ collapse: true });
    for (let i = 0; i < 200; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(new TextEncoder().encode("ping"));
      await conn.read(new Uint8Array(64));
      conn.close();
    }
    const flows = await stopAndRead(collector);
    listener.close();
    await served.catch(() => {});

    const pid = String(Deno.pid);
    const client = { pid, dst_port: String(port), direction: "outgoing", transport: "tcp" };
    const server = { pid, src_port: String(port), direction: "incoming", transport: "tcp" };
    assert.equal(sum(flows, "tcp_established", client), 200);
    assert.equal(sum(flows, "tcp_closed", client), 200);
    assert.equal(sum(flows, "tcp_established", server), 200);
    assert.equal(sum(flows, "tcp_closed", server), 200);
    assert.equal(sum(flows, "bytes_written", client), 800);
    assert.equal(sum(flows, "bytes_read", client), 800);
    assert.equal(sum(flows, "bytes_read", server), 800);
    // The process's name, not the name of the thread that made the call (tokio-runtime-w).
    for (const f of flows.filter((f) => f.tags.pid === pid)) {
      assert.equal(f.tags.process_name, "deno");
    }
    // Outgoing: our ephemeral port is `*`; incoming: the remote client's port is.
    const clientRows = flows.filter((f) => f.tags.dst_port === String(port));
    assert.ok(clientRows.length > 0);
    for (const f of clientRows) assert.equal(f.tags.src_port, "*");
    for (const f of flows.filter((f) => f.tags.src_port === String(port))) {
      assert.equal(f.tags.dst_port, "*");
    }
  },
);

kernelTest(
  "netflow: closes summed in the kernel with the client port folded give the windows of one record per close",
  NEEDS,
  async () => {
    const { listener, port } = listenLoopback();
    const served = (async () => {
      for await (const conn of listener) {
        const n = await conn.read(new Uint8Array(64));
        if (n) await conn.write(new Uint8Array(n * 10));
        conn.close();
      }
    })();
    // (The windows leave out the pid: a poll can find an accepted socket before the server
    // touched it, pid unknown, in one probe and not the other.)
    // Two probes on the same connections: `folded`'s path lets the kernel fold the client port
    // (ephemeral_port first); `each`'s does not (a filter first may read ports), so its closes
    // come one per socket and ephemeral_port folds them after.
    const window = (name: string) => `
  ${name}_window:
    inputs: [${name}_ports]
    every: 1h
    group_by: [direction, dst_ip, dst_port, family, src_ip, src_port, transport]
    fields:
      bytes_read: { from: bytes_read, agg: sum }
      bytes_written: { from: bytes_written, agg: sum }
      tcp_established: { from: tcp_established, agg: sum }
      tcp_closed: { from: tcp_closed, agg: sum }
      rtt: { from: rtt_sum, agg: mean, per: rtt_samples }
      rtt_var: { from: rtt_var_sum, agg: mean, per: rtt_samples }`;
    await using collector = new Collector([
      "--pipeline",
      tempPipeline(`version: 1
probes:
  folded: { type: netflow, poll: 1s }
  each: { type: netflow, poll: 1s }
transforms:
  folded_ports: { type: ephemeral_port, inputs: [folded] }
  each_all: { type: filter, inputs: [each], keep: { tag: transport, in: [tcp, udp] } }
  each_ports: { type: ephemeral_port, inputs: [each_all] }
  folded_via: { type: tags, inputs: [folded_window], add: { via: kernel } }
  each_via: { type: tags, inputs: [each_window], add: { via: records } }
  folded_raw: { type: tags, inputs: [folded_ports], add: { raw: kernel } }
  each_raw: { type: tags, inputs: [each_ports], add: { raw: records } }
windows:${window("folded")}${window("each")}
outputs:
  out: { type: stdout, inputs: [folded_raw, each_raw, folded_via, each_via], format: json }
`),
    ]);
    await collector.attached();
    for (let i = 0; i < 300; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(new Uint8Array(1 + (i % 7)));
      await conn.read(new Uint8Array(128));
      conn.close();
    }
    await new Promise((r) => setTimeout(r, 1500)); // the last closes reach a poll
    await collector.stop("SIGINT");
    listener.close();
    await served.catch(() => {});

    const ours = (via: string) =>
      collector.records()
        .filter((r) =>
          r.tags.via === via && r.tags.dst_ip === "127.0.0.1" &&
          (r.tags.dst_port === String(port) || r.tags.src_port === String(port))
        )
        .map((r) => {
          const { via: _via, ...tags } = r.tags;
          return JSON.stringify([tags, r.fields]);
        })
        .sort();
    const folded = ours("kernel"), each = ours("records");
    assert.equal(folded.length, 2, folded.join("\n")); // the client's row and the server's
    assert.deepEqual(folded, each);
    const [client] = folded.filter((r) => r.includes(`"dst_port":"${port}"`));
    assert.match(client, /"tcp_established":300,"tcp_closed":300/);
    // What the probes emitted: the kernel's sums, against a record per closing socket.
    const emitted = (raw: string) =>
      collector.records().filter((r) =>
        r.tags.raw === raw && (r.tags.dst_port === String(port) || r.tags.src_port === String(port))
      ).length;
    assert.ok(
      emitted("kernel") * 20 < emitted("records"),
      `${emitted("kernel")} vs ${emitted("records")}`,
    );
    assert.match(collector.stderr, /ports_collapsed\{stage=folded\}=(6\d\d|[7-9]\d\d)\b/);
  },
);

// ---------------------------------------------------------------------------------------------
// UDP: exact bytes for datagrams of known sizes, peers from unconnected sockets.

for (const family of ["IPv4", "IPv6"] as const) {
  kernelTest(
    `netflow: UDP ${family} datagrams of known sizes give exact byte counts on both ends`,
    NEEDS,
    async () => {
      const host = family === "IPv4" ? "127.0.0.1" : "::1";
      const type = family === "IPv4" ? "udp4" : "udp6";
      const serverPort = 20000 + Math.floor(Math.random() * 5000);
      const server = dgram.createSocket(type);
      let received = 0;
      server.on("message", () => received++);
      await new Promise<void>((r) => server.bind(serverPort, host, r));
      await using collector = await startNetflow();
      const client = dgram.createSocket(type);
      const sizes = Array.from({ length: 50 }, (_, i) => 1 + i * 37); // 1..1814 bytes
      for (const size of sizes) {
        await new Promise<void>((r, j) =>
          client.send(new Uint8Array(size), serverPort, host, (e) => e ? j(e) : r())
        );
      }
      const deadline = Date.now() + 5000;
      while (received < sizes.length && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const clientPort = String(client.address().port);
      const flows = await stopAndRead(collector);
      client.close();
      server.close();

      const total = sizes.reduce((a, b) => a + b, 0);
      const pid = String(Deno.pid);
      const out = { pid, src_port: clientPort, dst_port: String(serverPort), dst_ip: host };
      const into = { pid, src_port: String(serverPort), dst_port: clientPort, dst_ip: host };
      assert.equal(received, sizes.length, "every datagram arrived");
      assert.equal(sum(flows, "bytes_written", { ...out, transport: "udp", family }), total);
      assert.equal(sum(flows, "bytes_read", { ...into, transport: "udp", family }), total);
      for (const f of flows.filter((f) => f.tags.src_port === clientPort)) {
        assert.equal(f.tags.direction, "outgoing", "the client's port was the kernel's choice");
        // No TCP fields; cgroup_id (the socket's cgroup v2 id) is on every flow.
        assert.deepEqual(Object.keys(f.fields).sort(), [
          "bytes_read",
          "bytes_written",
          "cgroup_id",
        ]);
      }
      for (const f of flows.filter((f) => f.tags.src_port === String(serverPort))) {
        assert.equal(f.tags.direction, "incoming", "the server bound its port");
        assert.equal(f.tags.src_ip, host);
      }
    },
  );
}

// Connected UDP sockets count in their own storage (no per-datagram hash): read by the iterator
// each poll, and by the sock_release hook when one closes between polls. Reconnecting sends the
// rest to the hash under the new peer. Python makes the sockets: Deno's node:dgram connect()
// still sends with an address (sendto), which the kernel treats as unconnected.

const CONNECTED_UDP = `
import json, socket, sys
def bound():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s
a, b, c = bound(), bound(), bound()
port = lambda s: s.getsockname()[1]
c.connect(("127.0.0.1", port(a)))
a.connect(("127.0.0.1", port(c)))
for n in (1, 64, 500, 1400): c.send(bytes(n)); a.recv(2000)
for n in (3, 77, 1000): a.send(bytes(n)); c.recv(2000)
c.connect(("127.0.0.1", port(b)))
for n in (10, 20): c.send(bytes(n)); b.recvfrom(2000)
print(json.dumps({"client": port(c), "a": port(a), "b": port(b)}), flush=True)
c.close()
sys.stdin.readline()  # a and b stay open until the collector has stopped
`;

kernelTest(
  "netflow: connected UDP sockets give exact byte counts, a socket closed between polls included",
  { ...NEEDS, tools: ["python3"] },
  async () => {
    // A long poll: the only read is the one at shutdown, after the client closed.
    await using collector = await startNetflow({ poll: "10m" });
    const py = new Deno.Command("python3", {
      args: ["-c", CONNECTED_UDP],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const reader = py.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let line = "";
    while (!line.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      line += value;
    }
    const ports = JSON.parse(line) as { client: number; a: number; b: number };
    const flows = await stopAndRead(collector);
    const writer = py.stdin.getWriter();
    await writer.write(new TextEncoder().encode("\n"));
    await writer.close();
    await reader.cancel();
    await py.status;

    const total = (sizes: number[]) => sizes.reduce((a, b) => a + b, 0);
    const udp = { pid: String(py.pid), transport: "udp", family: "IPv4" };
    const [client, a, b] = [ports.client, ports.a, ports.b].map(String);
    const clientToA = { ...udp, src_port: client, dst_port: a };
    const aToClient = { ...udp, src_port: a, dst_port: client };
    assert.equal(sum(flows, "bytes_written", clientToA), total([1, 64, 500, 1400]), "client");
    assert.equal(sum(flows, "bytes_read", clientToA), total([3, 77, 1000]), "client, read");
    assert.equal(sum(flows, "bytes_read", aToClient), total([1, 64, 500, 1400]), "server");
    assert.equal(sum(flows, "bytes_written", aToClient), total([3, 77, 1000]), "server, sent");
    assert.equal(sum(flows, "bytes_written", { ...udp, src_port: client, dst_port: b }), 30);
    assert.equal(sum(flows, "bytes_read", { ...udp, src_port: b, dst_port: client }), 30);
    for (const f of flows.filter((f) => f.tags.pid === udp.pid)) {
      assert.equal(f.tags.process_name, "python3");
      assert.deepEqual(Object.keys(f.fields).sort(), ["bytes_read", "bytes_written", "cgroup_id"]);
    }
  },
);

// ---------------------------------------------------------------------------------------------
// RTT: the same socket's TCP_INFO, read by `ss -ti` while idle, right before the last poll.

kernelTest("netflow: rtt and rtt_var match ss -ti for the same idle socket", {
  ...NEEDS,
  tools: ["ss"],
}, async () => {
  const { listener, port } = listenLoopback();
  // A long poll: the only read is the one at shutdown, after ss has looked.
  await using collector = await startNetflow({ poll: "10m" });
  const client = await Deno.connect({ hostname: "127.0.0.1", port });
  const accepted = await listener.accept();
  const block = new Uint8Array(256 * 1024);
  for (let i = 0; i < 20; i++) {
    await client.write(block);
    let got = 0;
    while (got < block.length) got += (await accepted.read(block)) ?? 0;
  }
  await new Promise((r) => setTimeout(r, 200)); // idle: the last ACKs are in
  const local = String((client.localAddr as Deno.NetAddr).port);
  const ss = await run("ss", ["-tinH", "state", "established", `( sport = :${local} )`]);
  const m = /\brtt:([\d.]+)\/([\d.]+)/.exec(ss);
  assert.ok(m, `no rtt in ss output: ${ss}`);
  const flows = await stopAndRead(collector);
  client.close();
  accepted.close();
  listener.close();

  const rows = flows.filter((f) =>
    f.tags.src_port === local && f.tags.dst_port === String(port) && f.tags.pid === String(Deno.pid)
  );
  assert.equal(rows.length, 1, JSON.stringify(rows));
  const [rtt, rttVar] = [Number(m[1]) * 1000, Number(m[2]) * 1000]; // ss prints ms
  const tolerance = (v: number) => Math.max(v * 0.1, 50);
  figure("rtt µs vs ss", Number(rows[0].fields.rtt), rtt);
  figure("rtt_var µs vs ss", Number(rows[0].fields.rtt_var), rttVar);
  assert.ok(
    Math.abs(Number(rows[0].fields.rtt) - rtt) <= tolerance(rtt),
    `${rows[0].fields.rtt} vs ss ${rtt}`,
  );
  assert.ok(
    Math.abs(Number(rows[0].fields.rtt_var) - rttVar) <= tolerance(rttVar),
    `${rows[0].fields.rtt_var} vs ss ${rttVar}`,
  );
  assert.equal(rows[0].fields.bytes_written, 20 * block.length);
});

// ---------------------------------------------------------------------------------------------
// What was there before the collector: a listener, and a connection with bytes already sent.

kernelTest(
  "netflow: a listener and a connection opened before the collector are incoming, bytes from the start",
  NEEDS,
  async () => {
    const { listener, port } = listenLoopback();
    const early = await Deno.connect({ hostname: "127.0.0.1", port });
    const earlyServer = await listener.accept();
    await early.write(new Uint8Array(1000));
    await earlyServer.read(new Uint8Array(4096));

    await using collector = await startNetflow();
    await early.write(new Uint8Array(500));
    let got = 0;
    while (got < 500) got += (await earlyServer.read(new Uint8Array(4096))) ?? 0;
    const late = await Deno.connect({ hostname: "127.0.0.1", port });
    const lateServer = await listener.accept();
    await late.write(new Uint8Array(300));
    await lateServer.read(new Uint8Array(4096));
    await new Promise((r) => setTimeout(r, 1500)); // one poll
    const flows = await stopAndRead(collector);
    for (const c of [early, earlyServer, late, lateServer]) c.close();
    listener.close();

    const earlyPort = String((early.localAddr as Deno.NetAddr).port);
    const latePort = String((late.localAddr as Deno.NetAddr).port);
    const pid = String(Deno.pid);
    const serverSide = (peer: string) => ({ pid, src_port: String(port), dst_port: peer });
    assert.equal(
      sum(flows, "bytes_read", { ...serverSide(earlyPort), direction: "incoming" }),
      1500,
    );
    assert.equal(
      sum(flows, "bytes_written", { pid, src_port: earlyPort, direction: "outgoing" }),
      1500,
    );
    assert.equal(
      sum(flows, "tcp_established", { pid, src_port: earlyPort }),
      0,
      "handshake not seen",
    );
    assert.equal(sum(flows, "bytes_read", { ...serverSide(latePort), direction: "incoming" }), 300);
    assert.equal(sum(flows, "tcp_established", serverSide(latePort)), 1);
    for (const f of flows.filter((f) => f.tags.src_port === String(port))) {
      assert.equal(f.tags.direction, "incoming");
      assert.equal(f.tags.pid, String(Deno.pid));
    }
  },
);

// ---------------------------------------------------------------------------------------------
// Full maps: counted, reported, and the collector goes on.

kernelTest(
  "netflow: UDP flows beyond the map are counted as dropped, not fatal; TCP sockets have no cap",
  NEEDS,
  async () => {
    const { listener, port } = listenLoopback();
    const accepted: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const c of listener) accepted.push(c);
    })();
    // max_sockets is deprecated: TCP sockets live in socket storage, which has no cap.
    await using collector = await startNetflow({
      probe: "    max_sockets: 16\n    max_udp_flows: 16",
    });
    const conns = await Promise.all(
      Array.from({ length: 40 }, () => Deno.connect({ hostname: "127.0.0.1", port })),
    );
    const server = dgram.createSocket("udp4");
    await new Promise<void>((r) => server.bind(0, "127.0.0.1", r));
    const senders = Array.from({ length: 40 }, () => dgram.createSocket("udp4"));
    for (const s of senders) {
      await new Promise<void>((r) => s.send("x", server.address().port, "127.0.0.1", () => r()));
    }
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(collector.stdout.length > 0, "still emitting records");
    const flows = await stopAndRead(collector);
    for (const c of [...conns, ...accepted]) c.close();
    for (const s of [...senders, server]) s.close();
    listener.close();
    await accepting.catch(() => {});

    assert.equal(summaryCounter(collector, "sockets_full"), 0);
    assert.ok(summaryCounter(collector, "tracked_tcp_sockets") >= 80, "40 connections, 2 ends");
    const pid = String(Deno.pid);
    assert.equal(
      new Set(
        flows.filter((f) => f.tags.pid === pid && f.tags.dst_port === String(port))
          .map((f) => f.tags.src_port),
      ).size,
      40,
      "every connection reported",
    );
    assert.match(collector.stderr, /max_sockets: is deprecated and ignored/);
    assert.ok(summaryCounter(collector, "flows_full") > 0, "flows_full counted");
    assert.ok(flows.some((f) => f.tags.transport === "udp"), "the flows that fit are reported");
  },
);

// ---------------------------------------------------------------------------------------------
// Retransmits: a lossy link into a namespace, against the kernel's own TcpRetransSegs.

const NS_NEEDS = { ...NEEDS, tools: ["ip", "iptables", "iperf3", "nstat", "ss"] };

kernelTest(
  "netflow: retransmits over a lossy veth match nstat's TcpRetransSegs within 5%",
  NS_NEEDS,
  async () => {
    const [hostIp, nsIp] = ["198.19.213.1", "198.19.213.2"]; // in 198.18.0.0/15: never a real network
    await using veth = await vethNamespace("nf", hostIp, nsIp);
    const ns = veth.ns;
    try {
      // Drop 3% of the data segments reaching the namespace: the host side retransmits.
      const port = 5201 + Math.floor(Math.random() * 500);
      await run("ip", [
        "netns",
        "exec",
        ns,
        "iptables",
        "-A",
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        String(port),
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        "0.03",
        "-j",
        "DROP",
      ]);
      const server = new Deno.Command("ip", {
        args: ["netns", "exec", ns, "iperf3", "-s", "-1", "-p", String(port)],
        stdout: "null",
        stderr: "null",
      }).spawn();
      await new Promise((r) => setTimeout(r, 300));

      await using collector = await startNetflow();
      const before = retransSegs(await run("nstat", ["-asz", "TcpRetransSegs"]));
      const child = new Deno.Command("iperf3", {
        args: ["-c", nsIp, "-p", String(port), "-t", "3", "-J"],
        stdout: "piped",
      }).spawn();
      const client = await child.output();
      const after = retransSegs(await run("nstat", ["-asz", "TcpRetransSegs"]));
      await server.status;
      assert.ok(client.success, new TextDecoder().decode(client.stdout));
      const flows = await stopAndRead(collector);

      const kernel = after - before;
      // This run's client only: a socket of an earlier run may linger (LAST_ACK) to that address.
      const ours = sum(flows, "retransmits", { pid: String(child.pid), dst_ip: nsIp });
      figure("retransmits vs nstat TcpRetransSegs", ours, kernel);
      assert.ok(kernel > 20, `the lossy link made retransmits (${kernel})`);
      assert.ok(
        Math.abs(ours - kernel) <= kernel * 0.05,
        `netflow retransmits ${ours}, nstat TcpRetransSegs delta ${kernel}`,
      );
    } finally {
      // Let the client's last data through before the peer goes, or its socket lingers for
      // minutes retransmitting to nobody (and the next run would see it).
      await run("ip", ["netns", "exec", ns, "iptables", "-F"]).catch(() => {});
      for (let i = 0; i < 50; i++) {
        const open = await run("ss", ["-Htn", "dst", nsIp]).catch(() => "");
        if (!open.split("\n").some((l) => l && !l.startsWith("TIME-WAIT"))) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  },
);

function retransSegs(nstat: string): number {
  const m = /TcpRetransSegs\s+(\d+)/.exec(nstat);
  assert.ok(m, `no TcpRetransSegs in: ${nstat}`);
  return Number(m[1]);
}

// ---------------------------------------------------------------------------------------------
// Exclusions happen in the kernel: excluded flows never show up, the rest do.

kernelTest(
  "netflow: exclude_ports and exclude_cidrs keep flows out, others still counted",
  NEEDS,
  async () => {
    const [excludedPort, keptPort] = [21000, 21001].map((p) =>
      p + Math.floor(Math.random() * 900) * 2
    );
    const servers = await Promise.all([excludedPort, keptPort].map(async (port) => {
      const s = dgram.createSocket("udp4");
      await new Promise<void>((r) => s.bind(port, "127.0.0.1", r));
      return s;
    }));
    const v6 = Deno.listen({ hostname: "::1", port: 0 });
    await using collector = await startNetflow({
      probe: `    exclude_ports: [${excludedPort}]\n    exclude_cidrs: ["::1/128"]`,
    });
    const client = dgram.createSocket("udp4");
    for (const port of [excludedPort, keptPort]) {
      await new Promise<void>((r) =>
        client.send(new Uint8Array(100), port, "127.0.0.1", () => r())
      );
    }
    const conn = await Deno.connect({ hostname: "::1", port: (v6.addr as Deno.NetAddr).port });
    const accepted = await v6.accept();
    await conn.write(new Uint8Array(10));
    await accepted.read(new Uint8Array(64));
    await new Promise((r) => setTimeout(r, 200));
    const flows = await stopAndRead(collector);
    for (const c of [conn, accepted, v6]) c.close();
    for (const s of [client, ...servers]) s.close();

    const pid = String(Deno.pid);
    assert.equal(sum(flows, "bytes_written", { pid, dst_port: String(keptPort) }), 100);
    assert.equal(
      flows.filter((f) => [f.tags.src_port, f.tags.dst_port].includes(String(excludedPort))).length,
      0,
    );
    assert.equal(flows.filter((f) => f.tags.pid === pid && f.tags.family === "IPv6").length, 0);
  },
);

kernelTest(
  "netflow: a reload that changes exclude_ports applies in place, probe still attached",
  NEEDS,
  async () => {
    const [a, b] = [22000, 22001].map((p) => p + Math.floor(Math.random() * 900) * 2);
    const servers = await Promise.all([a, b].map(async (port) => {
      const s = dgram.createSocket("udp4");
      await new Promise<void>((r) => s.bind(port, "127.0.0.1", r));
      return s;
    }));
    const pipeline = (excluded: number) =>
      `version: 1
probes:
  flows:
    type: netflow
    poll: 1s
    exclude_ports: [${excluded}]
outputs:
  out:
    type: stdout
    inputs: [flows]
    format: json
`;
    const file = tempPipeline(pipeline(a));
    await using collector = new Collector(["--pipeline", file]);
    await collector.attached();
    const client = dgram.createSocket("udp4");
    const sendBoth = async (size: number) => {
      for (const port of [a, b]) {
        await new Promise<void>((r) =>
          client.send(new Uint8Array(size), port, "127.0.0.1", () => r())
        );
      }
    };
    await sendBoth(100);
    Deno.writeTextFileSync(file, pipeline(b));
    collector.signal("SIGHUP");
    await collector.waitFor("the reload", () => collector.stderr.includes("reloaded"));
    await sendBoth(10);
    const flows = await stopAndRead(collector);
    for (const s of [client, ...servers]) s.close();

    assert.match(collector.stderr, /kept 2 \(flows reconfigured\), started 0/);
    const pid = String(Deno.pid);
    assert.equal(
      sum(flows, "bytes_written", { pid, dst_port: String(a) }),
      10,
      "a: after the reload only",
    );
    assert.equal(
      sum(flows, "bytes_written", { pid, dst_port: String(b) }),
      100,
      "b: before it only",
    );
  },
);

kernelTest(
  "netflow: closes neither the closed-flows map nor the ring buffer can hold are counted as ring_lost, none vanish",
  NEEDS,
  async () => {
    const { listener, port } = listenLoopback();
    const served = (async () => {
      for await (const conn of listener) conn.close();
    })();
    // 16 flows summed in the kernel (each connection is a flow: no port folded here), the
    // smallest ring (4 KiB: 32 close records), and a reader that is frozen while 150
    // connections (300 closing sockets) come and go.
    await using collector = await startNetflow({
      poll: "10m",
      probe: "    max_closed_flows: 16\n    ring_buffer_size: 4KiB",
    });
    collector.signal("SIGSTOP");
    try {
      for (let i = 0; i < 150; i++) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        await conn.read(new Uint8Array(1)); // the server's close
        conn.close();
      }
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      collector.signal("SIGCONT");
    }
    const flows = await stopAndRead(collector);
    listener.close();
    await served.catch(() => {});

    const pid = String(Deno.pid);
    const closed = sum(flows, "tcp_closed", { pid, dst_port: String(port) }) +
      sum(flows, "tcp_closed", { pid, src_port: String(port) });
    const lost = summaryCounter(collector, "ring_lost");
    figure("closes delivered + ring_lost vs closing sockets", closed + lost, 300);
    assert.ok(summaryCounter(collector, "closes_via_ring") > 0, "closed_flows overflowed");
    assert.ok(lost > 0, "the ring overflowed");
    assert.ok(closed < 300 && closed > 0, `${closed} closes delivered`);
    // Every close is either delivered or counted (other processes' closes may add to lost).
    assert.ok(closed + lost >= 300, `${closed} delivered + ${lost} lost < 300`);
    assert.match(collector.stderr, /events lost \(ring buffer full/);
  },
);

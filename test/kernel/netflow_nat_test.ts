/**
 * netflow's `dst_nat_ip`/`dst_nat_port` from conntrack's events: a DNAT rule in the host's
 * OUTPUT chain sends a virtual address's connections to a server in a namespace the test
 * makes (198.18.0.0/15 only; rule, route, link and namespace removed however the test ends).
 */
import assert from "node:assert/strict";
import { endpointSlice, service, startStandIn } from "../kubernetes/_api_server.ts";
import { Collector, tempPipeline } from "./_collector.ts";
import { kernelTest } from "./_kernel.ts";
import {
  type Flow,
  NEEDS,
  run,
  stopAndRead,
  sum,
  summaryCounter,
  vethNamespace,
} from "./_netflow.ts";

/** Accepts connections one at a time and reads each to its end. */
const SERVER = `
import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])), backlog=256)
while True:
    conn, _ = server.accept()
    while conn.recv(65536):
        pass
    conn.close()
`;

interface Dnat {
  virtual: string;
  server: string;
}

/** The namespace, veth pair, DNAT rule and server; `fn` runs with them, then all goes. */
async function withDnat(fn: (dnat: Dnat) => Promise<void>): Promise<void> {
  const net = 100 + Math.floor(Math.random() * 100);
  const dnat = { virtual: `198.18.${net}.77`, server: `198.19.${net}.2` };
  const rule = [
    "-t",
    "nat",
    "OUTPUT",
    "-d",
    `${dnat.virtual}/32`,
    "-p",
    "tcp",
    "--dport",
    "80",
    "-j",
    "DNAT",
    "--to-destination",
    `${dnat.server}:8080`,
  ];
  const ruleWith = (op: string) => [rule[0], rule[1], op, ...rule.slice(2)];
  await using veth = await vethNamespace("nat", `198.19.${net}.1`, dnat.server);
  let server: Deno.ChildProcess | undefined;
  try {
    // The virtual address routes to the test's link: nothing of it can leave the host.
    await run("ip", ["route", "add", `${dnat.virtual}/32`, "dev", veth.hostIf]);
    await run("iptables", ruleWith("-A"));
    server = new Deno.Command("ip", {
      args: ["netns", "exec", veth.ns, "python3", "-c", SERVER, dnat.server, "8080"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    for (let i = 0;; i++) {
      try {
        (await Deno.connect({ hostname: dnat.server, port: 8080 })).close();
        break;
      } catch (e) {
        if (i > 50) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await fn(dnat);
  } finally {
    try {
      server?.kill("SIGKILL");
      await server?.status;
    } catch { /* gone */ }
    await run("iptables", ruleWith("-D")).catch(() => {});
  }
}

/** `count` connections from this process to host:port, each writing 100 bytes. */
async function connect(hostname: string, port: number, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const conn = await Deno.connect({ hostname, port });
    await conn.write(new Uint8Array(100));
    conn.close();
  }
}

/** A collector running netflow (and ephemeral_port, so the kernel folds client ports, or not). */
function startCollector(probe: string, collapse: boolean): Collector {
  return new Collector([
    "--pipeline",
    tempPipeline(`version: 1
probes:
  flows: { type: netflow, ${probe} }
transforms:
  merged: { type: ${collapse ? "ephemeral_port" : "filter"}, inputs: [flows]${
      collapse ? "" : ", keep: { tag: transport, equals: tcp }"
    } }
outputs:
  out: { type: stdout, inputs: [merged], format: json }
`),
  ]);
}

function ours(flows: Flow[], where: Record<string, string>): Flow[] {
  return flows.filter((f) =>
    f.tags.pid === String(Deno.pid) && f.tags.direction === "outgoing" &&
    Object.entries(where).every(([k, v]) => f.tags[k] === v)
  );
}

for (const collapse of [true, false]) {
  kernelTest(
    `netflow: 200 connections through DNAT carry the virtual dst_ip and the server's dst_nat_ip/port, direct ones neither (${
      collapse ? "client ports folded in the kernel" : "per client port"
    })`,
    { ...NEEDS, tools: ["ip", "iptables", "python3"] },
    () =>
      withDnat(async ({ virtual, server }) => {
        await using collector = startCollector("poll: 1s", collapse);
        await collector.attached();
        await connect(virtual, 80, 200);
        await connect(server, 8080, 20);
        await new Promise((r) => setTimeout(r, 1500)); // a poll takes the closes
        const flows = await stopAndRead(collector);

        const translated = ours(flows, { dst_ip: virtual, dst_port: "80" });
        const show = JSON.stringify(translated.slice(0, 3));
        assert.equal(sum(translated, "tcp_established", {}), 200, show);
        assert.equal(sum(translated, "tcp_closed", {}), 200, show);
        assert.equal(sum(translated, "bytes_written", {}), 200 * 100, show);
        for (const f of translated) {
          assert.equal(f.tags.dst_nat_ip, server, JSON.stringify(f));
          assert.equal(f.tags.dst_nat_port, "8080", JSON.stringify(f));
        }
        const direct = ours(flows, { dst_ip: server, dst_port: "8080" });
        assert.equal(sum(direct, "tcp_established", {}), 20);
        for (const f of direct) assert.equal(f.tags.dst_nat_ip, undefined, JSON.stringify(f));
        assert.equal(summaryCounter(collector, "nat_overruns"), 0);
      }),
  );
}

kernelTest(
  "netflow: conntrack events a tiny buffer cannot hold are counted as nat_overruns, the flows still whole",
  { ...NEEDS, tools: ["ip", "iptables", "python3"] },
  () =>
    withDnat(async ({ virtual }) => {
      // No poll before the stop: 200 NEW events wait in a buffer of a few.
      await using collector = startCollector("poll: 60s, nat_buffer_size: 1KiB", true);
      await collector.attached();
      await connect(virtual, 80, 200);
      // The server reads each connection to its end: the last closes finish after the loop.
      await new Promise((r) => setTimeout(r, 1000));
      const flows = await stopAndRead(collector);

      assert.ok(summaryCounter(collector, "nat_overruns") > 0, collector.stderr);
      assert.equal(sum(ours(flows, { dst_ip: virtual }), "tcp_established", {}), 200);
    }),
);

kernelTest(
  "netflow + container: a flow to a ClusterIP carries its service, and through NAT the pod that served it (stand-in API server)",
  { ...NEEDS, tools: ["ip", "iptables", "python3"] },
  () =>
    withDnat(async ({ virtual, server }) => {
      // A real API server (with etcd) cannot run here: test/kubernetes/_api_server.ts serves the
      // Services and EndpointSlices lists and watches as the API reference documents them.
      await using standIn = await startStandIn([
        service("shop", "cart", virtual),
        endpointSlice("shop", "cart", [{ name: "cart-7d9f-x2", ip: server }]),
      ]);
      const api = standIn.server;
      await using collector = new Collector([
        "--pipeline",
        tempPipeline(`version: 1
probes:
  flows: { type: netflow, poll: 1s }
transforms:
  remote:
    type: container
    inputs: [flows]
    kubernetes_api: ${api.url}
    kubernetes_token_file: ${standIn.tokenFile}
    kubernetes_ca_file: ${standIn.caFile}
    node_name: node-a
  merged: { type: ephemeral_port, inputs: [remote] }
outputs:
  out: { type: stdout, inputs: [merged], format: json }
`),
      ], [
        `--allow-read=.,/etc/passwd,/bin/bash,/usr/bin/bash,${standIn.tokenFile},${standIn.caFile}`,
        `--allow-net=127.0.0.1:${api.port}`,
      ]);
      await collector.attached();
      // Pods, Services and EndpointSlices listed and watched.
      await collector.waitFor("the watches", () => api.watching >= 3, 10_000);
      await connect(virtual, 80, 20);
      await connect(server, 8080, 5);
      await new Promise((r) => setTimeout(r, 1500));
      const flows = await stopAndRead(collector);

      const remote = (f: Flow) =>
        [f.tags.dst_k8s_namespace, f.tags.dst_k8s_service, f.tags.dst_k8s_pod].join("/");
      const viaService = ours(flows, { dst_ip: virtual });
      assert.equal(sum(viaService, "tcp_established", {}), 20);
      assert.deepEqual(new Set(viaService.map(remote)), new Set(["shop/cart/cart-7d9f-x2"]));
      const toPod = ours(flows, { dst_ip: server });
      assert.equal(sum(toPod, "tcp_established", {}), 5);
      assert.deepEqual(new Set(toPod.map(remote)), new Set(["shop/cart/cart-7d9f-x2"]));
    }),
);

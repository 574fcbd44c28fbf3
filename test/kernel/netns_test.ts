/**
 * `netns` in netflow and dnsflow: flows and requests of network namespaces that share
 * addresses (every pod has its own loopback) stay apart, in the kernel's keys and in the default
 * windows' series. The namespaces are the test's own, removed after it however it ends.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { ROOT } from "../_run_command.ts";
import { Collector, tempPipeline } from "./_collector.ts";
import { kernelTest } from "./_kernel.ts";
import { freePort, NEEDS, run } from "./_netflow.ts";

/** Two namespaces with their loopback up, removed after `fn` however it ends. */
async function withNamespaces(fn: (names: string[], inodes: string[]) => Promise<void>) {
  const id = crypto.randomUUID().slice(0, 6);
  const names = [`nsa-${id}`, `nsb-${id}`];
  try {
    for (const ns of names) {
      await run("ip", ["netns", "add", ns]);
      await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
    }
    await fn(names, names.map((ns) => String(Deno.statSync(`/run/netns/${ns}`).ino)));
  } finally {
    for (const ns of names) await run("ip", ["netns", "del", ns]).catch(() => {});
  }
}

/**
 * The records of a collector on `pipeline` while python3 runs `program` (`-c` and its
 * arguments), after a poll more: the program and the collector must both end well.
 */
async function recordsWhile(pipeline: string, program: string[]) {
  await using collector = new Collector(["--pipeline", tempPipeline(pipeline)]);
  await collector.attached();
  const client = await new Deno.Command("python3", {
    args: ["-c", ...program],
    stderr: "piped",
  }).output();
  assert.ok(client.success, new TextDecoder().decode(client.stderr));
  await new Promise((r) => setTimeout(r, 1500)); // a poll takes the closes and the rows
  const status = await collector.stop("SIGINT");
  assert.equal(status.code, 0, collector.stderr);
  return collector.records();
}

/** Enters a namespace by name (Python 3.11 has no os.setns: libc's, through ctypes). */
const ENTER = `
import ctypes, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
def enter(ns):
    fd = os.open("/run/netns/" + ns, os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), "setns " + ns)
    os.close(fd)
`;

/**
 * One process (so one pid, name and cgroup) that listens on 127.0.0.1:PORT in each namespace
 * named, then in each in turn connects there and writes 1000 × (its position + 1) bytes.
 * Python 3.11 has no os.setns: libc's, through ctypes.
 */
const CLIENT = ENTER + `
port, names = int(sys.argv[1]), sys.argv[2:]
listeners = {}
for ns in names:
    enter(ns)
    listeners[ns] = socket.create_server(("127.0.0.1", port))
for i, ns in enumerate(names):
    enter(ns)
    client = socket.create_connection(("127.0.0.1", port))
    server, _ = listeners[ns].accept()
    client.sendall(b"x" * (1000 * (i + 1)))
    client.shutdown(socket.SHUT_WR)
    got = 0
    while chunk := server.recv(65536):
        got += len(chunk)
    assert got == 1000 * (i + 1), got
    server.close()
    client.close()
`;

/** The default pipeline's netflow window, as pipeline.yaml has it. */
function defaultNetflowGroupBy(): string[] {
  const pipeline = parse(Deno.readTextFileSync(`${ROOT}pipeline.yaml`));
  return pipeline.windows.netflow_per_minute.group_by;
}

kernelTest(
  "netflow: one process's connections to the same loopback port in two namespaces are two netns series",
  { ...NEEDS, tools: ["ip", "python3"] },
  async () => {
    await withNamespaces(async (names, inodes) => {
      const port = freePort();
      // The kernel folds the client's port (ephemeral_port downstream): only netns differs.
      const records = await recordsWhile(
        `version: 1
probes:
  flows: { type: netflow, poll: 1s }
transforms:
  merged: { type: ephemeral_port, inputs: [flows] }
windows:
  per_minute:
    inputs: [merged]
    every: 60s
    group_by: [${defaultNetflowGroupBy().join(", ")}]
    fields:
      bytes_written: { from: bytes_written, agg: sum }
      tcp_closed: { from: tcp_closed, agg: sum }
outputs:
  out: { type: stdout, inputs: [per_minute], format: json }
`,
        [CLIENT, String(port), ...names],
      );
      const series = records.filter((r) =>
        r.measurement === "netflow" && r.tags.direction === "outgoing" &&
        r.tags.dst_port === String(port)
      );
      assert.deepEqual(
        series.map((r) => [r.tags.netns, r.fields.bytes_written, r.fields.tcp_closed]).sort(),
        [[inodes[0], 1000, 1], [inodes[1], 2000, 1]].sort(),
        JSON.stringify(series),
      );
    });
  },
);

/**
 * One process that, in each namespace named, serves DNS on 127.0.0.1:PORT and asks it for
 * a.example (A) once: the same socket pair, DNS id and question in both.
 */
const DNS_CLIENT = ENTER + `
port, names = int(sys.argv[1]), sys.argv[2:]
query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\\x01a\\x07example\\x00" + struct.pack(">HH", 1, 1)
for ns in names:
    enter(ns)
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", port))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 40053))
    client.sendto(query, ("127.0.0.1", port))
    message, peer = server.recvfrom(512)
    server.sendto(message[:2] + struct.pack(">H", 0x8180) + message[4:], peer)
    assert client.recv(512)[:2] == query[:2]
    client.close()
    server.close()
`;

kernelTest(
  "dns: one process's requests on the same loopback socket pair in two namespaces are two netns rows",
  { ...NEEDS, objects: ["dns"], tools: ["ip", "python3"] },
  async () => {
    await withNamespaces(async (names, inodes) => {
      const port = 5300 + Math.floor(Math.random() * 600);
      const records = await recordsWhile(
        `version: 1
probes:
  dns: { type: dns, ports: [${port}], poll: 1s, timeout: 1s }
outputs:
  out: { type: stdout, inputs: [dns], format: json }
`,
        [DNS_CLIENT, String(port), ...names],
      );
      const rows = records.filter((r) =>
        r.measurement === "dnsflow" && r.tags.dst_port === String(port)
      );
      assert.deepEqual(
        rows.map((r) => [r.tags.netns, r.tags.rcode_name, r.fields.count]).sort(),
        [[inodes[0], "NOERROR", 1], [inodes[1], "NOERROR", 1]].sort(),
        JSON.stringify(rows),
      );
    });
  },
);

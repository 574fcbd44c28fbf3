/**
 * netflow's `netns`: flows of network namespaces that share addresses (every pod has its own
 * loopback) stay apart, in the kernel's flow key and in the default windows' series. The
 * namespaces are the test's own, removed after it however it ends.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { ROOT } from "../_run_command.ts";
import { Collector, tempPipeline } from "./_collector.ts";
import { kernelTest } from "./_kernel.ts";
import { freePort, NEEDS, run } from "./_netflow.ts";

/**
 * One process (so one pid, name and cgroup) that listens on 127.0.0.1:PORT in each namespace
 * named, then in each in turn connects there and writes 1000 × (its position + 1) bytes.
 * Python 3.11 has no os.setns: libc's, through ctypes.
 */
const CLIENT = `
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
def enter(ns):
    fd = os.open("/run/netns/" + ns, os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), "setns " + ns)
    os.close(fd)
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
    const id = crypto.randomUUID().slice(0, 6);
    const names = [`nfa-${id}`, `nfb-${id}`];
    try {
      for (const ns of names) {
        await run("ip", ["netns", "add", ns]);
        await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
      }
      const inodes = names.map((ns) => String(Deno.statSync(`/run/netns/${ns}`).ino));
      const port = freePort();
      // The kernel folds the client's port (ephemeral_port downstream): only netns differs.
      await using collector = new Collector([
        "--pipeline",
        tempPipeline(`version: 1
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
`),
      ]);
      await collector.attached();
      const client = await new Deno.Command("python3", {
        args: ["-c", CLIENT, String(port), ...names],
        stderr: "piped",
      }).output();
      assert.ok(client.success, new TextDecoder().decode(client.stderr));
      await new Promise((r) => setTimeout(r, 1500)); // a poll takes the closes
      const status = await collector.stop("SIGINT");
      assert.equal(status.code, 0, collector.stderr);

      const series = collector.records().filter((r) =>
        r.measurement === "netflow" && r.tags.direction === "outgoing" &&
        r.tags.dst_port === String(port)
      );
      assert.deepEqual(
        series.map((r) => [r.tags.netns, r.fields.bytes_written, r.fields.tcp_closed]).sort(),
        [[inodes[0], 1000, 1], [inodes[1], 2000, 1]].sort(),
        JSON.stringify(series),
      );
    } finally {
      for (const ns of names) await run("ip", ["netns", "del", ns]).catch(() => {});
    }
  },
);

/**
 * Container attribution end to end: cgroup v2 directories named as each runtime names its
 * containers' cgroups are made under the real cgroup2 mount, an interactive bash is moved into
 * each (its pid written to cgroup.procs), and there it types a command, opens a TCP connection,
 * sends a UDP datagram and asks a DNS question. The real collector, with a `container` stage
 * after each probe, must tag each record with the container id its directory names; a bash
 * left outside, and the test's own server, get no tag. The cgroups are removed afterwards,
 * whatever happens (processes moved back to the root first).
 */
import assert from "node:assert/strict";
import { cgroupV2Mount } from "../../src/system/cgroup.ts";
import { ContainerResolver, KernelCgroups } from "../../src/system/containers.ts";
import { ROOT } from "../_run_command.ts";
import { pod, running, startStandIn } from "../kubernetes/_api_server.ts";
import { Collector, tempPipeline } from "./_collector.ts";
import { kernelTest } from "./_kernel.ts";
import { BASH, PROMPT, Tmux } from "./_tmux.ts";

const NEEDS = { objects: ["bash", "netflow", "dns"], tools: ["tmux", "dig"] };

function hex64(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Test cgroups under the mount; `dispose` moves their processes to the root and removes them. */
async function testCgroups(mount: string, paths: string[]) {
  const made: string[] = []; // parents before children
  const dispose = async () => {
    for (const dir of [...made].reverse()) {
      try {
        const procs = (await Deno.readTextFile(`${dir}/cgroup.procs`)).split("\n").filter(Boolean);
        for (const pid of procs) {
          await Deno.writeTextFile(`${mount}/cgroup.procs`, pid).catch(() => {}); // exited
        }
        await Deno.remove(dir);
      } catch (e) {
        console.error(`could not remove test cgroup ${dir}: ${e}`);
      }
    }
    made.length = 0; // a second dispose has nothing to do
  };
  try {
    for (const path of paths) {
      let dir = mount;
      for (const part of path.split("/").filter(Boolean)) {
        dir += `/${part}`;
        if (made.includes(dir)) continue;
        await Deno.mkdir(dir);
        made.push(dir);
      }
    }
  } catch (e) {
    await dispose();
    throw e;
  }
  return { [Symbol.asyncDispose]: dispose };
}

kernelTest(
  "container: bash, netflow and dnsflow records of processes in runtime-named cgroups carry their container_id; others none",
  NEEDS,
  async () => {
    const mount = cgroupV2Mount();
    const tag = `ebpf-test-${Deno.pid}`;
    // Each runtime's naming, systemd driver (scopes) and cgroupfs driver (plain directories).
    const containers = [
      { name: "docker", id: hex64(), path: (id: string) => `/${tag}.slice/docker-${id}.scope` },
      { name: "dockerfs", id: hex64(), path: (id: string) => `/${tag}/docker/${id}` },
      {
        name: "containerd",
        id: hex64(),
        path: (id: string) =>
          `/${tag}.slice/${tag}-burstable.slice/${tag}-burstable-pod1.slice/cri-containerd-${id}.scope`,
      },
      { name: "crio", id: hex64(), path: (id: string) => `/${tag}.slice/crio-${id}.scope` },
      // podman runs the container in a sub-cgroup of its scope.
      {
        name: "podman",
        id: hex64(),
        path: (id: string) => `/${tag}.slice/libpod-${id}.scope/container`,
      },
      {
        name: "kubepods",
        id: hex64(),
        path: (id: string) => `/${tag}/kubepods/besteffort/pod6c1e0f2a/${id}`,
      },
    ];
    await using testDirs = await testCgroups(mount, [
      ...containers.map((c) => c.path(c.id)),
      `/${tag}.slice/session-9.scope`, // a cgroup that is no container
    ]);

    const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const tcpPort = server.addr.port;
    const accepting = (async () => {
      for await (const conn of server) {
        conn.readable.pipeTo(new WritableStream()).catch(() => {});
      }
    })();
    const udpPort = tcpPort + 1 < 65535 ? tcpPort + 1 : tcpPort - 1; // nobody needs to listen
    const dnsPort = 5300 + (Deno.pid % 500); // no server: the requests time out, still counted

    const recording = `${ROOT}build/tmp/recording-${tag}.ndjson`;
    const pipeline = tempPipeline(`version: 1
probes:
  bash: { type: bash }
  flows: { type: netflow, poll: 1s }
  dns: { type: dns, ports: [${dnsPort}], timeout: 1s }
transforms:
  bash_c: { type: container, inputs: [bash] }
  flows_c: { type: container, inputs: [flows] }
  dns_c: { type: container, inputs: [dns] }
outputs:
  out: { type: stdout, inputs: [bash_c, flows_c, dns_c], format: json }
`);
    await using collector = new Collector(["--pipeline", pipeline, "--record", recording], [
      `--allow-write=${recording}`,
    ]);
    await using tmux = new Tmux();
    const shells = [
      ...containers.map((c) => ({ ...c, dir: mount + c.path(c.id) })),
      { name: "session", id: undefined, dir: `${mount}/${tag}.slice/session-9.scope` },
      { name: "outside", id: undefined, dir: undefined },
    ];
    const pids = new Map<string, number>();
    for (const s of shells) {
      const pid = await tmux.start(s.name, BASH);
      if (s.dir) await Deno.writeTextFile(`${s.dir}/cgroup.procs`, String(pid));
      await tmux.waitForScreen(s.name, PROMPT);
      pids.set(s.name, pid);
    }
    await collector.attached();

    try {
      for (const s of shells) {
        // A command (bash), a TCP connection and a datagram from bash itself (netflow, the
        // shell's pid), and a DNS question from a child, dig, in the same cgroup (dnsflow).
        await tmux.type(
          s.name,
          `exec 3<>/dev/tcp/127.0.0.1/${tcpPort}; echo ${s.name} >&3; exec 3>&-; ` +
            `echo ${s.name} > /dev/udp/127.0.0.1/${udpPort}; ` +
            `dig +tries=1 +time=1 @127.0.0.1 -p ${dnsPort} ${s.name}.test > /dev/null; ` +
            `echo done-${s.name}`,
        );
      }
      for (const s of shells) await tmux.waitForScreen(s.name, new RegExp(`^done-${s.name}`, "m"));
      await collector.waitFor("every shell's records", () => {
        const records = collector.records();
        return shells.every((s) =>
          records.some((r) => r.measurement === "bash" && String(r.fields.cmd).includes(s.name)) &&
          records.some((r) =>
            r.measurement === "dnsflow" && r.tags.dst_domain === `${s.name}.test`
          ) &&
          ["tcp", "udp"].every((transport) =>
            records.some((r) =>
              r.measurement === "netflow" && r.tags.pid === String(pids.get(s.name)) &&
              r.tags.transport === transport
            )
          )
        );
      }, 20_000);
    } finally {
      server.close();
      await accepting.catch(() => {});
    }
    await collector.stop();

    const records = collector.records();
    for (const s of shells) {
      const pid = String(pids.get(s.name));
      const mine = records.filter((r) =>
        (r.measurement === "bash" && String(r.fields.cmd).includes(`echo ${s.name} >&3`)) ||
        (r.measurement === "netflow" && r.tags.pid === pid) ||
        (r.measurement === "dnsflow" && r.tags.dst_domain === `${s.name}.test`)
      );
      assert.deepEqual(
        [...new Set(mine.map((r) => r.measurement))].sort(),
        ["bash", "dnsflow", "netflow"],
        s.name,
      );
      for (const r of mine) {
        assert.equal(r.tags.container_id, s.id, `${s.name}: ${JSON.stringify(r)}`);
        assert.equal(r.fields.cgroup_id, undefined, "the transform removed cgroup_id");
      }
    }
    // The server's end of every connection: the test process, outside any container.
    const serverSide = records.filter((r) =>
      r.measurement === "netflow" && r.tags.src_port === String(tcpPort)
    );
    assert.ok(serverSide.length >= shells.length, JSON.stringify(serverSide));
    for (const r of serverSide) assert.equal(r.tags.container_id, undefined);

    // The recording kept each container it saw; replayed once the cgroups are gone (as on
    // another host), it tags every record as the collector did.
    await testDirs[Symbol.asyncDispose]();
    try {
      const facts = Deno.readTextFileSync(recording).split("\n")
        .filter((l) => l.startsWith(`{"host_fact":"container"`)).map((l) => JSON.parse(l));
      assert.deepEqual(
        [...new Set(facts.map((f) => f.container_id))].sort(),
        containers.map((c) => c.id).sort(),
      );
      const replay = new Collector(["--pipeline", pipeline, "--replay", recording]);
      const status = await replay.exited();
      assert.equal(status.code, 0, replay.stderr);
      const sorted = (rs: unknown[]) => rs.map((r) => JSON.stringify(r)).sort();
      assert.deepEqual(sorted(replay.records()), sorted(records));
    } finally {
      await Deno.remove(recording).catch(() => {});
    }
  },
);

kernelTest(
  "container: a walk of the cgroup2 mount and open_by_handle_at agree on each cgroup's id and path",
  { objects: [] },
  async () => {
    const mount = cgroupV2Mount();
    const id = hex64();
    const path = `/ebpf-test-${Deno.pid}-walk.slice/libpod-${id}.scope`;
    await using _cgroups = await testCgroups(mount, [path]);
    const inode = BigInt((await Deno.stat(mount + path)).ino!);
    const cgroups = new KernelCgroups(mount);
    try {
      // The directory's inode number is the cgroup id; both ways find its path from it.
      assert.deepEqual([...cgroups.walk()].filter((d) => d.id === inode), [{ id: inode, path }]);
      assert.equal(cgroups.pathOf(inode), path); // as root: CAP_DAC_READ_SEARCH
      const resolver = new ContainerResolver(cgroups, {
        maxEntries: 10,
        rescanIntervalMs: 1000,
        now: () => performance.now(),
      });
      assert.equal(resolver.lookup(inode), id);
    } finally {
      cgroups.close();
    }
  },
);

kernelTest(
  "container: with Kubernetes, a bash in a pod's cri-containerd cgroup gets k8s_namespace, k8s_pod, k8s_container (stand-in API server)",
  { objects: ["bash"], tools: ["tmux"] },
  async () => {
    // A real API server (with etcd) cannot run here: test/kubernetes/_api_server.ts serves the
    // pods list and watch as the Kubernetes API reference documents them, over HTTPS.
    const mount = cgroupV2Mount();
    const id = hex64();
    const tag = `ebpf-test-${Deno.pid}-k8s`;
    const path = `/${tag}.slice/${tag}-pod7f3a.slice/cri-containerd-${id}.scope`;
    await using _cgroups = await testCgroups(mount, [path]);
    await using standIn = await startStandIn([
      pod("shop", "cart-7d9f-x2", "node-a", { containerStatuses: [running("app", id)] }),
    ]);
    const server = standIn.server;
    const pipeline = tempPipeline(`version: 1
probes:
  bash: { type: bash }
transforms:
  pods:
    type: container
    inputs: [bash]
    kubernetes_api: ${server.url}
    kubernetes_token_file: ${standIn.tokenFile}
    kubernetes_ca_file: ${standIn.caFile}
    node_name: node-a
outputs:
  out: { type: stdout, inputs: [pods], format: json }
`);
    // What --explain derives for this pipeline beyond deno task run's own set.
    await using collector = new Collector(["--pipeline", pipeline], [
      `--allow-read=.,/etc/passwd,/bin/bash,/usr/bin/bash,${standIn.tokenFile},${standIn.caFile}`,
      `--allow-net=127.0.0.1:${server.port}`,
    ]);
    await using tmux = new Tmux();
    const pid = await tmux.start("app", BASH);
    await Deno.writeTextFile(`${mount}${path}/cgroup.procs`, String(pid));
    await tmux.waitForScreen("app", PROMPT);
    await collector.attached();
    await collector.waitFor("the pod list", () => server.watching > 0, 10_000);
    await tmux.type("app", "echo in-the-pod");
    await collector.waitFor("the command", () => collector.stdout.includes("in-the-pod"));
    await collector.stop();

    const [r] = collector.records().filter((r) => r.fields.cmd === "echo in-the-pod");
    assert.deepEqual(
      [r.tags.container_id, r.tags.k8s_namespace, r.tags.k8s_pod, r.tags.k8s_container],
      [id, "shop", "cart-7d9f-x2", "app"],
    );
  },
);

/**
 * A replay gives the recording host's output on any machine: the port range in a recording's
 * header and its container and pod facts reach the stages, not the replaying host's. The
 * round trip records through the real Recorder with this host's facts, a cgroup tree standing in
 * for the cgroup v2 mount (a directory's inode number is what the kernel's cgroup id is on
 * cgroup v2; the real mount is exercised in test/kernel/container_test.ts).
 */
import assert from "node:assert/strict";
import { Counters } from "../counters.ts";
import type { Logger } from "../log.ts";
import type { Record } from "../record.ts";
import { liveHostFacts } from "../system/host_facts.ts";
import { ManualClock } from "./clock.ts";
import { type HostFacts, OFFLINE_HOST_FACTS, recordingHostFacts } from "./host_facts.ts";
import { parsePipeline } from "./load.ts";
import { encodeHeader, encodeHostFact, encodeRecorded } from "./recording.ts";
import { Recorder, replayFile } from "./replay.ts";
import { startPipeline } from "./run.ts";

const T0 = 1_767_225_600_000_000_000n; // 2026-01-01T00:00:00Z
const CONTAINER = "4f2a".padEnd(64, "0");

/** netflow -> ephemeral_port (the host's range) -> container -> a file at `${OUT}`. */
const PIPELINE = `version: 1
probes:
  netflow: { type: netflow }
transforms:
  merge_clients: { type: ephemeral_port, inputs: [netflow] }
  containers: { type: container, inputs: [merge_clients], cgroup: "\${CGROUP}" }
outputs:
  out: { type: file, inputs: [containers], path: "\${OUT}", format: json }
`;

function flow(srcPort: number, cgroupId: bigint, i: number): Record {
  return {
    measurement: "netflow",
    tags: {
      host: "h",
      source: "netflow",
      direction: "outgoing",
      src_port: String(srcPort),
      dst_port: "443",
    },
    fields: { bytes_written: 100n, cgroup_id: cgroupId },
    time: T0 + BigInt(i) * 1_000_000_000n,
  };
}

const silent: Logger = { info() {}, warn() {}, debug() {} };

/** Replays `recording` through PIPELINE on a host whose facts are `hostFacts`; the lines out. */
async function replayed(dir: string, recording: string, hostFacts: HostFacts, cluster = false) {
  const out = `${dir}/replayed.jsonl`;
  // With Kubernetes (an API server nothing listens on: a replay asks it nothing).
  const cgroup = "/nonexistent-cgroup2" +
    (cluster ? '", kubernetes_api: "https://127.0.0.1:9' : "");
  const pipeline = parsePipeline(
    "test.yaml",
    PIPELINE.replaceAll("${OUT}", out).replaceAll("${CGROUP}", cgroup),
  );
  const counters = new Counters();
  await replayFile(pipeline, recording, { host: "h", counters, log: silent, hostFacts });
  return { lines: (await Deno.readTextFile(out)).split("\n").filter(Boolean), counters };
}

Deno.test("a replay collapses ports with the range in the recording's header, not this host's", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const recording = `${dir}/r.ndjson`;
    await Deno.writeTextFile(
      recording,
      [
        encodeHeader({ low: 1024, high: 2048 }),
        encodeRecorded("netflow", flow(1500, 7n, 0)),
        encodeRecorded("netflow", flow(40000, 7n, 1)),
      ].join("\n") + "\n",
    );
    // The replaying host's range would collapse 40000 and keep 1500.
    const { lines } = await replayed(dir, recording, OFFLINE_HOST_FACTS);
    const ports = lines.map((l) => JSON.parse(l).tags.src_port);
    assert.deepEqual(ports, ["*", "40000"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a replay tags the containers and pods the recording saw, without this host's cgroups", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const recording = `${dir}/r.ndjson`;
    const pod = { namespace: "shop", pod: "cart-7d9f-x2", container: "app" };
    await Deno.writeTextFile(
      recording,
      [
        encodeHeader({ low: 32768, high: 60999 }),
        encodeRecorded("netflow", flow(80, 4242n, 0)),
        encodeHostFact({ fact: "container", cgroupId: 4242n, containerId: CONTAINER }),
        encodeHostFact({ fact: "pod", containerId: CONTAINER, pod }),
        encodeRecorded("netflow", flow(80, 99n, 1)), // a cgroup outside containers
      ].join("\n") + "\n",
    );
    const { lines, counters } = await replayed(dir, recording, OFFLINE_HOST_FACTS);
    const tags = lines.map((l) => JSON.parse(l).tags);
    // Known from the start: the fact line after the record it was found for still applies.
    assert.equal(tags[0].container_id, CONTAINER);
    assert.deepEqual([tags[0].k8s_namespace, tags[0].k8s_pod, tags[0].k8s_container], [
      "shop",
      "cart-7d9f-x2",
      "app",
    ]);
    assert.equal(tags[1].container_id, undefined);
    // No cgroup mount was read: nothing failed, nothing was walked.
    const count = (name: string) => counters.get(name, { stage: "containers" });
    assert.equal(count("cgroup_scan_errors"), 0n);
    assert.equal(count("cgroup_scans"), 0n);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a replay names remote ends as the recording did: each address's latest identity", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const recording = `${dir}/r.ndjson`;
    const to = (ip: string, natIp: string | undefined, i: number): Record => {
      const r = flow(80, 7n, i);
      return { ...r, tags: { ...r.tags, dst_ip: ip, ...(natIp ? { dst_nat_ip: natIp } : {}) } };
    };
    await Deno.writeTextFile(
      recording,
      [
        encodeHeader({ low: 32768, high: 60999 }),
        encodeHostFact({
          fact: "remote",
          ip: "10.96.4.2",
          remote: { namespace: "shop", service: "cart" },
        }),
        encodeHostFact({
          fact: "remote",
          ip: "10.244.2.9",
          remote: { namespace: "shop", service: "cart", pod: "cart-7d9f-x2" },
        }),
        encodeRecorded("netflow", to("10.96.4.2", "10.244.2.9", 0)),
        encodeRecorded("netflow", to("198.18.0.1", undefined, 1)),
      ].join("\n") + "\n",
    );
    const { lines } = await replayed(dir, recording, OFFLINE_HOST_FACTS, true);
    const remote = lines.map((l) => JSON.parse(l).tags).map((
      t,
    ) => [t.dst_k8s_namespace, t.dst_k8s_service, t.dst_k8s_pod]);
    assert.deepEqual(remote, [["shop", "cart", "cart-7d9f-x2"], [undefined, undefined, undefined]]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("recordingHostFacts() records a remote end when first seen and when it changes hands", () => {
  const recorded: unknown[] = [];
  let identity = { namespace: "shop", service: "cart" } as { namespace: string; service?: string };
  const inner: HostFacts = {
    ...OFFLINE_HOST_FACTS,
    containers: (...args) => ({
      ...OFFLINE_HOST_FACTS.containers(...args),
      remote: () => identity,
    }),
  };
  const facts = recordingHostFacts(inner, (f) => recorded.push(f)).containers(
    { cgroup: "", maxEntries: 1, rescanIntervalMs: 1 },
    { log: silent, counters: new Counters().bound({}), warn() {} },
  );
  facts.remote("10.96.4.2");
  facts.remote("10.96.4.2");
  identity = { namespace: "shop", service: "checkout" };
  facts.remote("10.96.4.2");

  assert.deepEqual(recorded, [
    { fact: "remote", ip: "10.96.4.2", remote: { namespace: "shop", service: "cart" } },
    { fact: "remote", ip: "10.96.4.2", remote: { namespace: "shop", service: "checkout" } },
  ]);
});

Deno.test("what --record writes replays, on another host, to what the collector wrote", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A container's cgroup and one outside containers, under a stand-in mount.
    const docker = `${dir}/cgroup/ebpf-test.slice/docker-${CONTAINER}.scope`;
    const service = `${dir}/cgroup/system.slice/sshd.service`;
    await Deno.mkdir(docker, { recursive: true });
    await Deno.mkdir(service, { recursive: true });
    const [inContainer, outside] = [
      BigInt((await Deno.stat(docker)).ino!),
      BigInt((await Deno.stat(service)).ino!),
    ];
    const live = liveHostFacts();
    const { range } = live.portRange();
    const ephemeral = range.low + 1, fixed = range.low - 1;

    // Collecting: this host's facts, recorded as --record does (main.ts).
    const recording = `${dir}/r.ndjson`, collected = `${dir}/collected.jsonl`;
    const recorder = new Recorder(recording, range);
    const running = await startPipeline(
      parsePipeline(
        "test.yaml",
        PIPELINE.replaceAll("${OUT}", collected).replaceAll("${CGROUP}", `${dir}/cgroup`),
      ),
      {
        host: "h",
        counters: new Counters(),
        log: silent,
        clock: new ManualClock(T0),
        hostFacts: recordingHostFacts(live, (f) => recorder.addFact(f)),
      },
      { probes: "injected", tap: (probe, record, side) => recorder.add(probe, record, side) },
    );
    const flows = [
      flow(ephemeral, inContainer, 0),
      flow(fixed, outside, 1),
      flow(ephemeral, inContainer, 2),
    ];
    for (const f of flows) running.inject("netflow", f);
    await running.stop();
    recorder.close();

    // Replaying on a host with another range and no such cgroups.
    const elsewhere: HostFacts = {
      ...OFFLINE_HOST_FACTS,
      portRange: () => ({ range: { low: 1, high: 2 } }),
    };
    const { lines } = await replayed(dir, recording, elsewhere);
    const want = (await Deno.readTextFile(collected)).split("\n").filter(Boolean);
    assert.deepEqual(lines, want);
    // And what was collected is what the facts say: the test would pass on no facts at all.
    const tags = want.map((l) => JSON.parse(l).tags);
    assert.deepEqual(tags.map((t) => [t.src_port, t.container_id]), [
      ["*", CONTAINER],
      [String(fixed), undefined],
      ["*", CONTAINER],
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

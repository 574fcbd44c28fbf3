/**
 * The `container` transform on a directory tree standing in for the cgroup v2 mount (a
 * directory's inode number is what the kernel's cgroup id is on cgroup v2; the real mount is
 * exercised in test/kernel/container_test.ts), and, for pod metadata, on the stand-in API
 * server of test/kubernetes/_api_server.ts (a real API server cannot run here).
 */
import assert from "node:assert/strict";
import { buildStage, configureStage } from "../pipeline/testing.ts";
import type { Record } from "../record.ts";
import {
  containerId,
  endpointSlice,
  FakeApiServer,
  pod,
  running,
  service,
  startStandIn,
} from "../../test/kubernetes/_api_server.ts";
import { liveHostFacts } from "../system/host_facts.ts";
import { containerTransform } from "./container.ts";

const A = containerId(), B = containerId();

/** Builds the stage with this host's facts, as the collector does when collecting. */
function onThisHost(options: { [key: string]: unknown }) {
  return buildStage(containerTransform, options, undefined, { hostFacts: liveHostFacts() });
}

/** A tree of runtime-named directories; their ids are their inode numbers. */
async function cgroupTree() {
  const root = await Deno.makeTempDir({ prefix: "cgroup-tree-" });
  const paths = {
    docker: `/ebpf-test.slice/docker-${A}.scope`,
    kubepods: `/kubepods/burstable/pod6c1e/${B}`,
    service: "/system.slice/sshd.service",
  };
  const ids: { [name: string]: bigint } = {};
  for (const [name, path] of Object.entries(paths)) {
    await Deno.mkdir(root + path, { recursive: true });
    ids[name] = BigInt((await Deno.stat(root + path)).ino!);
  }
  return { root, ids, [Symbol.asyncDispose]: () => Deno.remove(root, { recursive: true }) };
}

function record(cgroupId?: bigint): Record {
  return {
    measurement: "bash",
    tags: { host: "web-1", source: "bash" },
    fields: { cmd: "ls", ...(cgroupId !== undefined ? { cgroup_id: cgroupId } : {}) },
    time: 1n,
  };
}

Deno.test("container tags records with their container's id and removes cgroup_id", async () => {
  await using tree = await cgroupTree();
  const { stage, emitted, counters } = await onThisHost({ cgroup: tree.root });

  await stage.push(record(tree.ids.docker));
  await stage.push(record(tree.ids.kubepods));
  await stage.push(record(tree.ids.service));
  await stage.push(record(tree.ids.docker));

  assert.deepEqual(emitted.map((r) => r.tags.container_id), [A, B, undefined, A]);
  assert.deepEqual(emitted[0].tags, { host: "web-1", source: "bash", container_id: A });
  assert.deepEqual(emitted[2].tags, { host: "web-1", source: "bash" }, "no tag outside containers");
  for (const r of emitted) assert.deepEqual(r.fields, { cmd: "ls" });
  const count = (name: string) => counters.get(name, { stage: "container" });
  // One walk found both containers; sshd's miss came within rescan_interval of it: deferred.
  assert.equal(count("cgroup_scans"), 1n);
  assert.equal(count("container_cache_hits"), 2n);
  assert.equal(count("container_cache_misses"), 2n);
  assert.equal(count("container_lookups_deferred"), 1n);
  await stage.close();
});

Deno.test("container keeps cgroup_id when asked, and passes records without one unchanged", async () => {
  await using tree = await cgroupTree();
  const { stage, emitted } = await onThisHost({
    cgroup: tree.root,
    keep_cgroup_id: true,
  });
  const plain = record();
  const service = record(tree.ids.service);

  await stage.push(plain);
  await stage.push(service);
  await stage.push(record(tree.ids.docker));

  assert.equal(emitted[0], plain, "the same object: nothing to do");
  assert.equal(emitted[1], service, "kept cgroup_id, no container: the same object");
  assert.equal(emitted[2].fields.cgroup_id, tree.ids.docker);
  assert.equal(emitted[2].tags.container_id, A);
  await stage.close();
});

Deno.test("container without a cgroup tree passes records untagged, cgroup_id removed", async () => {
  const { stage, emitted } = await onThisHost({ cgroup: "/nonexistent-cg" });
  await stage.push(record(42n));
  assert.deepEqual(emitted[0].tags, { host: "web-1", source: "bash" });
  assert.deepEqual(emitted[0].fields, { cmd: "ls" });
  await stage.close();
});

Deno.test("container rejects a kubernetes_api that is not an http(s) URL", () => {
  const { errors } = configureStage(containerTransform, { kubernetes_api: "10.96.0.1:443" });
  assert.equal(errors.length, 1);
  assert.match(errors[0].message, /kubernetes_api: not an http\(s\) URL/);
});

Deno.test("container --explain names the API server it connects to and the files it reads", () => {
  const { config } = configureStage(containerTransform, {
    kubernetes_api: "https://10.96.0.1:6443",
    kubernetes_token_file: "/etc/collector/token",
    kubernetes_ca_file: "/etc/collector/ca.crt",
    node_name: "node-a",
  });
  const e = containerTransform.explain!(config as never);
  assert.deepEqual(e.net, ["10.96.0.1:6443"]);
  assert.deepEqual(e.reads, ["/etc/collector/token", "/etc/collector/ca.crt"]);
  assert.match(e.details!.join("\n"), /on node node-a/);
});

Deno.test("container --explain with kubernetes: true names the service account files and, outside a pod, kubernetes.default.svc", () => {
  const { config } = configureStage(containerTransform, { kubernetes: true });
  const e = containerTransform.explain!(config as never);
  const sa = "/var/run/secrets/kubernetes.io/serviceaccount";
  assert.deepEqual(e.reads, [`${sa}/token`, `${sa}/ca.crt`]);
  if (!Deno.env.get("KUBERNETES_SERVICE_HOST")) {
    assert.deepEqual(e.net, ["kubernetes.default.svc:443"]);
  }
});

Deno.test("container adds k8s_namespace, k8s_pod, k8s_container from the API server's pods (stand-in server)", async () => {
  await using tree = await cgroupTree();
  const fixtures = new URL("../../test/kubernetes/", import.meta.url).pathname;
  const server = new FakeApiServer(
    await Deno.readTextFile(`${fixtures}/server.crt`),
    await Deno.readTextFile(`${fixtures}/server.key`),
  );
  const tokenFile = `${tree.root}/token`;
  await Deno.writeTextFile(tokenFile, "t0ken\n");
  server.tokens.add("t0ken");
  server.put(pod("shop", "cart-7d9f-x2", "node-a", { containerStatuses: [running("app", B)] }));
  server.start();
  try {
    const { stage, emitted } = await onThisHost({
      cgroup: tree.root,
      kubernetes_api: server.url,
      kubernetes_token_file: tokenFile,
      kubernetes_ca_file: `${fixtures}/ca.crt`,
      node_name: "node-a",
    });
    try {
      const deadline = Date.now() + 10_000;
      while (server.watching === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      await stage.push(record(tree.ids.kubepods));
      await stage.push(record(tree.ids.docker)); // a container of no pod: container_id only

      assert.deepEqual(emitted[0].tags, {
        host: "web-1",
        source: "bash",
        container_id: B,
        k8s_namespace: "shop",
        k8s_pod: "cart-7d9f-x2",
        k8s_container: "app",
      });
      assert.deepEqual(emitted[1].tags, { host: "web-1", source: "bash", container_id: A });
    } finally {
      await stage.close();
    }
  } finally {
    await server.stop();
  }
});

const sleep = (ms: number) => new Promise<undefined>((r) => setTimeout(() => r(undefined), ms));

/** `p` with a controller owner reference (and the `pod-template-hash` a ReplicaSet's pods carry). */
function ownedBy(p: ReturnType<typeof pod>, kind: string, name: string, hash?: string) {
  p.metadata.ownerReferences = [{ apiVersion: "apps/v1", kind, name, controller: true }];
  if (hash) p.metadata.labels = { ...p.metadata.labels, "pod-template-hash": hash };
  return p;
}

/** A netflow record to `dst_ip` (and through DNAT to `dst_nat_ip`), as the probe makes them. */
function flow(dstIp: string, dstNatIp?: string): Record {
  return {
    measurement: "netflow",
    tags: {
      host: "web-1",
      source: "netflow",
      dst_ip: dstIp,
      dst_port: "80",
      ...(dstNatIp ? { dst_nat_ip: dstNatIp, dst_nat_port: "8080" } : {}),
    },
    fields: { bytes_written: 100n },
    time: 1n,
  };
}

Deno.test("container names a flow's remote end: a ClusterIP's service, through NAT the pod that served it (stand-in server's Services and EndpointSlices)", async () => {
  const cart = service("shop", "cart", "10.96.4.2");
  await using standIn = await startStandIn([
    cart,
    endpointSlice("shop", "cart", [
      { name: "cart-7d9f-x2", ip: "10.244.2.9" },
      { name: "cart-7d9f-q8", ip: "10.244.3.4" },
    ]),
    service("kube-system", "kube-dns", "10.96.0.10"),
    // On another node: its owner references name the workload (cart-7d9f-x2 has no pod object).
    ownedBy(pod("shop", "cart-7d9f-q8", "node-b", {}), "ReplicaSet", "cart-7d9f", "7d9f"),
  ]);
  const server = standIn.server;
  const { stage, emitted } = await onThisHost({
    cgroup: "/nonexistent-cgroup2",
    kubernetes_api: server.url,
    kubernetes_token_file: standIn.tokenFile,
    kubernetes_ca_file: standIn.caFile,
    node_name: "node-a",
  });
  try {
    const deadline = Date.now() + 10_000;
    while (server.watching < 3 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await stage.push(flow("10.96.4.2", "10.244.3.4")); // through kube-proxy's DNAT
    await stage.push(flow("10.96.4.2")); // no translation seen
    await stage.push(flow("10.244.2.9")); // straight to a pod
    await stage.push(flow("10.96.0.10"));
    await stage.push(flow("198.18.0.1")); // not the cluster's
    const remote = (
      r: Record,
    ) => [r.tags.dst_k8s_namespace, r.tags.dst_k8s_service, r.tags.dst_k8s_pod];

    assert.deepEqual(emitted.map(remote), [
      ["shop", "cart", "cart-7d9f-q8"],
      ["shop", "cart", undefined],
      ["shop", "cart", "cart-7d9f-x2"],
      ["kube-system", "kube-dns", undefined],
      [undefined, undefined, undefined],
    ]);
    assert.equal(emitted[0].tags.dst_ip, "10.96.4.2", "the address connected to stays");

    // The pod's workload, read once in the background after its first lookup; none for a pod
    // the API does not know.
    const workload = async (ip: string) => {
      const until = Date.now() + 10_000;
      for (;;) {
        emitted.length = 0;
        await stage.push(flow("10.96.4.2", ip));
        const got = emitted[0].tags.dst_k8s_workload;
        if (got || Date.now() > until) return got;
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    assert.equal(await workload("10.244.3.4"), "Deployment/cart");
    const asked = (pod: string) => server.requests.some((r) => r.path.endsWith(`/pods/${pod}`));
    await stage.push(flow("10.96.4.2", "10.244.2.9"));
    for (let i = 0; i < 500 && !asked("cart-7d9f-x2"); i++) await sleep(20);
    await sleep(100); // its 404 answered
    emitted.length = 0;
    await stage.push(flow("10.96.4.2", "10.244.2.9"));
    assert.ok(asked("cart-7d9f-x2"));
    assert.equal(emitted[0].tags.dst_k8s_pod, "cart-7d9f-x2");
    assert.equal(emitted[0].tags.dst_k8s_workload, undefined);

    // Deleted: the watch takes it out.
    server.delete(cart);
    const gone = Date.now() + 10_000;
    do {
      emitted.length = 0;
      await stage.push(flow("10.96.4.2"));
      await new Promise((r) => setTimeout(r, 20));
    } while (emitted[0]?.tags.dst_k8s_service && Date.now() < gone);
    assert.equal(emitted[0].tags.dst_k8s_service, undefined);

    // Exactly what the RBAC grants: the three collections, and the two remote pods by name.
    assert.deepEqual([...new Set(server.requests.map((r) => r.path))].sort(), [
      "/api/v1/namespaces/shop/pods/cart-7d9f-q8",
      "/api/v1/namespaces/shop/pods/cart-7d9f-x2",
      "/api/v1/pods",
      "/api/v1/services",
      "/apis/discovery.k8s.io/v1/endpointslices",
    ]);
    for (const r of server.requests.filter((r) => r.path !== "/api/v1/pods")) {
      assert.equal(r.params.get("fieldSelector"), null, "services are the cluster's");
    }
  } finally {
    await stage.close();
  }
});

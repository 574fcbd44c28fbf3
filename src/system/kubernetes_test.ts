/**
 * PodWatcher against a stand-in API server (test/kubernetes/_api_server.ts): a real API server
 * cannot run here, so the stand-in serves the pods list and watch as the Kubernetes API
 * reference documents them, over real HTTPS on 127.0.0.1 with a certificate signed by a test CA.
 * The CA and certificate are made with `openssl` when it is installed, else read from the
 * test-only fixtures in test/kubernetes/ (made by `makeCertificates` below; their key protects
 * nothing). Waits poll a condition with a generous limit; nothing asserts how long anything took.
 */
import assert from "node:assert/strict";
import { Counters } from "../counters.ts";
import type { Logger } from "../log.ts";
import {
  type KubernetesOptions,
  PodWatcher,
  type PodWatcherTuning,
  workloadOf,
} from "./kubernetes.ts";
import { containerId, FakeApiServer, pod, running } from "../../test/kubernetes/_api_server.ts";

const FIXTURES = new URL("../../test/kubernetes/", import.meta.url).pathname;
const FAST: PodWatcherTuning = { minBackoffMs: 5, maxBackoffMs: 40 };
const LABELS = { stage: "containers" };

/** A test CA, a server certificate for 127.0.0.1 it signed, and a second, unrelated CA. */
async function makeCertificates(dir: string): Promise<void> {
  const openssl = async (...args: string[]) => {
    const out = await new Deno.Command("openssl", { args, cwd: dir, stderr: "piped" }).output();
    if (!out.success) {
      throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
    }
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const days = ["-days", "36500"];
  await openssl(
    "req",
    "-x509",
    ...ec,
    ...days,
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-subj",
    "/CN=kubernetes-ca",
  );
  await openssl(
    "req",
    "-x509",
    ...ec,
    ...days,
    "-keyout",
    "other_ca.key",
    "-out",
    "other_ca.crt",
    "-subj",
    "/CN=other-ca",
  );
  await openssl(
    "req",
    ...ec,
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=kube-apiserver",
  );
  await Deno.writeTextFile(
    `${dir}/server.ext`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n" +
      "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
  );
  await openssl(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    ...days,
    "-extfile",
    "server.ext",
    "-out",
    "server.crt",
  );
}

async function hasOpenssl(): Promise<boolean> {
  try {
    return (await new Deno.Command("openssl", { args: ["version"], stdout: "null" }).output())
      .success;
  } catch {
    return false;
  }
}

interface Setup {
  server: FakeApiServer;
  watcher: PodWatcher;
  counters: Counters;
  warnings: string[];
  infos: string[];
  dir: string;
  tokenFile: string;
  count(name: string): bigint;
}

/** Starts the stand-in server and a watcher on it; cleans up both whatever the test does. */
async function withWatcher(
  options: {
    tuning?: PodWatcherTuning;
    nodeName?: string;
    wrongCa?: boolean;
    fixtures?: boolean;
    before?: (server: FakeApiServer) => void;
  },
  test: (s: Setup) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "k8s-test-" });
  try {
    const certs = options.fixtures || !(await hasOpenssl()) ? FIXTURES : dir;
    if (certs === dir) await makeCertificates(dir);
    const server = new FakeApiServer(
      await Deno.readTextFile(`${certs}/server.crt`),
      await Deno.readTextFile(`${certs}/server.key`),
    );
    const tokenFile = `${dir}/token`;
    await Deno.writeTextFile(tokenFile, "token-1\n");
    server.tokens.add("token-1");
    options.before?.(server);
    server.start();
    const counters = new Counters();
    const warnings: string[] = [];
    const infos: string[] = [];
    const log: Logger = { info: (m) => infos.push(m), warn: (m) => warnings.push(m), debug() {} };
    const watcherOptions: KubernetesOptions = {
      apiServer: server.url,
      tokenFile,
      caFile: `${certs}/${options.wrongCa ? "other_ca.crt" : "ca.crt"}`,
      nodeName: options.nodeName ?? "node-a",
    };
    const watcher = new PodWatcher(
      watcherOptions,
      log,
      counters.bound(LABELS),
      options.tuning ?? FAST,
    );
    try {
      watcher.start();
      await test({
        server,
        watcher,
        counters,
        warnings,
        infos,
        dir,
        tokenFile,
        count: (name) => counters.get(name, LABELS),
      });
    } finally {
      await watcher.close();
      await server.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * A test that fails if it leaves a timer, a request or a connection behind. Deno 2.9 runs its
 * op and resource sanitizers only when asked (`--sanitize-ops`, or per test as here).
 */
function sanitized(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });
}

/** Waits until `condition` holds; fails naming `what` if it does not within 20 s. */
async function until(what: string, condition: () => boolean): Promise<void> {
  for (let waited = 0; !condition(); waited += 10) {
    if (waited > 20_000) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

sanitized(
  "PodWatcher lists this node's pods, then ADDED, MODIFIED and DELETED events change lookups (stand-in API server over HTTPS)",
  async () => {
    const web = containerId(), sidecar = containerId(), migrate = containerId();
    const elsewhere = containerId();
    const cart = pod("shop", "cart-7d9f8b6c4-x2x9q", "node-a", {
      containerStatuses: [running("web", web), running("envoy", sidecar)],
      initContainerStatuses: [{
        ...running("migrate", migrate),
        ready: false,
        state: { terminated: { exitCode: 0, reason: "Completed" } },
      }],
    });
    const other = pod("shop", "cart-7d9f8b6c4-h7k2p", "node-b", {
      containerStatuses: [running("web", elsewhere)],
    });
    await withWatcher({
      before: (server) => {
        server.put(cart);
        server.put(other);
      },
    }, async ({ server, watcher, count }) => {
      await until("the watch is open", () => server.watching === 1);
      assert.deepEqual(watcher.lookup(web), {
        namespace: "shop",
        pod: cart.metadata.name,
        container: "web",
      });
      assert.equal(watcher.lookup(sidecar)?.container, "envoy");
      assert.equal(watcher.lookup(migrate)?.container, "migrate");
      assert.equal(watcher.lookup(`containerd://${web}`)?.container, "web");
      assert.equal(watcher.lookup(elsewhere), undefined, "a pod on another node is not listed");
      assert.equal(count("k8s_pods"), 1n);

      const [list, watch] = server.requests;
      assert.equal(list.params.get("fieldSelector"), "spec.nodeName=node-a");
      assert.equal(list.params.get("watch"), null);
      assert.equal(watch.params.get("fieldSelector"), "spec.nodeName=node-a");
      assert.equal(watch.params.get("watch"), "1");
      assert.equal(watch.params.get("allowWatchBookmarks"), "true");
      assert.equal(watch.params.get("resourceVersion"), other.metadata.resourceVersion);

      // ADDED: a pod with an ephemeral debug container, on CRI-O.
      const app = containerId(), debug = containerId();
      const api = pod("payments", "api-5c6d7e8f9-qwert", "node-a", {
        containerStatuses: [running("app", app, "cri-o")],
        ephemeralContainerStatuses: [running("debugger-xk2lp", debug, "cri-o")],
      });
      server.put(api);
      await until("the added pod is indexed", () => watcher.lookup(app) !== undefined);
      assert.deepEqual(watcher.lookup(debug), {
        namespace: "payments",
        pod: api.metadata.name,
        container: "debugger-xk2lp",
      });
      assert.equal(count("k8s_pods"), 2n);

      // MODIFIED: the web container restarted, under a new id.
      const restarted = containerId();
      cart.status.containerStatuses![0] = { ...running("web", restarted), restartCount: 1 };
      server.put(cart);
      await until(
        "the restarted container is indexed",
        () => watcher.lookup(restarted) !== undefined,
      );
      assert.equal(watcher.lookup(web), undefined, "the old container id is gone");
      assert.equal(watcher.lookup(sidecar)?.container, "envoy");

      // DELETED.
      server.delete(api);
      await until("the deleted pod is gone", () => watcher.lookup(app) === undefined);
      assert.equal(watcher.lookup(debug), undefined);
      assert.equal(count("k8s_pods"), 1n);
      assert.equal(count("k8s_watch_errors"), 0n);
      assert.equal(count("k8s_relists"), 0n);
    });
  },
);

sanitized(
  "PodWatcher sends the bearer token and re-reads the token file when the token rotates",
  async () => {
    await withWatcher({}, async ({ server, tokenFile, warnings }) => {
      await until("the watch is open", () => server.watching === 1);
      assert.ok(server.requests.every((r) => r.authorization === "Bearer token-1"));

      // Rotation: the kubelet writes a new token and the old one stops being accepted.
      await Deno.writeTextFile(tokenFile, "token-2\n");
      server.tokens = new Set(["token-2"]);
      const seen = server.requests.length;
      server.endWatches();
      await until("a new watch is open", () => server.watching === 1);
      assert.deepEqual(
        server.requests.slice(seen).map((r) => r.authorization),
        ["Bearer token-2"],
        "the reconnect used the new token at once",
      );
      assert.deepEqual(warnings, []);
    });
  },
);

sanitized(
  "PodWatcher reports a refused token once, naming it, and recovers when the file is fixed",
  async () => {
    await withWatcher({}, async ({ server, tokenFile, warnings, infos, count }) => {
      await until("the watch is open", () => server.watching === 1);
      server.tokens = new Set(["token-3"]);
      server.endWatches();
      await until("several attempts failed", () => count("k8s_watch_errors") >= 3n);
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.match(warnings[0], /401 Unauthorized.*the token was refused/);
      assert.equal(count("k8s_stale"), 1n);

      await Deno.writeTextFile(tokenFile, "token-3");
      await until("the watch is open again", () => server.watching === 1);
      // The server sees the watch before the watcher has read its answer: wait for that too.
      await until("the watcher reads the answer", () => count("k8s_stale") === 0n);
      assert.equal(infos.length, 1);
      assert.match(infos[0], /answers again/);
      assert.equal(warnings.length, 1);
    });
  },
);

sanitized(
  "PodWatcher resumes a watch that broke mid-way without calling it an outage",
  async () => {
    const before = containerId(), after = containerId();
    await withWatcher({
      before: (server) =>
        server.put(pod("shop", "a-1", "node-a", { containerStatuses: [running("a", before)] })),
    }, async ({ server, watcher, count, warnings, infos }) => {
      await until("the watch is open", () => server.watching === 1);
      const seen = server.requests.length;
      server.breakWatches();
      server.put(pod("shop", "b-1", "node-a", { containerStatuses: [running("b", after)] }));
      await until("the pod added meanwhile is indexed", () => watcher.lookup(after) !== undefined);
      assert.equal(count("k8s_watch_errors"), 1n);
      assert.equal(count("k8s_stale"), 0n);
      assert.equal(count("k8s_relists"), 0n);
      assert.deepEqual([...warnings, ...infos], []);
      assert.equal(server.requests[seen].params.get("watch"), "1", "no new list");
      assert.equal(watcher.lookup(before)?.pod, "a-1");
    });
  },
);

sanitized(
  "PodWatcher lists again when its resourceVersion is too old (watch ERROR 410 Expired)",
  async () => {
    const first = containerId(), second = containerId();
    await withWatcher({
      before: (server) =>
        server.put(pod("shop", "a-1", "node-a", { containerStatuses: [running("a", first)] })),
    }, async ({ server, watcher, count, warnings }) => {
      await until("the watch is open", () => server.watching === 1);
      // A change no watcher saw, then compaction: only a new list can bring it.
      server.put(pod("shop", "b-1", "node-a", { containerStatuses: [running("b", second)] }), {
        quiet: true,
      });
      server.compact();
      server.endWatches();
      await until("the missed pod is indexed", () => watcher.lookup(second) !== undefined);
      assert.equal(watcher.lookup(first)?.pod, "a-1");
      assert.equal(count("k8s_relists"), 1n);
      assert.equal(count("k8s_pods"), 2n);
      assert.equal(count("k8s_watch_errors"), 0n, "410 is routine, not an error");
      assert.deepEqual(warnings, []);
      const lists = server.requests.filter((r) => r.params.get("watch") === null);
      assert.equal(lists.length, 2);
    });
  },
);

sanitized(
  "PodWatcher keeps the stale metadata while the API server is down, warns once, and catches up when it is back",
  async () => {
    const web = containerId(), late = containerId();
    const cart = pod("shop", "cart-1", "node-a", { containerStatuses: [running("web", web)] });
    await withWatcher({ before: (server) => server.put(cart) }, async (s) => {
      const { server, watcher, count, warnings, infos } = s;
      await until("the watch is open", () => server.watching === 1);
      // A sidecar injected: the last event seen before the outage.
      const sidecar = containerId();
      cart.status.containerStatuses!.push(running("envoy", sidecar));
      server.put(cart);
      await until("the sidecar is indexed", () => watcher.lookup(sidecar) !== undefined);
      await server.stop();
      await until("several attempts failed", () => count("k8s_watch_errors") >= 3n);
      assert.equal(count("k8s_stale"), 1n);
      assert.equal(watcher.lookup(web)?.pod, "cart-1", "lookups use the last metadata seen");
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.match(
        warnings[0],
        /cannot watch pods at https:\/\/127\.0\.0\.1:\d+: .*refused.*keeping the metadata of the 1 pods last seen, retrying/,
      );
      assert.deepEqual(infos, []);

      // While it was down: one pod deleted, one created.
      const lastSeen = cart.metadata.resourceVersion;
      const seen = server.requests.length;
      server.delete(cart);
      server.put(pod("shop", "cart-2", "node-a", { containerStatuses: [running("web", late)] }));
      server.start();
      await until("the new pod is indexed", () => watcher.lookup(late) !== undefined);
      assert.equal(watcher.lookup(web), undefined);
      assert.equal(count("k8s_stale"), 0n);
      assert.equal(count("k8s_pods"), 1n);
      assert.equal(infos.length, 1);
      assert.match(infos[0], /answers again after \d+ failed attempts/);
      assert.equal(warnings.length, 1);
      assert.equal(count("k8s_relists"), 0n, "the watch resumed from its resourceVersion");
      assert.equal(server.requests[seen].params.get("watch"), "1");
      assert.equal(server.requests[seen].params.get("resourceVersion"), lastSeen);
    });
  },
);

sanitized(
  "PodWatcher refuses an API server whose certificate another CA signed, counted and logged once",
  async () => {
    await withWatcher({ wrongCa: true }, async ({ server, watcher, count, warnings }) => {
      await until("several attempts failed", () => count("k8s_watch_errors") >= 3n);
      assert.equal(server.requests.length, 0, "no request got past the TLS handshake");
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.match(warnings[0], /certificate.*no pod metadata yet/);
      assert.equal(count("k8s_stale"), 1n);
      assert.equal(watcher.lookup(containerId()), undefined);
    });
  },
);

sanitized("PodWatcher caps the pods it indexes and warns once", async () => {
  const ids = [containerId(), containerId(), containerId()];
  await withWatcher({
    tuning: { ...FAST, maxPods: 2 },
    before: (server) =>
      ids.forEach((id, i) =>
        server.put(pod("shop", `p-${i}`, "node-a", { containerStatuses: [running("c", id)] }))
      ),
  }, async ({ server, watcher, count, warnings }) => {
    await until("the watch is open", () => server.watching === 1);
    assert.equal(count("k8s_pods"), 2n);
    assert.equal(count("k8s_pods_dropped"), 1n);
    assert.equal(ids.filter((id) => watcher.lookup(id)).length, 2);
    server.put(pod("shop", "p-3", "node-a", { containerStatuses: [running("c", containerId())] }));
    await until("the fourth pod is dropped", () => count("k8s_pods_dropped") === 2n);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /more than 2 pods on node node-a/);
  });
});

sanitized(
  "PodWatcher.close() ends a watch in flight and a retry wait, leaving no timer or request",
  async () => {
    await withWatcher({}, async ({ server, watcher }) => {
      await until("the watch is open", () => server.watching === 1);
      await watcher.close();
      await until("the server saw the watch end", () => server.watching === 0);
    });
    // Waiting out a long backoff while the server refuses the token.
    await withWatcher({ tuning: { minBackoffMs: 60_000 } }, async ({ server, watcher, count }) => {
      server.tokens.clear();
      await until("an attempt failed", () => count("k8s_watch_errors") === 1n);
      await watcher.close();
    });
  },
);

sanitized(
  "the committed test certificates still work (the fallback when openssl is missing)",
  async () => {
    const id = containerId();
    await withWatcher({
      fixtures: true,
      before: (server) =>
        server.put(pod("shop", "a-1", "node-a", { containerStatuses: [running("a", id)] })),
    }, async ({ server, watcher }) => {
      await until("the watch is open", () => server.watching === 1);
      assert.equal(watcher.lookup(id)?.pod, "a-1");
    });
  },
);

sanitized("PodWatcher without nodeName lists every pod (no fieldSelector)", async () => {
  await withWatcher({ nodeName: "" }, async ({ server }) => {
    await until("the watch is open", () => server.watching === 1);
    assert.equal(server.requests[0].params.get("fieldSelector"), null);
  });
});

Deno.test("workloadOf() names a pod's controller from its owner references, a Deployment through its ReplicaSet", () => {
  const owned = (kind: string, name: string, labels = {}) => ({
    metadata: { labels, ownerReferences: [{ kind, name, controller: true }] },
  });

  assert.equal(
    workloadOf(owned("ReplicaSet", "cart-7d9f", { "pod-template-hash": "7d9f" })),
    "Deployment/cart",
  );
  // A ReplicaSet of its own (no Deployment's hash in its name) stays one.
  assert.equal(
    workloadOf(owned("ReplicaSet", "legacy", { "pod-template-hash": "7d9f" })),
    "ReplicaSet/legacy",
  );
  assert.equal(workloadOf(owned("StatefulSet", "db")), "StatefulSet/db");
  assert.equal(workloadOf(owned("DaemonSet", "agent")), "DaemonSet/agent");
  assert.equal(workloadOf({ metadata: {} }), "", "a pod of no controller");
  assert.equal(workloadOf(undefined), "");
});

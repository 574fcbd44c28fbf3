/**
 * A stand-in for the Kubernetes API server's pods, services and endpointslices resources, for
 * tests: a real API server (with etcd) cannot run here. It serves over HTTPS on 127.0.0.1 what
 * the API reference documents for `GET /api/v1/pods` (and `/api/v1/services`,
 * `/apis/discovery.k8s.io/v1/endpointslices`): a list, and with `watch=1` a stream of WatchEvent JSON lines
 * (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR) from a resourceVersion, replayed from its history.
 * `compact()` forgets that history, as etcd compaction does, so an older resourceVersion gets the
 * ERROR event with a 410 Expired Status that real servers send.
 *
 * @module
 */

/** The fields of a v1 Pod these tests use (the real object has many more). */
export interface Pod {
  apiVersion: "v1";
  kind: "Pod";
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion?: string;
    creationTimestamp: string;
    labels?: { [key: string]: string };
    ownerReferences?: { apiVersion: string; kind: string; name: string; controller: boolean }[];
  };
  spec: { nodeName: string; containers: { name: string; image: string }[] };
  status: {
    phase: string;
    podIP?: string;
    containerStatuses?: ContainerStatus[];
    initContainerStatuses?: ContainerStatus[];
    ephemeralContainerStatuses?: ContainerStatus[];
  };
}

/** A v1 ContainerStatus. */
export interface ContainerStatus {
  name: string;
  containerID?: string;
  image: string;
  imageID: string;
  ready: boolean;
  restartCount: number;
  started?: boolean;
  state: { [state: string]: { [key: string]: string | number } };
}

/** A v1 Service: its cluster IPs. */
export interface Service {
  apiVersion: "v1";
  kind: "Service";
  metadata: { name: string; namespace: string; uid: string; resourceVersion?: string };
  spec: { type: string; clusterIP: string; clusterIPs: string[]; ports: { port: number }[] };
}

/** A discovery.k8s.io/v1 EndpointSlice: a Service's endpoints, each naming its pod. */
export interface EndpointSlice {
  apiVersion: "discovery.k8s.io/v1";
  kind: "EndpointSlice";
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion?: string;
    labels: { [key: string]: string };
  };
  addressType: "IPv4" | "IPv6";
  endpoints: {
    addresses: string[];
    conditions: { ready: boolean };
    targetRef?: { kind: string; name: string; namespace: string; uid: string };
  }[];
  ports: { port: number; protocol: string }[];
}

type ApiObject = Pod | Service | EndpointSlice;

/** The collections served, by path, and their list kinds. */
const COLLECTIONS: { [path: string]: string } = {
  "/api/v1/pods": "PodList",
  "/api/v1/services": "ServiceList",
  "/apis/discovery.k8s.io/v1/endpointslices": "EndpointSliceList",
};

function collectionOf(o: ApiObject): string {
  if (o.kind === "Pod") return "/api/v1/pods";
  if (o.kind === "Service") return "/api/v1/services";
  return "/apis/discovery.k8s.io/v1/endpointslices";
}

/** Pods are on a node; the other objects are the whole cluster's. */
function nodeOf(o: ApiObject): string | undefined {
  return o.kind === "Pod" ? o.spec.nodeName : undefined;
}

type EventType = "ADDED" | "MODIFIED" | "DELETED";

interface HistoryEntry {
  rv: number;
  type: EventType;
  object: ApiObject;
}

/** An open watch stream: events of `path` for `node` (every node when undefined). */
interface Watch {
  path: string;
  node: string | undefined;
  send(line: string): void;
  end(): void;
  fail(): void;
}

/** One request the server saw. */
export interface SeenRequest {
  path: string;
  params: URLSearchParams;
  authorization: string | null;
}

/** The fake server; `start()` it, `stop()` it, `start()` it again on the same port. */
export class FakeApiServer {
  /** Bearer tokens accepted; others get 401. */
  tokens = new Set<string>();
  readonly requests: SeenRequest[] = [];
  #objects = new Map<string, ApiObject>();
  #history: HistoryEntry[] = [];
  #rv = 1000;
  /** Watches from below this resourceVersion get 410 Expired. */
  #oldest = 1000;
  #watches = new Set<Watch>();
  #server: Deno.HttpServer | undefined;
  #port = 0;

  constructor(readonly cert: string, readonly key: string) {}

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `https://127.0.0.1:${this.#port}`;
  }

  /** Watches open now. */
  get watching(): number {
    return this.#watches.size;
  }

  /** Listens on 127.0.0.1: a free port the first time, the same port after a stop. */
  start(): void {
    this.#server = Deno.serve({
      hostname: "127.0.0.1",
      port: this.#port,
      cert: this.cert,
      key: this.key,
      onListen: () => {},
      // breakWatches() errors streams on purpose: not worth a line on stderr.
      onError: () => new Response(null, { status: 500 }),
    }, (request) => this.#handle(request));
    this.#port = (this.#server.addr as Deno.NetAddr).port;
  }

  /** Ends every watch and stops listening, as a restarted API server does. */
  async stop(): Promise<void> {
    this.endWatches();
    await this.#server?.shutdown();
    this.#server = undefined;
  }

  /** Ends every open watch stream (a server's `timeoutSeconds` running out). */
  endWatches(): void {
    for (const w of this.#watches) w.end();
    this.#watches.clear();
  }

  /** Breaks every open watch stream mid-way (the server errors it, not a clean end). */
  breakWatches(): void {
    for (const w of this.#watches) w.fail();
    this.#watches.clear();
  }

  /** Creates or updates a pod (service, slice): ADDED or MODIFIED to watchers (unless `quiet`). */
  put(object: ApiObject, { quiet = false } = {}): void {
    const type = this.#objects.has(object.metadata.uid) ? "MODIFIED" : "ADDED";
    this.#objects.set(object.metadata.uid, object);
    this.#record(type, object, quiet);
  }

  /** Deletes a pod (service, slice): DELETED to watchers. */
  delete(object: ApiObject): void {
    this.#objects.delete(object.metadata.uid);
    this.#record("DELETED", object, false);
  }

  /** Forgets the event history, as etcd compaction does: older watches get 410. */
  compact(): void {
    this.#history = [];
    this.#oldest = this.#rv;
  }

  #record(type: EventType, object: ApiObject, quiet: boolean): void {
    this.#rv++;
    object.metadata.resourceVersion = String(this.#rv);
    const entry = { rv: this.#rv, type, object: structuredClone(object) };
    this.#history.push(entry);
    if (quiet) return;
    for (const w of this.#watches) {
      if (shows(w.path, w.node, object)) w.send(eventLine(entry));
    }
  }

  #handle(request: Request): Response {
    const url = new URL(request.url);
    const authorization = request.headers.get("authorization");
    this.requests.push({ path: url.pathname, params: url.searchParams, authorization });
    const one = url.pathname.match(/^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/);
    if (one) {
      return this.#getPod(authorization, decodeURIComponent(one[1]), decodeURIComponent(one[2]));
    }
    const listKind = COLLECTIONS[url.pathname];
    if (!listKind) {
      return status(404, "NotFound", "the server could not find the requested resource");
    }
    const token = authorization?.replace(/^Bearer /, "");
    if (token === undefined || !this.tokens.has(token)) {
      return status(401, "Unauthorized", "Unauthorized");
    }
    const selector = url.searchParams.get("fieldSelector");
    const node = selector?.match(/^spec\.nodeName=(.+)$/)?.[1];
    if (url.searchParams.get("watch") === "1") {
      return this.#watch(url.pathname, url.searchParams, node);
    }
    const items = [...this.#objects.values()].filter((o) => shows(url.pathname, node, o));
    return Response.json({
      kind: listKind,
      apiVersion: url.pathname.startsWith("/apis/") ? "discovery.k8s.io/v1" : "v1",
      metadata: { resourceVersion: String(this.#rv) },
      items,
    });
  }

  /** `GET /api/v1/namespaces/{namespace}/pods/{name}`: the pod, or 404. */
  #getPod(authorization: string | null, namespace: string, name: string): Response {
    const token = authorization?.replace(/^Bearer /, "");
    if (token === undefined || !this.tokens.has(token)) {
      return status(401, "Unauthorized", "Unauthorized");
    }
    const found = [...this.#objects.values()].find((o) =>
      o.kind === "Pod" && o.metadata.namespace === namespace && o.metadata.name === name
    );
    if (!found) return status(404, "NotFound", `pods "${name}" not found`);
    return Response.json(found);
  }

  #watch(path: string, params: URLSearchParams, node: string | undefined): Response {
    const from = Number(params.get("resourceVersion") ?? this.#rv);
    const encoder = new TextEncoder();
    if (from < this.#oldest) {
      // What a real server does: 200, then one ERROR event, then the end of the stream.
      const error = {
        type: "ERROR",
        object: {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Failure",
          message: `too old resource version: ${from} (${this.#oldest})`,
          reason: "Expired",
          code: 410,
        },
      };
      return new Response(JSON.stringify(error) + "\n", {
        headers: { "content-type": "application/json" },
      });
    }
    const watches = this.#watches;
    let watch: Watch;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        watch = {
          path,
          node,
          send: (line) => controller.enqueue(encoder.encode(line)),
          fail: () => controller.error(new Error("connection reset")),
          end: () => {
            try {
              controller.close();
            } catch {
              // Already cancelled by the client.
            }
          },
        };
        for (const entry of this.#history) {
          if (entry.rv > from && shows(path, node, entry.object)) {
            watch.send(eventLine(entry));
          }
        }
        // A bookmark first, so the client knows the watch is up (real servers send them
        // periodically when allowWatchBookmarks is set).
        watch.send(
          JSON.stringify({
            type: "BOOKMARK",
            object: {
              kind: "Pod",
              apiVersion: "v1",
              metadata: { resourceVersion: String(this.#rv) },
            },
          }) + "\n",
        );
        watches.add(watch);
      },
      cancel: () => {
        watches.delete(watch);
      },
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  }
}

function eventLine(entry: HistoryEntry): string {
  return JSON.stringify({ type: entry.type, object: entry.object }) + "\n";
}

/** Whether a list or watch of `path` (for `node`) shows `object`. */
function shows(path: string, node: string | undefined, object: ApiObject): boolean {
  return collectionOf(object) === path && (!node || nodeOf(object) === node);
}

function status(code: number, reason: string, message: string): Response {
  return Response.json(
    { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code },
    { status: code },
  );
}

/** A running container's status as the kubelet reports it (containerd runtime). */
export function running(name: string, id: string, runtime = "containerd"): ContainerStatus {
  return {
    name,
    containerID: `${runtime}://${id}`,
    image: `registry.example.com/${name}:1.4.2`,
    imageID: `registry.example.com/${name}@sha256:${"ab".repeat(32)}`,
    ready: true,
    restartCount: 0,
    started: true,
    state: { running: { startedAt: "2026-11-25T18:02:11Z" } },
  };
}

/** A v1 Pod on `node` with the given container statuses. */
export function pod(
  namespace: string,
  name: string,
  node: string,
  statuses: Omit<Pod["status"], "phase">,
): Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace,
      uid: crypto.randomUUID(),
      creationTimestamp: "2026-11-25T18:02:03Z",
      labels: { app: name.replace(/-[a-z0-9]+-[a-z0-9]+$/, "") },
    },
    spec: {
      nodeName: node,
      containers: (statuses.containerStatuses ?? []).map((c) => ({ name: c.name, image: c.image })),
    },
    status: { phase: "Running", podIP: "10.244.1.17", ...statuses },
  };
}

/** A random 64-hex container id, as containerd makes them. */
export function containerId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A ClusterIP Service. */
export function service(namespace: string, name: string, clusterIP: string, port = 80): Service {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace, uid: crypto.randomUUID() },
    spec: { type: "ClusterIP", clusterIP, clusterIPs: [clusterIP], ports: [{ port }] },
  };
}

/** The EndpointSlice of Service `name`, one ready endpoint a pod. */
export function endpointSlice(
  namespace: string,
  name: string,
  pods: { name: string; ip: string }[],
  port = 8080,
): EndpointSlice {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name: `${name}-${crypto.randomUUID().slice(0, 5)}`,
      namespace,
      uid: crypto.randomUUID(),
      labels: { "kubernetes.io/service-name": name },
    },
    addressType: "IPv4",
    endpoints: pods.map((p) => ({
      addresses: [p.ip],
      conditions: { ready: true },
      targetRef: { kind: "Pod", name: p.name, namespace, uid: crypto.randomUUID() },
    })),
    ports: [{ port, protocol: "TCP" }],
  };
}

/** A started stand-in with the test certificate, a token it accepts and the files to reach it. */
export interface StandIn extends AsyncDisposable {
  server: FakeApiServer;
  /** Holds the token, as a service account's token file does. */
  tokenFile: string;
  /** The CA that signed the stand-in's certificate. */
  caFile: string;
}

/**
 * Starts a stand-in on 127.0.0.1 holding `objects`, with the test-only certificate of this
 * folder (README.md) and a token file it accepts; disposing it stops it and removes the file.
 */
export async function startStandIn(objects: ApiObject[] = []): Promise<StandIn> {
  const fixtures = new URL(".", import.meta.url).pathname;
  const server = new FakeApiServer(
    await Deno.readTextFile(`${fixtures}server.crt`),
    await Deno.readTextFile(`${fixtures}server.key`),
  );
  const dir = await Deno.makeTempDir({ prefix: "k8s-standin-" });
  const token = crypto.randomUUID();
  await Deno.writeTextFile(`${dir}/token`, `${token}\n`);
  server.tokens.add(token);
  for (const o of objects) server.put(o);
  server.start();
  return {
    server,
    tokenFile: `${dir}/token`,
    caFile: `${fixtures}ca.crt`,
    async [Symbol.asyncDispose]() {
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

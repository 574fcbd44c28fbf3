/**
 * Kubernetes pod metadata for container attribution: container id → namespace, pod, container.
 *
 * {@linkcode PodWatcher} lists the pods (of this node when `nodeName` is set) from the API server
 * and then WATCHes from the list's resourceVersion, so lookups cost a map read and the API sees
 * one long-lived request per collector, not one per event. When the API is unreachable the last
 * metadata seen is kept and used (`k8s_stale` says so), and the watcher reconnects with backoff.
 *
 * Counters (on the stage's counters): `k8s_pods` (gauge: pods indexed), `k8s_stale` (gauge: 1
 * while the metadata may be out of date because the API cannot be reached), `k8s_watch_errors`
 * (failed lists and watches, broken watch streams, ERROR events), `k8s_relists` (lists after the first, e.g. on 410
 * Gone), `k8s_pods_dropped` (pods not indexed because of the `maxPods` cap).
 *
 * TLS: `Deno.createHttpClient({ caCerts })` is stable in Deno 2.9.6 (no `--unstable-*` flag), and
 * keeps `fetch` with its AbortSignal, which ends a watch cleanly on close(); `node:https` with
 * `ca` works too but would add a second HTTP stack for no gain. Its verifier (rustls/webpki)
 * refuses a self-signed certificate used directly as the server's (CaUsedAsEndEntity); API
 * servers present a certificate signed by the cluster CA, which is what `ca.crt` holds.
 *
 * Permissions: `--allow-net=<host>:<port>` of the API server, `--allow-read` of the token and CA
 * files, `--allow-env=KUBERNETES_SERVICE_HOST,KUBERNETES_SERVICE_PORT,NODE_NAME`
 * (see `kubernetesPermissions` in src/transforms/kubernetes_api.ts).
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { KubernetesOptions, PodInfo, RemoteIdentity } from "../pipeline/host_facts.ts";
import type { StageCounters } from "../pipeline/stage.ts";

export type { KubernetesOptions, PodInfo, RemoteIdentity };

/** Knobs with production defaults; tests shorten the backoff. */
export interface PodWatcherTuning {
  /** First delay before a retry, doubled on each failure up to `maxBackoffMs`; default 500. */
  minBackoffMs?: number;
  /** Longest delay between retries; default 30000. */
  maxBackoffMs?: number;
  /** `timeoutSeconds` asked of the server for each watch; default 300. */
  watchTimeoutSeconds?: number;
  /** Most pods indexed; pods beyond are counted as `k8s_pods_dropped`; default 2000. */
  maxPods?: number;
}

/** The runtime prefix (`containerd://`, `docker://`, `cri-o://`) of a status containerID. */
const RUNTIME_PREFIX = /^[a-z0-9.+-]+:\/\//;

/** A container id without its runtime prefix, as cgroup paths show it. */
function bareContainerId(id: string): string {
  return id.replace(RUNTIME_PREFIX, "");
}

// The parts of a v1 Pod this module reads; everything is optional because it comes off the wire.
interface ContainerStatus {
  name?: string;
  containerID?: string;
}
interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: { [key: string]: string };
  ownerReferences?: { kind?: string; name?: string; controller?: boolean }[];
}
interface PodObject {
  metadata?: ObjectMeta;
  status?: {
    containerStatuses?: ContainerStatus[];
    initContainerStatuses?: ContainerStatus[];
    ephemeralContainerStatuses?: ContainerStatus[];
  };
}
interface StatusObject {
  kind?: string;
  code?: number;
  reason?: string;
  message?: string;
}

/** What a {@linkcode ListWatcher} keeps of the objects it lists and watches. */
interface ObjectIndex<O> {
  readonly size: number;
  readonly maxObjects: number;
  /** Adds or replaces an object; false when it is new and the index is full. */
  put(o: O): boolean;
  remove(o: O): void;
}

/** A resource to list and watch, and the index its objects go to. */
interface Resource<O, I extends ObjectIndex<O>> {
  /** The collection's path, e.g. `/api/v1/pods`. */
  path: string;
  /** Its plural, for messages and the counters `k8s_<plural>` and `k8s_<plural>_dropped`. */
  plural: string;
  singular: string;
  /** Listed for one node (`spec.nodeName`) when the options name one. */
  perNode: boolean;
  index(maxObjects: number): I;
}

/**
 * Objects by uid and the entries each gives, by id (a pod's containers, a Service's addresses),
 * capped at `maxObjects` objects; an id several objects give: the first put's.
 */
class EntryIndex<O extends { metadata?: ObjectMeta }, V> implements ObjectIndex<O> {
  readonly #ids = new Map<string, string[]>();
  readonly #byId = new Map<string, Map<string, V>>();
  constructor(
    readonly maxObjects: number,
    readonly entries: (o: O) => [string, V][],
  ) {}

  get size(): number {
    return this.#ids.size;
  }

  lookup(id: string): V | undefined {
    return this.#byId.get(id)?.values().next().value;
  }

  put(o: O): boolean {
    const key = objectKey(o);
    if (key === undefined) return true;
    const known = this.#ids.has(key);
    if (!known && this.#ids.size >= this.maxObjects) return false;
    if (known) this.remove(o);
    const ids: string[] = [];
    for (const [id, value] of this.entries(o)) {
      let holders = this.#byId.get(id);
      if (!holders) this.#byId.set(id, holders = new Map());
      holders.set(key, value);
      ids.push(id);
    }
    this.#ids.set(key, ids);
    return true;
  }

  remove(o: O): void {
    const key = objectKey(o);
    if (key === undefined) return;
    for (const id of this.#ids.get(key) ?? []) {
      const holders = this.#byId.get(id);
      holders?.delete(key);
      if (holders?.size === 0) this.#byId.delete(id);
    }
    this.#ids.delete(key);
  }
}

type PodIndex = EntryIndex<PodObject, PodInfo>;

/** A pod's containers that have been created, by bare id. */
function podContainers(pod: PodObject): [string, PodInfo][] {
  const namespace = pod.metadata?.namespace ?? "";
  const name = pod.metadata?.name ?? "";
  const out: [string, PodInfo][] = [];
  const status = pod.status ?? {};
  for (
    const list of [
      status.containerStatuses,
      status.initContainerStatuses,
      status.ephemeralContainerStatuses,
    ]
  ) {
    if (!Array.isArray(list)) continue;
    for (const c of list) {
      // A container not yet created has no containerID.
      if (typeof c?.containerID !== "string" || c.containerID === "") continue;
      out.push([bareContainerId(c.containerID), { namespace, pod: name, container: c.name ?? "" }]);
    }
  }
  return out;
}

// The uid tells apart an object deleted and re-created under the same name.
function objectKey(o: { metadata?: ObjectMeta }): string | undefined {
  const m = o?.metadata;
  if (!m) return undefined;
  return m.uid ?? (m.name === undefined ? undefined : `${m.namespace ?? ""}/${m.name}`);
}

/** The API answered with a status other than 2xx (or a watch ERROR event). */
class ApiError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** What the user must grant when the API refuses the service account. */
function permissionHint(status: number, plural: string): string {
  if (status === 401) return " (the token was refused)";
  if (status === 403) return ` (the service account needs get, list and watch on ${plural})`;
  return "";
}

/** One line for a failed request: fetch's own cause without the URL it repeats. */
function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = e.cause instanceof Error ? e.cause.message : "";
  const message = cause || e.message;
  return message.replace(/^error sending request for url \([^)]*\): /, "");
}

/** A watch stream that broke after the server had accepted it (e.g. a connection reset). */
class StreamError extends Error {
  constructor(cause: unknown) {
    super(describe(cause), { cause });
  }
}

/** A watch line longer than this is not a pod (the API caps objects at about 1.5 MiB). */
const MAX_EVENT_CHARS = 16 * 1024 * 1024;
/** How long a list may take before it is abandoned as hung. */
const LIST_DEADLINE_MS = 60_000;
/** How long past its `timeoutSeconds` a watch may stay open: catches half-open connections. */
const WATCH_GRACE_MS = 30_000;

/**
 * Keeps an index of one resource's objects from a list and a watch of the API server (the
 * pods' containers: {@linkcode PodWatcher}; Services and EndpointSlices:
 * {@linkcode RemoteIdentities}).
 */
class ListWatcher<O extends { metadata?: ObjectMeta }, I extends ObjectIndex<O>> {
  readonly #options: KubernetesOptions;
  readonly #log: Logger;
  readonly #counters: StageCounters;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #watchTimeoutSeconds: number;
  readonly #base: string;
  readonly #resource: Resource<O, I>;
  protected index: I;
  #client: Deno.HttpClient | undefined;
  #resourceVersion: string | undefined;
  #running: Promise<void> | undefined;
  #closed = false;
  /** Aborted by close(): ends the request in flight, and any started after. */
  readonly #stop = new AbortController();
  #sleepTimer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;
  #backoffMs: number;
  /** Failed attempts in the current outage; 0 while the API is reachable. */
  #failures = 0;
  #listed = false;
  #warnedFull = false;

  /** Makes a watcher; nothing is read or fetched until {@linkcode ListWatcher.start}. */
  constructor(
    resource: Resource<O, I>,
    maxObjects: number,
    options: KubernetesOptions,
    log: Logger,
    counters: StageCounters,
    tuning: PodWatcherTuning = {},
  ) {
    this.#resource = resource;
    this.#options = options;
    this.#log = log;
    this.#counters = counters;
    this.#minBackoffMs = tuning.minBackoffMs ?? 500;
    this.#maxBackoffMs = tuning.maxBackoffMs ?? 30_000;
    this.#watchTimeoutSeconds = tuning.watchTimeoutSeconds ?? 300;
    this.#backoffMs = this.#minBackoffMs;
    this.index = resource.index(maxObjects);
    this.#base = options.apiServer.replace(/\/+$/, "");
  }

  /** Lists, then watches, in the background until {@linkcode PodWatcher.close}; idempotent. */
  start(): void {
    if (this.#running || this.#closed) return;
    this.#running = this.#run();
  }

  /** Ends the watch and any retry timer; resolves once nothing is left running. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort();
    if (this.#sleepTimer !== undefined) clearTimeout(this.#sleepTimer);
    this.#wake?.();
    await this.#running;
    this.#client?.close();
    this.#client = undefined;
  }

  async #run(): Promise<void> {
    let needList = true;
    while (!this.#closed) {
      try {
        if (needList) {
          await this.#list();
          needList = false;
        }
        const events = await this.#watch();
        // A watch the server ended (timeoutSeconds) is renewed at once; one that ended with
        // nothing waits, so a proxy that closes at once is not hammered.
        if (events === 0) await this.#sleep(this.#nextBackoff());
      } catch (e) {
        if (this.#closed) break;
        if (e instanceof StreamError) {
          // The server was reachable a moment ago (an API server restarting, a load balancer
          // closing idle connections): resume from the resourceVersion; an outage is declared
          // only if reconnecting fails.
          this.#counters.add("k8s_watch_errors");
          this.#log.debug(`kubernetes: watch broke: ${e.message}; resuming`);
          await this.#sleep(this.#nextBackoff());
          continue;
        }
        if (e instanceof ApiError && e.code === 410) {
          // Our resourceVersion is older than the server keeps: only a new list catches up.
          this.#log.debug(`kubernetes: ${e.message}; listing ${this.#resource.plural} again`);
          needList = true;
          continue;
        }
        this.#failed(e);
        // An ERROR event other than 410 leaves the stream's state unknown: list again.
        if (e instanceof ApiError && e.code !== 401 && e.code !== 403) needList = true;
        await this.#sleep(this.#nextBackoff());
      }
    }
  }

  async #list(): Promise<void> {
    if (this.#listed) this.#counters.add("k8s_relists");
    // resourceVersion=0 is served from the API server's watch cache, not etcd: what client-go
    // does for its first list, and cheap when every node's collector lists at once.
    const list = await this.#get(
      this.#url({ resourceVersion: "0" }),
      LIST_DEADLINE_MS,
      (r) => r.json() as Promise<{ metadata?: { resourceVersion?: string }; items?: O[] }>,
    );
    const index = this.#resource.index(this.index.maxObjects);
    let dropped = 0;
    for (const pod of Array.isArray(list.items) ? list.items : []) {
      if (!index.put(pod)) dropped++;
    }
    this.index = index;
    this.#resourceVersion = list.metadata?.resourceVersion;
    this.#listed = true;
    if (dropped > 0) this.#dropped(dropped);
    this.#counters.set(`k8s_${this.#resource.plural}`, index.size);
    this.#log.debug(`kubernetes: listed ${index.size} ${this.#resource.plural}${this.#onNode()}`);
  }

  /** Watches until the stream ends; returns how many events it delivered. */
  async #watch(): Promise<number> {
    const query: Record<string, string> = {
      watch: "1",
      allowWatchBookmarks: "true",
      timeoutSeconds: String(this.#watchTimeoutSeconds),
    };
    if (this.#resourceVersion !== undefined) query.resourceVersion = this.#resourceVersion;
    const deadline = this.#watchTimeoutSeconds * 1000 + WATCH_GRACE_MS;
    return await this.#get(this.#url(query), deadline, (r) => this.#readEvents(r));
  }

  /** Applies a watch stream's events until it ends; returns how many it delivered. */
  async #readEvents(response: Response): Promise<number> {
    let events = 0;
    let pending = "";
    // Where to look for the next newline: a large object arrives in many chunks.
    let searchFrom = 0;
    const decoder = new TextDecoder();
    // Read to its end or cancelled by the abort: either way the body is not left open.
    for await (const chunk of response.body!) {
      pending += decoder.decode(chunk, { stream: true });
      let newline;
      while ((newline = pending.indexOf("\n", searchFrom)) >= 0) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        searchFrom = 0;
        if (line === "") continue;
        this.#event(line);
        events++;
        // Any event (a bookmark too) shows the API is healthy: later failures start small.
        this.#backoffMs = this.#minBackoffMs;
      }
      searchFrom = pending.length;
      if (pending.length > MAX_EVENT_CHARS) {
        throw new Error(`watch event longer than ${MAX_EVENT_CHARS} characters`);
      }
    }
    return events;
  }

  #event(line: string): void {
    let event: { type?: string; object?: O & StatusObject };
    try {
      event = JSON.parse(line);
    } catch {
      throw new Error(`watch sent a line that is not JSON: ${line.slice(0, 80)}`);
    }
    const object = event.object ?? {} as O & StatusObject;
    switch (event.type) {
      case "ADDED":
      case "MODIFIED":
        if (!this.index.put(object)) this.#dropped(1);
        break;
      case "DELETED":
        this.index.remove(object);
        break;
      case "BOOKMARK":
        break;
      case "ERROR":
        throw new ApiError(
          object.code ?? 0,
          `watch ERROR ${object.code ?? "?"} ${object.reason ?? ""}: ${object.message ?? ""}`,
        );
      default:
        return;
    }
    const rv = object.metadata?.resourceVersion;
    if (rv !== undefined) this.#resourceVersion = rv;
    this.#counters.set(`k8s_${this.#resource.plural}`, this.index.size);
  }

  /**
   * One GET of the resource: `read` gets the response once its status is 200 (anything
   * else throws an ApiError). The request is aborted if `read` is not done within `deadlineMs`.
   */
  async #get<T>(url: string, deadlineMs: number, read: (r: Response) => Promise<T>): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    const token = await this.#token();
    if (token) headers.Authorization = `Bearer ${token}`;
    const client = await this.#httpClient();
    const late = new AbortController();
    const deadline = setTimeout(() => late.abort(new Error("no answer in time")), deadlineMs);
    const signal = AbortSignal.any([this.#stop.signal, late.signal]);
    try {
      const response = await fetch(url, { headers, client, signal });
      if (response.status !== 200) {
        const status = await response.json().catch(() => ({})) as StatusObject;
        throw new ApiError(
          response.status,
          `GET ${new URL(url).pathname}: ${response.status} ${response.statusText}` +
            (status.message ? `: ${status.message}` : "") +
            permissionHint(response.status, this.#resource.plural),
        );
      }
      this.#recovered();
      try {
        return await read(response);
      } catch (e) {
        if (e instanceof ApiError || this.#stop.signal.aborted) throw e;
        throw new StreamError(e);
      }
    } finally {
      clearTimeout(deadline);
    }
  }

  async #token(): Promise<string | undefined> {
    if (this.#options.tokenFile !== undefined) {
      return (await Deno.readTextFile(this.#options.tokenFile)).trim();
    }
    return this.#options.token;
  }

  async #httpClient(): Promise<Deno.HttpClient | undefined> {
    if (this.#client === undefined && this.#options.caFile !== undefined) {
      const ca = await Deno.readTextFile(this.#options.caFile);
      this.#client = Deno.createHttpClient({ caCerts: [ca] });
    }
    return this.#client;
  }

  /**
   * One object by its path (`/api/v1/namespaces/shop/pods/cart-7d9f-x2`), or undefined when
   * the API says it does not exist (404); other failures throw.
   */
  async getObject(path: string): Promise<unknown> {
    try {
      return await this.#get(`${this.#base}${path}`, LIST_DEADLINE_MS, (r) => r.json());
    } catch (e) {
      if (e instanceof ApiError && e.code === 404) return undefined;
      throw e;
    }
  }

  #url(query: Record<string, string>): string {
    const params = new URLSearchParams();
    if (this.#resource.perNode && this.#options.nodeName) {
      params.set("fieldSelector", `spec.nodeName=${this.#options.nodeName}`);
    }
    for (const [k, v] of Object.entries(query)) params.set(k, v);
    return `${this.#base}${this.#resource.path}?${params}`;
  }

  #failed(e: unknown): void {
    this.#counters.add("k8s_watch_errors");
    this.#failures++;
    if (this.#failures === 1) {
      this.#counters.set("k8s_stale", 1);
      const keeping = this.#listed
        ? `keeping the metadata of the ${this.index.size} ${this.#resource.plural} last seen`
        : `no ${this.#resource.singular} metadata yet`;
      this.#log.warn(
        `kubernetes: cannot watch ${this.#resource.plural} at ${this.#base}: ${describe(e)}; ` +
          `${keeping}, retrying`,
      );
    } else {
      this.#log.debug(`kubernetes: attempt ${this.#failures} failed: ${describe(e)}`);
    }
  }

  #recovered(): void {
    if (this.#failures === 0) return;
    this.#log.info(
      `kubernetes: API server at ${this.#base} answers again after ${this.#failures} failed ` +
        `attempts; ${this.#resource.singular} metadata is current`,
    );
    this.#failures = 0;
    this.#counters.set("k8s_stale", 0);
  }

  #dropped(n: number): void {
    const { plural, perNode } = this.#resource;
    this.#counters.add(`k8s_${plural}_dropped`, n);
    if (this.#warnedFull) return;
    this.#warnedFull = true;
    const hint = perNode && !this.#options.nodeName
      ? " (set NODE_NAME to watch this node only)"
      : "";
    this.#log.warn(
      `kubernetes: more than ${this.index.maxObjects} ${plural}${this.#onNode()}; the others ` +
        `get no k8s_* tags${hint}`,
    );
  }

  #onNode(): string {
    return this.#resource.perNode && this.#options.nodeName
      ? ` on node ${this.#options.nodeName}`
      : "";
  }

  #nextBackoff(): number {
    const delay = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, this.#maxBackoffMs);
    return delay;
  }

  #sleep(ms: number): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#sleepTimer = setTimeout(() => {
        this.#sleepTimer = undefined;
        resolve();
      }, ms);
    });
  }
}

const PODS: Resource<PodObject, PodIndex> = {
  path: "/api/v1/pods",
  plural: "pods",
  singular: "pod",
  perNode: true,
  index: (max) => new EntryIndex(max, podContainers),
};

/**
 * Keeps an index of the pods' containers from a list and a watch of the API server.
 *
 * @example
 * ```ts
 * const options = inClusterOptions((name) => Deno.env.get(name));
 * if (options) {
 *   const pods = new PodWatcher(options, ctx.log, ctx.counters);
 *   pods.start();
 *   pods.lookup("4f0c…");  // { namespace: "shop", pod: "cart-7d9f", container: "app" }
 *   await pods.close();
 * }
 * ```
 */
export class PodWatcher extends ListWatcher<PodObject, PodIndex> {
  constructor(
    options: KubernetesOptions,
    log: Logger,
    counters: StageCounters,
    tuning: PodWatcherTuning = {},
  ) {
    super(PODS, tuning.maxPods ?? 2000, options, log, counters, tuning);
  }

  /** The pod running a container, by id with or without its runtime prefix. */
  lookup(containerId: string): PodInfo | undefined {
    return this.index.lookup(bareContainerId(containerId));
  }
}

// ---------------------------------------------------------------------------------------------
// The remote end of a connection: Services (their ClusterIPs) and EndpointSlices (the pods
// behind them, `targetRef`), cluster-wide, instead of every pod of the cluster.

interface ServiceObject {
  metadata?: ObjectMeta;
  spec?: { clusterIP?: string; clusterIPs?: string[] };
}
interface EndpointSliceObject {
  metadata?: ObjectMeta;
  endpoints?: {
    addresses?: string[];
    targetRef?: { kind?: string; name?: string; namespace?: string };
  }[];
}

/** A Service's cluster IPs (not "None": a headless Service has none). */
function serviceAddresses(s: ServiceObject): [string, RemoteIdentity][] {
  const namespace = s.metadata?.namespace ?? "", service = s.metadata?.name ?? "";
  const ips = s.spec?.clusterIPs ?? (s.spec?.clusterIP ? [s.spec.clusterIP] : []);
  return ips.filter((ip) => typeof ip === "string" && ip !== "None" && ip !== "")
    .map((ip) => [ip, { namespace, service }]);
}

/** An EndpointSlice's endpoints: each address, its pod (`targetRef`) and the slice's Service. */
function sliceAddresses(slice: EndpointSliceObject): [string, RemoteIdentity][] {
  const namespace = slice.metadata?.namespace ?? "";
  const service = slice.metadata?.labels?.["kubernetes.io/service-name"];
  const out: [string, RemoteIdentity][] = [];
  for (const e of Array.isArray(slice.endpoints) ? slice.endpoints : []) {
    const ref = e?.targetRef;
    const pod = ref?.kind === "Pod" && typeof ref.name === "string" ? ref.name : undefined;
    for (const ip of Array.isArray(e?.addresses) ? e.addresses : []) {
      if (typeof ip !== "string") continue;
      out.push([ip, {
        namespace: ref?.namespace ?? namespace,
        ...(service ? { service } : {}),
        ...(pod ? { pod } : {}),
      }]);
    }
  }
  return out;
}

type ServiceIndex = EntryIndex<ServiceObject, RemoteIdentity>;
type SliceIndex = EntryIndex<EndpointSliceObject, RemoteIdentity>;

const SERVICES: Resource<ServiceObject, ServiceIndex> = {
  path: "/api/v1/services",
  plural: "services",
  singular: "service",
  perNode: false,
  index: (max) => new EntryIndex(max, serviceAddresses),
};

const ENDPOINT_SLICES: Resource<EndpointSliceObject, SliceIndex> = {
  path: "/apis/discovery.k8s.io/v1/endpointslices",
  plural: "endpointslices",
  singular: "endpointslice",
  perNode: false,
  index: (max) => new EntryIndex(max, sliceAddresses),
};

class AddressWatcher<O extends { metadata?: ObjectMeta }>
  extends ListWatcher<O, EntryIndex<O, RemoteIdentity>> {
  lookup(ip: string): RemoteIdentity | undefined {
    return this.index.lookup(ip);
  }
}

/**
 * A pod's workload from its owner references: `Deployment/cart` for a pod of a Deployment's
 * ReplicaSet (the ReplicaSet's name is the Deployment's and the pod's `pod-template-hash`),
 * else its controller's `Kind/name` (`StatefulSet/db`, `DaemonSet/agent`, `Job/...`); "" for a
 * pod of no controller.
 */
export function workloadOf(pod: unknown): string {
  const m = (pod as { metadata?: ObjectMeta } | undefined)?.metadata;
  const owners = Array.isArray(m?.ownerReferences) ? m.ownerReferences : [];
  const owner = owners.find((o) => o?.controller) ?? owners[0];
  if (typeof owner?.kind !== "string" || typeof owner.name !== "string") return "";
  const hash = m?.labels?.["pod-template-hash"];
  if (owner.kind === "ReplicaSet" && hash && owner.name.endsWith(`-${hash}`)) {
    return `Deployment/${owner.name.slice(0, -hash.length - 1)}`;
  }
  return `${owner.kind}/${owner.name}`;
}

/** How long a pod whose workload could not be read waits before it is asked for again. */
const WORKLOAD_RETRY_MS = 30_000;

/** Knobs of {@linkcode RemoteIdentities}: the watchers' tuning and the caps of its indexes. */
export interface RemoteTuning extends PodWatcherTuning {
  /** Most Services indexed (beyond: `k8s_services_dropped`); default 10000. */
  maxServices?: number;
  /** Most EndpointSlices indexed (beyond: `k8s_endpointslices_dropped`); default 20000. */
  maxEndpointSlices?: number;
  /** Most remote pods' workloads remembered (the oldest go first); default 10000. */
  maxWorkloads?: number;
}

/**
 * Who is at an address of the cluster: a Service's ClusterIP (namespace, service) or a pod
 * behind a Service (namespace, pod, and the service), from a list and a watch of the Services
 * and EndpointSlices (each endpoint's `targetRef` names its pod): bounded by the cluster's
 * services, not its pods. A pod's workload comes from its owner references, read with one GET
 * the first time the pod is seen (not yet known on that first lookup), remembered (bounded).
 * Counters `k8s_services`, `k8s_endpointslices`, `k8s_workloads` (gauges), the first two's
 * `_dropped`, and `k8s_workload_errors` (GETs that failed, retried after 30 s).
 */
export class RemoteIdentities {
  readonly #services: AddressWatcher<ServiceObject>;
  readonly #slices: AddressWatcher<EndpointSliceObject>;
  readonly #counters: StageCounters;
  readonly #log: Logger;
  readonly #maxWorkloads: number;
  /** "namespace/pod" → its workload ("": none, or the pod is gone). */
  readonly #workloads = new Map<string, string>();
  /** Pods being asked for, and when the last failed attempt for one was. */
  readonly #asking = new Map<string, Promise<void>>();
  readonly #failedAt = new Map<string, number>();
  #closed = false;

  constructor(
    options: KubernetesOptions,
    log: Logger,
    counters: StageCounters,
    tuning: RemoteTuning = {},
  ) {
    this.#services = new AddressWatcher(
      SERVICES,
      tuning.maxServices ?? 10_000,
      options,
      log,
      counters,
      tuning,
    );
    this.#slices = new AddressWatcher(
      ENDPOINT_SLICES,
      tuning.maxEndpointSlices ?? 20_000,
      options,
      log,
      counters,
      tuning,
    );
    this.#counters = counters;
    this.#log = log;
    this.#maxWorkloads = tuning.maxWorkloads ?? 10_000;
  }

  /** Lists, then watches, in the background until {@linkcode RemoteIdentities.close}. */
  start(): void {
    this.#services.start();
    this.#slices.start();
  }

  /** Who is at `ip`: a Service's ClusterIP first, else a pod an EndpointSlice names. */
  lookup(ip: string): RemoteIdentity | undefined {
    const found = this.#services.lookup(ip) ?? this.#slices.lookup(ip);
    if (!found?.pod) return found;
    const key = `${found.namespace}/${found.pod}`;
    const workload = this.#workloads.get(key);
    if (workload === undefined) this.#ask(found.namespace, found.pod, key);
    return workload ? { ...found, workload } : found;
  }

  /** Reads a pod's owner references in the background (one request at a time per pod). */
  #ask(namespace: string, pod: string, key: string): void {
    if (this.#closed || this.#asking.has(key)) return;
    if (Date.now() - (this.#failedAt.get(key) ?? -Infinity) < WORKLOAD_RETRY_MS) return;
    const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/` +
      encodeURIComponent(pod);
    const asked = this.#slices.getObject(path).then((object) => {
      if (this.#workloads.size >= this.#maxWorkloads) {
        this.#workloads.delete(this.#workloads.keys().next().value!);
      }
      this.#workloads.set(key, workloadOf(object));
      this.#failedAt.delete(key);
      this.#counters.set("k8s_workloads", this.#workloads.size);
    }, (e) => {
      if (this.#closed) return;
      this.#counters.add("k8s_workload_errors");
      this.#failedAt.set(key, Date.now());
      this.#log.debug(`kubernetes: cannot read pod ${key}: ${describe(e)}`);
    }).finally(() => this.#asking.delete(key));
    this.#asking.set(key, asked);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([this.#services.close(), this.#slices.close()]);
    await Promise.allSettled(this.#asking.values());
  }
}

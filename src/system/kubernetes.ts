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
import type { KubernetesOptions, PodInfo } from "../pipeline/host_facts.ts";
import type { StageCounters } from "../pipeline/stage.ts";

export type { KubernetesOptions, PodInfo };

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
interface PodObject {
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
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

/** Pods by uid and their containers by id, capped at `maxPods` pods. */
class PodIndex {
  #containerIds = new Map<string, string[]>();
  #containers = new Map<string, PodInfo>();
  constructor(readonly maxPods: number) {}

  get size(): number {
    return this.#containerIds.size;
  }

  lookup(id: string): PodInfo | undefined {
    return this.#containers.get(id);
  }

  /** Adds or replaces a pod; false when it is new and the index is full. */
  put(pod: PodObject): boolean {
    const key = podKey(pod);
    if (key === undefined) return true;
    const known = this.#containerIds.has(key);
    if (!known && this.#containerIds.size >= this.maxPods) return false;
    if (known) this.remove(pod);
    const namespace = pod.metadata?.namespace ?? "";
    const name = pod.metadata?.name ?? "";
    const ids: string[] = [];
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
        const id = bareContainerId(c.containerID);
        ids.push(id);
        this.#containers.set(id, { namespace, pod: name, container: c.name ?? "" });
      }
    }
    this.#containerIds.set(key, ids);
    return true;
  }

  remove(pod: PodObject): void {
    const key = podKey(pod);
    if (key === undefined) return;
    for (const id of this.#containerIds.get(key) ?? []) this.#containers.delete(id);
    this.#containerIds.delete(key);
  }
}

// The uid tells apart a pod deleted and re-created under the same name.
function podKey(pod: PodObject): string | undefined {
  const m = pod?.metadata;
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
function permissionHint(status: number): string {
  if (status === 401) return " (the token was refused)";
  if (status === 403) return " (the service account needs get, list and watch on pods)";
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
export class PodWatcher {
  readonly #options: KubernetesOptions;
  readonly #log: Logger;
  readonly #counters: StageCounters;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #watchTimeoutSeconds: number;
  readonly #base: string;
  #index: PodIndex;
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

  /** Makes a watcher; nothing is read or fetched until {@linkcode PodWatcher.start}. */
  constructor(
    options: KubernetesOptions,
    log: Logger,
    counters: StageCounters,
    tuning: PodWatcherTuning = {},
  ) {
    this.#options = options;
    this.#log = log;
    this.#counters = counters;
    this.#minBackoffMs = tuning.minBackoffMs ?? 500;
    this.#maxBackoffMs = tuning.maxBackoffMs ?? 30_000;
    this.#watchTimeoutSeconds = tuning.watchTimeoutSeconds ?? 300;
    this.#backoffMs = this.#minBackoffMs;
    this.#index = new PodIndex(tuning.maxPods ?? 2000);
    this.#base = options.apiServer.replace(/\/+$/, "");
  }

  /** Lists, then watches, in the background until {@linkcode PodWatcher.close}; idempotent. */
  start(): void {
    if (this.#running || this.#closed) return;
    this.#running = this.#run();
  }

  /** The pod running a container, by id with or without its runtime prefix. */
  lookup(containerId: string): PodInfo | undefined {
    return this.#index.lookup(bareContainerId(containerId));
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
          this.#log.debug(`kubernetes: ${e.message}; listing pods again`);
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
      (r) => r.json() as Promise<{ metadata?: { resourceVersion?: string }; items?: PodObject[] }>,
    );
    const index = new PodIndex(this.#index.maxPods);
    let dropped = 0;
    for (const pod of Array.isArray(list.items) ? list.items : []) {
      if (!index.put(pod)) dropped++;
    }
    this.#index = index;
    this.#resourceVersion = list.metadata?.resourceVersion;
    this.#listed = true;
    if (dropped > 0) this.#droppedPods(dropped);
    this.#counters.set("k8s_pods", index.size);
    this.#log.debug(`kubernetes: listed ${index.size} pods${this.#onNode()}`);
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
    let event: { type?: string; object?: PodObject & StatusObject };
    try {
      event = JSON.parse(line);
    } catch {
      throw new Error(`watch sent a line that is not JSON: ${line.slice(0, 80)}`);
    }
    const object = event.object ?? {};
    switch (event.type) {
      case "ADDED":
      case "MODIFIED":
        if (!this.#index.put(object)) this.#droppedPods(1);
        break;
      case "DELETED":
        this.#index.remove(object);
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
    this.#counters.set("k8s_pods", this.#index.size);
  }

  /**
   * One GET of the pods resource: `read` gets the response once its status is 200 (anything
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
            (status.message ? `: ${status.message}` : "") + permissionHint(response.status),
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

  #url(query: Record<string, string>): string {
    const params = new URLSearchParams();
    if (this.#options.nodeName) {
      params.set("fieldSelector", `spec.nodeName=${this.#options.nodeName}`);
    }
    for (const [k, v] of Object.entries(query)) params.set(k, v);
    return `${this.#base}/api/v1/pods?${params}`;
  }

  #failed(e: unknown): void {
    this.#counters.add("k8s_watch_errors");
    this.#failures++;
    if (this.#failures === 1) {
      this.#counters.set("k8s_stale", 1);
      const keeping = this.#listed
        ? `keeping the metadata of the ${this.#index.size} pods last seen`
        : "no pod metadata yet";
      this.#log.warn(
        `kubernetes: cannot watch pods at ${this.#base}: ${describe(e)}; ${keeping}, retrying`,
      );
    } else {
      this.#log.debug(`kubernetes: attempt ${this.#failures} failed: ${describe(e)}`);
    }
  }

  #recovered(): void {
    if (this.#failures === 0) return;
    this.#log.info(
      `kubernetes: API server at ${this.#base} answers again after ${this.#failures} failed ` +
        `attempts; pod metadata is current`,
    );
    this.#failures = 0;
    this.#counters.set("k8s_stale", 0);
  }

  #droppedPods(n: number): void {
    this.#counters.add("k8s_pods_dropped", n);
    if (this.#warnedFull) return;
    this.#warnedFull = true;
    this.#log.warn(
      `kubernetes: more than ${this.#index.maxPods} pods${this.#onNode()}; the others get no ` +
        `k8s_* tags` + (this.#options.nodeName ? "" : " (set NODE_NAME to watch this node only)"),
    );
  }

  #onNode(): string {
    return this.#options.nodeName ? ` on node ${this.#options.nodeName}` : "";
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

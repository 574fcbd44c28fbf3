/**
 * What stages may know of the host their records come from: its ephemeral port range, the
 * container of a cgroup, the pod of a container. Stages get it as `ctx.hostFacts` and never
 * read the host themselves, so transforms, windows and outputs import nothing that touches the
 * kernel, and a replay tags records as the host they were recorded on would, on any machine.
 *
 * Three kinds of facts, one interface ({@linkcode HostFacts}):
 * - when collecting, this host's (src/system/host_facts.ts, built once by main.ts);
 * - in a replay, the recording's ({@linkcode RecordedHostFacts}, from its header and fact lines;
 *   src/pipeline/recording.ts);
 * - in `--test` and unit tests, {@linkcode OFFLINE_HOST_FACTS}: of no host at all.
 *
 * This is a contract (like stage.ts): change it in one commit with every user.
 */
import type { BoundCounters } from "../counters.ts";
import type { Logger } from "../log.ts";

/** An inclusive range of ports, `low` <= `high`, both within 1..65535. */
export interface PortRange {
  readonly low: number;
  readonly high: number;
}

/** The host's ephemeral port range, and why it is the Linux default when its own was unknown. */
export interface PortRangeFact {
  readonly range: PortRange;
  readonly problem?: string;
}

/** The Linux default ephemeral port range (Documentation/networking/ip-sysctl). */
export const LINUX_DEFAULT_RANGE: PortRange = { low: 32768, high: 60999 };

/** Who runs a container: what the collector tags as `k8s_namespace`, `k8s_pod`, `k8s_container`. */
export interface PodInfo {
  namespace: string;
  pod: string;
  container: string;
}

/**
 * Who is at a cluster address, the remote end of a connection: what the collector tags as
 * `dst_k8s_namespace`, `dst_k8s_service`, `dst_k8s_pod`, `dst_k8s_workload`. A Service's ClusterIP has a service;
 * a pod behind a Service has its pod and (from its EndpointSlice) its service.
 */
export interface RemoteIdentity {
  namespace: string;
  service?: string;
  pod?: string;
  /** The pod's controller, from its owner references: `Deployment/cart`, `StatefulSet/db`. */
  workload?: string;
}

/** Where the Kubernetes API server is and how to authenticate to it. */
export interface KubernetesOptions {
  /** Base URL, e.g. `https://10.96.0.1:443`. */
  apiServer: string;
  /** A fixed bearer token; `tokenFile` wins when both are given. */
  token?: string;
  /** A file holding the bearer token, re-read on every (re)connect: bound tokens rotate. */
  tokenFile?: string;
  /** PEM file of the CA that signed the API server's certificate; system roots when absent. */
  caFile?: string;
  /** Only pods scheduled on this node are listed and watched (`spec.nodeName`). */
  nodeName?: string;
}

/** What a stage asks of {@linkcode HostFacts.containers}. */
export interface ContainerOptions {
  /** The cgroup v2 mount; "" finds it in /proc/mounts. */
  cgroup: string;
  /** The most cgroup ids remembered. */
  maxEntries: number;
  /** Shortest time between walks of the cgroup mount, in milliseconds. */
  rescanIntervalMs: number;
  /** Pod metadata from this API server; none without. */
  kubernetes?: KubernetesOptions;
}

/** Running totals of a {@linkcode ContainerFacts}' cache, for the stage's counters. */
export interface ContainerStats {
  /** Lookups answered from the cache. */
  hits: number;
  /** Lookups the cache could not answer. */
  misses: number;
  /** Entries dropped to stay within maxEntries. */
  evictions: number;
  /** Walks of the cgroup mount. */
  scans: number;
  /** Misses left unanswered because the last walk was too recent. */
  deferred: number;
}

/** Containers and pods of one stage's records; closed by the stage that asked for it. */
export interface ContainerFacts {
  /** What is read, for messages (the cgroup mount). */
  readonly source: string;
  /**
   * The container id of cgroup `id`, or undefined when it is in none (or cannot be told).
   * Throws when the source cannot be read (the mount went away).
   */
  container(id: bigint): string | undefined;
  /** The pod running container `id`, when pod metadata was asked for and is known. */
  pod(containerId: string): PodInfo | undefined;
  /** Who is at cluster address `ip` (a ClusterIP, a pod's), when pod metadata was asked for. */
  remote(ip: string): RemoteIdentity | undefined;
  /** Running totals (live: read for every record). */
  readonly stats: Readonly<ContainerStats>;
  /** Ids cached. */
  readonly size: number;
  close(): void | Promise<void>;
}

/** What stages may know of the host their records come from (see the module doc). */
export interface HostFacts {
  /** Its ephemeral port range (`net.ipv4.ip_local_port_range`). */
  portRange(): PortRangeFact;
  /**
   * Starts telling containers (and pods) from cgroup ids. `warn` hears, once, why there will be
   * none (no cgroup v2 mount); `log` and `counters` are the stage's, for the pod watcher's
   * `k8s_*` counters and lines.
   */
  containers(
    options: ContainerOptions,
    env: { log: Logger; counters: BoundCounters; warn: (problem: string) => void },
  ): ContainerFacts;
}

const NO_STATS: ContainerStats = { hits: 0, misses: 0, evictions: 0, scans: 0, deferred: 0 };

/**
 * Facts of no host: the Linux default port range, no container and no pod. What `--test` and
 * stage unit tests run with, so a test gives the same result on every machine.
 */
export const OFFLINE_HOST_FACTS: HostFacts = {
  portRange: () => ({ range: LINUX_DEFAULT_RANGE }),
  containers: () => new RecordedContainers(new Map(), new Map(), new Map(), "no host"),
};

/** Container facts from a map: a replay's (what was recorded) or none. */
class RecordedContainers implements ContainerFacts {
  readonly #stats = { ...NO_STATS };
  constructor(
    readonly containers: ReadonlyMap<bigint, string>,
    readonly pods: ReadonlyMap<string, PodInfo>,
    readonly remotes: ReadonlyMap<string, RemoteIdentity>,
    readonly source: string,
  ) {}
  container(id: bigint): string | undefined {
    const found = this.containers.get(id);
    if (found === undefined) this.#stats.misses++;
    else this.#stats.hits++;
    return found;
  }
  pod(containerId: string): PodInfo | undefined {
    return this.pods.get(containerId);
  }
  remote(ip: string): RemoteIdentity | undefined {
    return this.remotes.get(ip);
  }
  get stats(): Readonly<ContainerStats> {
    return this.#stats;
  }
  get size(): number {
    return this.containers.size;
  }
  close(): void {}
}

/** One host fact as a recording keeps it (a line of its own; recording.ts). */
export type HostFact =
  | { fact: "container"; cgroupId: bigint; containerId: string }
  | { fact: "pod"; containerId: string; pod: PodInfo }
  | { fact: "remote"; ip: string; remote: RemoteIdentity };

/**
 * The facts a recording was made with: the port range from its header, the containers and
 * pods its container stages saw (each first seen), known from the replay's start (a cgroup's
 * container and a container's pod never change).
 */
export class RecordedHostFacts implements HostFacts {
  readonly #range: PortRange;
  readonly #containers = new Map<bigint, string>();
  readonly #pods = new Map<string, PodInfo>();
  readonly #remotes = new Map<string, RemoteIdentity>();
  readonly #file: string;

  constructor(file: string, range: PortRange) {
    this.#file = file;
    this.#range = range;
  }

  /** Learns one fact line. */
  add(f: HostFact): void {
    if (f.fact === "container") this.#containers.set(f.cgroupId, f.containerId);
    else if (f.fact === "pod") this.#pods.set(f.containerId, f.pod);
    // An address may change hands during a recording: the last one recorded is kept.
    else this.#remotes.set(f.ip, f.remote);
  }

  portRange(): PortRangeFact {
    return { range: this.#range };
  }

  containers(): ContainerFacts {
    return new RecordedContainers(
      this.#containers,
      this.#pods,
      this.#remotes,
      `recording ${this.#file}`,
    );
  }
}

/**
 * `facts`, telling `record` each container and pod fact when first seen (`--record`), so a
 * replay of the recording knows them.
 */
export function recordingHostFacts(
  facts: HostFacts,
  record: (fact: HostFact) => void,
): HostFacts {
  const seenContainers = new Set<bigint>(), seenPods = new Set<string>();
  // An address's identity as last recorded: recorded again when it changes hands.
  const seenRemotes = new Map<string, string>();
  return {
    portRange: () => facts.portRange(),
    containers(options, env) {
      const inner = facts.containers(options, env);
      return {
        get source() {
          return inner.source;
        },
        container(id) {
          const found = inner.container(id);
          if (found !== undefined && !seenContainers.has(id)) {
            seenContainers.add(id);
            record({ fact: "container", cgroupId: id, containerId: found });
          }
          return found;
        },
        pod(containerId) {
          const found = inner.pod(containerId);
          if (found !== undefined && !seenPods.has(containerId)) {
            seenPods.add(containerId);
            record({ fact: "pod", containerId, pod: found });
          }
          return found;
        },
        remote(ip) {
          const found = inner.remote(ip);
          if (found !== undefined) {
            const text = JSON.stringify(found);
            if (seenRemotes.get(ip) !== text) {
              seenRemotes.set(ip, text);
              record({ fact: "remote", ip, remote: found });
            }
          }
          return found;
        },
        get stats() {
          return inner.stats;
        },
        get size() {
          return inner.size;
        },
        close: () => inner.close(),
      };
    },
  };
}

/**
 * The `container` transform: tags records with the container (and, with Kubernetes, the pod)
 * their process or socket belongs to, from the `cgroup_id` field the probes capture in the
 * kernel.
 *
 * ```yaml
 * transforms:
 *   containers:
 *     type: container
 *     inputs: [bash, netflow, dns]
 *     # keep_cgroup_id: false
 *     # kubernetes: true          # in a pod: the service account, the API from the environment
 * ```
 *
 * A record with a `cgroup_id` field whose cgroup is a container's gets the tag `container_id`
 * (64 hex digits); with Kubernetes metadata also `k8s_namespace`, `k8s_pod`, `k8s_container`
 * (from a list-then-watch of the API server's pods, src/system/kubernetes.ts; kept, stale,
 * while the API is unreachable). Processes outside containers get no tag. With Kubernetes a
 * record's remote end is named too, from its `dst_ip` and `dst_nat_ip` tags (netflow, dnsflow):
 * `dst_k8s_namespace`, `dst_k8s_service` for a Service's ClusterIP, `dst_k8s_pod` for the pod
 * behind it (through NAT) or a pod's own address, from a list-then-watch of the Services and
 * EndpointSlices (not every pod of the cluster), and `dst_k8s_workload` from that pod's owner
 * references (`Deployment/cart`; one GET of the pod when first seen, so not on that record). `cgroup_id` is
 * removed (it means nothing off this host) unless `keep_cgroup_id`. Records without it pass
 * unchanged. The cgroup id → container id mapping is in src/system/containers.ts.
 *
 * Both come through the stage's host facts (`ctx.hostFacts.containers`): this host's when
 * collecting; in a replay, the containers and pods the recording's container stages saw (a
 * recording keeps each when first seen), so a replay tags as the recording host did, on any
 * machine. A recording made without a container stage has none: its replay tags nothing.
 * In `--test` no record is in a container.
 *
 * Counters: `container_cache_hits`, `container_cache_misses`, `container_cache_evictions`,
 * `cgroup_scans`, `container_lookups_deferred` (misses within `rescan_interval` of the last
 * walk), `cgroup_scan_errors`, the gauge `container_cache_entries`; with Kubernetes the
 * watcher's `k8s_*` counters.
 */
import { describeError } from "../errors.ts";
import type { KubernetesOptions, RemoteIdentity } from "../pipeline/host_facts.ts";
import type { Stage, StageDef } from "../pipeline/stage.ts";
import type { Record } from "../record.ts";
import { inClusterOptions, kubernetesPermissions, SERVICE_ACCOUNT_DIR } from "./kubernetes_api.ts";
import { formatDuration } from "../units.ts";

/** Options of a `container` transform. */
export interface ContainerConfig {
  /** Keep the `cgroup_id` field on the records. */
  keep_cgroup_id: boolean;
  /** The most cgroup ids remembered. */
  max_entries: number;
  /** Shortest time between walks of the cgroup mount, in milliseconds. */
  rescan_interval: number;
  /** The cgroup v2 mount; "" finds it in /proc/mounts. */
  cgroup: string;
  /** Add pod metadata from the API server, with the in-cluster service account. */
  kubernetes: boolean;
  /** The API server's URL; "" with kubernetes: from KUBERNETES_SERVICE_HOST/PORT. */
  kubernetes_api: string;
  kubernetes_token_file: string;
  kubernetes_ca_file: string;
  /** Only this node's pods; "" lists every pod (or NODE_NAME in-cluster). */
  node_name: string;
}

/**
 * The API server's in-cluster DNS name, covered by its certificate. Used when the service's
 * address cannot be read from the environment: `--explain` (run on any machine) and the
 * collector then agree on the one host to allow, without --allow-env for the address.
 */
const IN_CLUSTER_API = "https://kubernetes.default.svc:443";

/**
 * The API server and credentials the config asks for, or undefined without Kubernetes. With
 * `kubernetes: true` the address is `kubernetes_api`, else the service's from the environment
 * (KUBERNETES_SERVICE_HOST/PORT) when this process may read it, else kubernetes.default.svc.
 */
function kubernetesOptions(
  config: ContainerConfig,
  env: (name: string) => string | undefined,
): KubernetesOptions | undefined {
  if (!config.kubernetes && !config.kubernetes_api) return undefined;
  const inCluster = config.kubernetes ? inClusterOptions(env) : undefined;
  const apiServer = config.kubernetes_api || inCluster?.apiServer || IN_CLUSTER_API;
  const tokenFile = config.kubernetes_token_file ||
    (config.kubernetes ? `${SERVICE_ACCOUNT_DIR}/token` : undefined);
  const caFile = config.kubernetes_ca_file ||
    (config.kubernetes ? `${SERVICE_ACCOUNT_DIR}/ca.crt` : undefined);
  const nodeName = config.node_name || inCluster?.nodeName;
  return {
    apiServer,
    ...(tokenFile ? { tokenFile } : {}),
    ...(caFile ? { caFile } : {}),
    ...(nodeName ? { nodeName } : {}),
  };
}

/** The environment as far as this process may read it (no permission prompt, no throw). */
function permittedEnv(name: string): string | undefined {
  const state = Deno.permissions.querySync({ name: "env", variable: name }).state;
  return state === "granted" ? Deno.env.get(name) : undefined;
}

const IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT";

/** The remote end's tags, from the record's `dst_ip` (and `dst_nat_ip`) with Kubernetes. */
const REMOTE_TAGS = [
  "dst_k8s_namespace",
  "dst_k8s_service",
  "dst_k8s_pod",
  "dst_k8s_workload",
] as const;

/**
 * The record with who is at its destination: a Service's ClusterIP gives its namespace and
 * service, and the address conntrack's DNAT sent the connection to (`dst_nat_ip`) the pod that
 * served it; a pod's own address gives its pod (and service, when an EndpointSlice names it).
 * Unchanged when neither address is the cluster's.
 */
function withRemote(record: Record, remote: (ip: string) => RemoteIdentity | undefined): Record {
  const ip = record.tags.dst_ip, natIp = record.tags.dst_nat_ip;
  const dst = ip ? remote(ip) : undefined, served = natIp ? remote(natIp) : undefined;
  if (!dst && !served) return record;
  const namespace = dst?.namespace ?? served!.namespace;
  const service = dst?.service ?? served?.service;
  const pod = served?.pod ? served : dst?.pod ? dst : undefined;
  return {
    ...record,
    tags: {
      ...record.tags,
      dst_k8s_namespace: namespace,
      ...(service ? { dst_k8s_service: service } : {}),
      ...(pod?.pod ? { dst_k8s_pod: pod.pod } : {}),
      ...(pod?.workload ? { dst_k8s_workload: pod.workload } : {}),
    },
  };
}

/** `type: container`: container_id (and pod) tags from the kernel's cgroup id. */
export const containerTransform: StageDef<ContainerConfig> = {
  type: "container",
  kind: "transform",
  describe: "Tags records with container_id (and k8s_namespace, k8s_pod, k8s_container) from " +
    "cgroup_id; with Kubernetes also the remote end (dst_k8s_namespace, dst_k8s_service, " +
    "dst_k8s_pod, dst_k8s_workload).",
  schema: {
    keep_cgroup_id: {
      type: "boolean",
      default: false,
      doc: "keep the cgroup_id field (removed by default: it means nothing off this host)",
    },
    max_entries: {
      type: "integer",
      default: 10_000,
      min: 1,
      max: 1 << 22,
      doc: "cgroup ids remembered (containers and not); the least recently used go first",
    },
    rescan_interval: {
      type: "duration",
      default: "1s",
      doc: "shortest time between two walks of the cgroup mount (on a miss, without " +
        "CAP_DAC_READ_SEARCH)",
    },
    cgroup: {
      type: "string",
      default: "",
      doc: "the cgroup v2 mount; empty: found in /proc/mounts",
    },
    kubernetes: {
      type: "boolean",
      default: false,
      doc: "add k8s_namespace, k8s_pod, k8s_container from the API server, with the pod's " +
        `service account (address: ${IN_CLUSTER_ENV} if readable, else kubernetes.default.svc); ` +
        "and dst_k8s_namespace, dst_k8s_service, dst_k8s_pod, dst_k8s_workload of dst_ip and " +
        "dst_nat_ip from the cluster's Services and EndpointSlices (a remote pod's owner: one GET)",
    },
    kubernetes_api: {
      type: "string",
      default: "",
      doc: "the API server's URL (https://host:port); set without `kubernetes`, no " +
        "service account is assumed",
    },
    kubernetes_token_file: {
      type: "string",
      default: "",
      doc: `bearer token file; with kubernetes: true, ${SERVICE_ACCOUNT_DIR}/token`,
    },
    kubernetes_ca_file: {
      type: "string",
      default: "",
      doc:
        `CA of the API server's certificate; with kubernetes: true, ${SERVICE_ACCOUNT_DIR}/ca.crt`,
    },
    node_name: {
      type: "string",
      default: "",
      doc: "watch only this node's pods (write ${NODE_NAME} and set it from spec.nodeName); " +
        "empty: NODE_NAME in-cluster, else every pod",
    },
  },
  validate(config, at) {
    if (!config.kubernetes_api) return [];
    try {
      const url = new URL(config.kubernetes_api);
      if (url.protocol === "https:" || url.protocol === "http:") return [];
    } catch { /* reported below */ }
    return [
      at.child("kubernetes_api").problem(
        `not an http(s) URL: ${
          JSON.stringify(config.kubernetes_api)
        } (write e.g. https://10.96.0.1:443)`,
      ),
    ];
  },
  example: { keep_cgroup_id: false, max_entries: 10_000, rescan_interval: "1s" },
  // Reads the cgroup_id field; writes only these tags.
  tagsUsed: () => [
    "container_id",
    "k8s_namespace",
    "k8s_pod",
    "k8s_container",
    ...REMOTE_TAGS,
    "dst_ip",
    "dst_nat_ip",
  ],

  build(config, ctx): Stage {
    const kubernetes = kubernetesOptions(config, permittedEnv);
    // The host's containers and pods: this one's when collecting, the recording's in a replay.
    const facts = ctx.hostFacts.containers({
      cgroup: config.cgroup,
      maxEntries: config.max_entries,
      rescanIntervalMs: config.rescan_interval,
      kubernetes,
    }, {
      log: ctx.log,
      counters: ctx.counters,
      warn: (problem) => ctx.log.warn(`${ctx.name}: ${problem}`),
    });

    const counters = ctx.counters;
    // What was already added to the counters; updated in place (no allocation a record).
    const last = { ...facts.stats };
    let entries = -1, warned = false;
    const sync = () => {
      const now = facts.stats;
      if (now.hits !== last.hits) counters.add("container_cache_hits", now.hits - last.hits);
      if (now.misses !== last.misses) {
        counters.add("container_cache_misses", now.misses - last.misses);
      }
      if (now.evictions !== last.evictions) {
        counters.add("container_cache_evictions", now.evictions - last.evictions);
      }
      if (now.scans !== last.scans) counters.add("cgroup_scans", now.scans - last.scans);
      if (now.deferred !== last.deferred) {
        counters.add("container_lookups_deferred", now.deferred - last.deferred);
      }
      Object.assign(last, now);
      if (facts.size !== entries) {
        entries = facts.size;
        counters.set("container_cache_entries", entries);
      }
    };
    sync();

    const lookup = (id: bigint): string | undefined => {
      try {
        return facts.container(id);
      } catch (e) {
        // The mount went away or cannot be read: untagged, counted, said once.
        counters.add("cgroup_scan_errors");
        if (!warned) {
          ctx.log.warn(`${ctx.name}: cannot read ${facts.source}: ${describeError(e)}`);
        }
        warned = true;
        return undefined;
      }
    };

    const remote = (ip: string) => facts.remote(ip);
    return {
      push(input: Record) {
        const record = kubernetes ? withRemote(input, remote) : input;
        const id = record.fields.cgroup_id;
        if (typeof id !== "bigint") return ctx.emit(record);
        const container = id > 0n ? lookup(id) : undefined;
        sync();
        // A copy: another branch of the pipeline may hold the input record.
        const tags = container === undefined ? record.tags : { ...record.tags };
        if (container !== undefined) {
          tags.container_id = container;
          const pod = facts.pod(container);
          if (pod) {
            tags.k8s_namespace = pod.namespace;
            tags.k8s_pod = pod.pod;
            tags.k8s_container = pod.container;
          }
        }
        let fields = record.fields;
        if (!config.keep_cgroup_id) {
          const { cgroup_id: _, ...rest } = record.fields;
          fields = rest;
        }
        ctx.emit(
          tags === record.tags && fields === record.fields ? record : { ...record, tags, fields },
        );
      },
      flush() {},
      async close() {
        await facts.close();
      },
    };
  },

  explain(config) {
    const details = [
      `cgroup_id → container_id through the cgroup v2 mount ${
        config.cgroup || "(from /proc/mounts)"
      }` +
      ` (libc: open_by_handle_at with CAP_DAC_READ_SEARCH, else a walk at most every ` +
      `${formatDuration(config.rescan_interval)}), ${config.max_entries} ids cached; ` +
      (config.keep_cgroup_id ? "cgroup_id kept" : "cgroup_id removed"),
    ];
    // The same options build() will use with the same permissions: the flags printed here
    // are the ones the collector then needs.
    const options = kubernetesOptions(config, permittedEnv);
    if (!options) return { details };
    const needs = kubernetesPermissions(options);
    details.push(
      `k8s_namespace, k8s_pod, k8s_container: list+watch of pods at ${options.apiServer}` +
        (options.nodeName ? ` on node ${options.nodeName}` : " (every node)") +
        "; stale metadata kept while the API is unreachable (k8s_stale)",
      "dst_k8s_namespace, dst_k8s_service, dst_k8s_pod, dst_k8s_workload from dst_ip and " +
        "dst_nat_ip: list+watch of the cluster's Services (ClusterIPs) and EndpointSlices (the " +
        "pods behind them), a GET of each remote pod for its owner",
    );
    return { details, reads: needs.reads, net: needs.net };
  },
};

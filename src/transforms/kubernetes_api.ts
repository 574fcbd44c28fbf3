/**
 * The Kubernetes API server a `container` stage asks for: from the pod's environment when the
 * collector runs in one, and what Deno must allow to reach it (for `--explain` and the
 * permission flags). The watcher itself is src/system/kubernetes.ts, reached through the
 * stage's host facts.
 */
import { hostPort } from "../outputs/url.ts";
import type { KubernetesOptions } from "../pipeline/host_facts.ts";

/** Where a pod's service account (token, CA) is mounted. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * Options for a collector running in a pod: the API server from `KUBERNETES_SERVICE_HOST` and
 * `KUBERNETES_SERVICE_PORT`, the service account's token and CA, and `NODE_NAME` (set it from
 * `spec.nodeName` with the downward API) for the node; undefined outside a cluster.
 *
 * @example
 * ```ts
 * const options = inClusterOptions((name) => Deno.env.get(name));
 * ```
 */
export function inClusterOptions(
  env: (name: string) => string | undefined,
): KubernetesOptions | undefined {
  const host = env("KUBERNETES_SERVICE_HOST");
  const port = env("KUBERNETES_SERVICE_PORT");
  if (!host || !port) return undefined;
  // An IPv6 service address needs brackets in a URL.
  const hostInUrl = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  const nodeName = env("NODE_NAME");
  return {
    apiServer: `https://${hostInUrl}:${port}`,
    tokenFile: `${SERVICE_ACCOUNT_DIR}/token`,
    caFile: `${SERVICE_ACCOUNT_DIR}/ca.crt`,
    ...(nodeName ? { nodeName } : {}),
  };
}

/** What a {@linkcode PodWatcher} needs from Deno's permissions, for a stage's `explain`. */
export function kubernetesPermissions(
  options: KubernetesOptions,
): { net: string[]; reads: string[]; env: string[] } {
  return {
    net: [hostPort(options.apiServer)],
    reads: [options.tokenFile, options.caFile].filter((f): f is string => f !== undefined),
    env: ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "NODE_NAME"],
  };
}

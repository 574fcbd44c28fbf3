/**
 * This host's facts for the stages (the {@linkcode HostFacts} contract is in
 * src/pipeline/host_facts.ts): its ephemeral port range from the kernel, containers from the
 * cgroup v2 mount, pods from the Kubernetes API. Built once by main.ts when collecting, and for
 * the replay of a recording made before recordings kept their host's facts.
 */
import { describeError } from "../errors.ts";
import type { ContainerFacts, HostFacts } from "../pipeline/host_facts.ts";
import { cgroupV2Mount } from "./cgroup.ts";
import { ContainerResolver, KernelCgroups } from "./containers.ts";
import { PodWatcher, RemoteIdentities } from "./kubernetes.ts";
import { kernelPortRange } from "./port_range.ts";

/** Where nothing is mounted: lookups then fail, and are counted, as on a mount gone away. */
const NO_MOUNT = "/nonexistent-cgroup2";

/** This host's facts, read when a stage asks for them. */
export function liveHostFacts(): HostFacts {
  return {
    portRange: () => kernelPortRange(),
    containers(options, { log, counters, warn }): ContainerFacts {
      let mount = options.cgroup;
      if (!mount) {
        try {
          mount = cgroupV2Mount();
        } catch (e) {
          // No cgroup v2 here: records pass untagged; lookups count errors.
          warn(`no container tags: ${describeError(e)}`);
          mount = NO_MOUNT;
        }
      }
      const resolver = new ContainerResolver(new KernelCgroups(mount), {
        maxEntries: options.maxEntries,
        rescanIntervalMs: options.rescanIntervalMs,
        now: () => performance.now(),
      });
      let pods: PodWatcher | undefined, remotes: RemoteIdentities | undefined;
      if (options.kubernetes) {
        pods = new PodWatcher(options.kubernetes, log, counters);
        pods.start();
        remotes = new RemoteIdentities(options.kubernetes, log, counters);
        remotes.start();
      }
      return {
        source: mount,
        container: (id) => resolver.lookup(id),
        pod: (containerId) => pods?.lookup(containerId),
        remote: (ip) => remotes?.lookup(ip),
        get stats() {
          return resolver.stats;
        },
        get size() {
          return resolver.size;
        },
        async close() {
          resolver.close();
          await Promise.all([pods?.close(), remotes?.close()]);
        },
      };
    },
  };
}

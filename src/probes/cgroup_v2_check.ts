/**
 * The `--doctor` line of the probes that attach cgroup programs (netflow, dns): the cgroup v2
 * root they attach to when `cgroup:` is not set. One line however many probes list it.
 */
import type { HostCheck } from "../pipeline/stage.ts";
import { cgroupV2Mount } from "../system/cgroup.ts";

export const CGROUP_V2_CHECK: HostCheck = {
  what: "cgroup v2",
  host: true,
  run: () => `mounted at ${cgroupV2Mount()} (from /proc/mounts)`,
};

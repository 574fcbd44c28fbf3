/**
 * Where the cgroup v2 hierarchy is mounted: the `cgroup2` line of /proc/mounts. Hybrid systems
 * (this machine) mount it at /sys/fs/cgroup/unified, pure v2 ones at /sys/fs/cgroup; a probe
 * attaching cgroup programs must not guess.
 */
import { readKernelFile } from "../../ffi/libc.ts";

/** The first cgroup2 mount point in `mounts` (the text of /proc/mounts), if any. */
export function cgroupV2MountIn(mounts: string): string | undefined {
  for (const line of mounts.split("\n")) {
    const [, mountPoint, type] = line.split(" ");
    // Spaces in a mount point are written as \040.
    if (type === "cgroup2" && mountPoint) return mountPoint.replace(/\\040/g, " ");
  }
  return undefined;
}

/** The cgroup v2 mount of this machine; throws a clear Error when there is none. */
export function cgroupV2Mount(read: (path: string) => string = readKernelFile): string {
  let mounts: string;
  try {
    mounts = read("/proc/mounts");
  } catch (e) {
    throw new Error(
      `cannot read /proc/mounts to find the cgroup v2 mount: ${(e as Error).message}`,
    );
  }
  const found = cgroupV2MountIn(mounts);
  if (!found) {
    throw new Error(
      "no cgroup v2 hierarchy is mounted (mount -t cgroup2 none /sys/fs/cgroup), or set `cgroup:`",
    );
  }
  return found;
}

import assert from "node:assert/strict";
import { cgroupV2Mount, cgroupV2MountIn } from "./cgroup.ts";

Deno.test("cgroupV2MountIn() finds the cgroup2 line, wherever it is mounted", () => {
  const hybrid = "sysfs /sys sysfs rw 0 0\ntmpfs /sys/fs/cgroup tmpfs ro 0 0\n" +
    "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
  assert.equal(cgroupV2MountIn(hybrid), "/sys/fs/cgroup/unified");
  assert.equal(
    cgroupV2MountIn("cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n"),
    "/sys/fs/cgroup",
  );
  assert.equal(cgroupV2MountIn("cgroup2 /mnt/my\\040cg cgroup2 rw 0 0"), "/mnt/my cg");
  assert.equal(cgroupV2MountIn(hybrid.replace(/^cgroup2.*$/m, "")), undefined);
});

Deno.test("cgroupV2Mount() reads /proc/mounts, and says what to do when there is no v2 mount", () => {
  assert.equal(cgroupV2Mount(() => "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"), "/sys/fs/cgroup");
  assert.throws(() => cgroupV2Mount(() => "proc /proc proc rw 0 0\n"), /mount -t cgroup2/);
  assert.throws(() =>
    cgroupV2Mount(() => {
      throw new Error("EACCES");
    }), /cannot read \/proc\/mounts.*EACCES/);
  // This machine has one (the kernel tests attach there).
  assert.match(cgroupV2Mount(), /^\/sys\/fs\/cgroup/);
});

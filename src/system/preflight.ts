/**
 * Checks made before anything touches the kernel, each failing with one line that names the
 * cause and the fix.
 */
import { effectiveCapabilities, readable } from "../../ffi/libc.ts";
import { UserError } from "../errors.ts";
import { holds, missingCapabilities, type NeedsCapabilities } from "./capabilities.ts";

/** Whether these capabilities can load tracing BPF programs (CAP_BPF+CAP_PERFMON, or CAP_SYS_ADMIN). */
export function canLoadTracingBpf(caps: bigint): boolean {
  return holds(caps, "CAP_BPF") && holds(caps, "CAP_PERFMON");
}

/**
 * Throws a UserError unless this process holds the capabilities `probes` need (root holds them
 * all) and the kernel has BTF for CO-RE. Probes that need none (the `collector`) need neither.
 */
export function checkKernelAccess(probes: NeedsCapabilities[]): void {
  if (probes.every((p) => p.capabilities.length === 0)) return;
  // capget(2), not /proc/self/status: Deno guards /proc/self behind --allow-all.
  const lacking = missingCapabilities(probes, effectiveCapabilities());
  if (lacking) {
    throw new UserError(
      `not allowed to load the probes: missing ${lacking.missing}; ${lacking.fix}`,
    );
  }
  if (!readable("/sys/kernel/btf/vmlinux")) {
    throw new UserError(
      "no kernel BTF at /sys/kernel/btf/vmlinux: CO-RE needs a kernel built with " +
        "CONFIG_DEBUG_INFO_BTF=y (most distribution kernels since 5.4 have it)",
    );
  }
}

/**
 * Checks made before anything touches the kernel, each failing with one line that names the
 * cause and the fix.
 */
import { effectiveCapabilities, readable } from "../../ffi/libc.ts";
import { UserError } from "../errors.ts";

const CAP_SYS_ADMIN = 21n, CAP_PERFMON = 38n, CAP_BPF = 39n;

/** Whether these capabilities can load tracing BPF programs (CAP_BPF+CAP_PERFMON, or CAP_SYS_ADMIN). */
export function canLoadTracingBpf(caps: bigint): boolean {
  const has = (cap: bigint) => (caps >> cap & 1n) === 1n;
  return has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON));
}

/** Throws a UserError unless this process can load BPF programs that use CO-RE. */
export function checkKernelAccess(): void {
  // capget(2), not /proc/self/status: Deno guards /proc/self behind --allow-all.
  if (!canLoadTracingBpf(effectiveCapabilities())) {
    throw new UserError(
      "not allowed to load BPF programs: run as root, or grant CAP_BPF and CAP_PERFMON " +
        "(e.g. sudo deno task run)",
    );
  }
  if (!readable("/sys/kernel/btf/vmlinux")) {
    throw new UserError(
      "no kernel BTF at /sys/kernel/btf/vmlinux: CO-RE needs a kernel built with " +
        "CONFIG_DEBUG_INFO_BTF=y (most distribution kernels since 5.4 have it)",
    );
  }
}

/**
 * The one gate for tests that need the kernel: root (CAP_BPF, CAP_PERFMON), BTF, the built
 * BPF objects, and the tools a test names. Where something is missing the test is skipped and
 * the reason is in its name; with EBPF_REQUIRE_KERNEL_TESTS=1 (CI sets it) a skip is a failure,
 * so a green CI means the kernel tests really ran.
 */
import { canLoadTracingBpf } from "../../src/system/preflight.ts";
import { effectiveCapabilities, readable } from "../../ffi/libc.ts";
import { ROOT } from "../_run_command.ts";

/** Path of a built object: `bash` → build/bpf/bash.bpf.o, `test/ring_gen` → build/bpf/test/... */
export function objectPath(name: string): string {
  return `${ROOT}build/bpf/${name}.bpf.o`;
}

function which(tool: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${tool}`).isFile) return true;
    } catch { /* not here */ }
  }
  return false;
}

/** Why a kernel test cannot run here, or undefined when it can. */
export function skipReason(
  needs: { objects?: string[]; tools?: string[] } = {},
): string | undefined {
  if (Deno.uid() !== 0 && !canLoadTracingBpf(effectiveCapabilities())) {
    return "needs root or CAP_BPF+CAP_PERFMON";
  }
  if (!readable("/sys/kernel/btf/vmlinux")) return "no kernel BTF";
  for (const o of needs.objects ?? []) {
    try {
      Deno.statSync(objectPath(o));
    } catch {
      return `${objectPath(o)} not built (deno task build)`;
    }
  }
  for (const t of needs.tools ?? []) if (!which(t)) return `${t} not installed`;
  return undefined;
}

/** Declares a kernel test: runs it, or skips it with the reason in its name. */
export function kernelTest(
  name: string,
  needs: { objects?: string[]; tools?: string[] },
  fn: () => Promise<void> | void,
): void {
  const reason = skipReason(needs);
  if (reason && Deno.env.get("EBPF_REQUIRE_KERNEL_TESTS") === "1") {
    Deno.test(`${name} [kernel]`, () => {
      throw new Error(`kernel test could not run (${reason}) and EBPF_REQUIRE_KERNEL_TESTS=1`);
    });
    return;
  }
  Deno.test({
    name: reason ? `${name} [skipped: ${reason}]` : `${name} [kernel]`,
    ignore: reason !== undefined,
    // FFI handles live in module-level state (libbpf is opened once per process).
    sanitizeOps: false,
    sanitizeResources: false,
    fn,
  });
}

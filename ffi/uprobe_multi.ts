/**
 * A uprobe or uretprobe as a `BPF_LINK_CREATE` of type `BPF_TRACE_UPROBE_MULTI` (Linux 6.6 and
 * later), issued through bpf(2) directly: libbpf 1.1 has no API for this link type
 * (`bpf_program__attach_uprobe_multi` arrived in libbpf 1.3).
 *
 * Why bother: a perf uprobe (what libbpf 1.1 creates) needs CAP_SYS_ADMIN since Linux 6.16 and
 * the stable kernels it was backported to; this link needs nothing beyond the CAP_BPF and
 * CAP_PERFMON the program's load took (docs/capabilities.md).
 */
import { LibbpfError } from "./errors.ts";
import { errno, libc } from "./libc.ts";

/** enum bpf_attach_type: the program's expected_attach_type, and the link's attach_type. */
export const BPF_TRACE_UPROBE_MULTI = 48;

const BPF_LINK_CREATE = 28; // enum bpf_cmd
const BPF_F_UPROBE_MULTI_RETURN = 1;
/** bpf(2)'s syscall number: asm/unistd_64.h on x86-64, asm-generic/unistd.h on arm64. */
const SYS_BPF: Partial<Record<typeof Deno.build.arch, bigint>> = { x86_64: 321n, aarch64: 280n };

/**
 * `union bpf_attr`'s `link_create` member as the uprobe_multi variant lays it out
 * (include/uapi/linux/bpf.h, Linux 6.6 to 6.18). The variant union starts at 16 because it
 * holds __u64 members; the struct ends at 60, padded to 64.
 */
const LINK_CREATE = {
  prog_fd: 0,
  target_fd: 4,
  attach_type: 8,
  flags: 12,
  path: 16, // __u64: const char *
  offsets: 24, // __u64: const __u64 *, one file offset per probe
  ref_ctr_offsets: 32, // __u64: const __u64 *, 0 for none
  cookies: 40, // __u64: const __u64 *, 0 for none
  cnt: 48,
  multi_flags: 52, // uprobe_multi.flags
  pid: 56, // 0: every process that maps the file
  size: 64,
} as const;

/** Where a uprobe_multi link goes. */
export interface UprobeMultiTarget {
  /** Path of the executable or shared library. */
  binary: string;
  /** File offset of the probed instruction (not its virtual address). */
  offset: number;
  /** true for a uretprobe (fires when the function returns). */
  retprobe: boolean;
  /** Only this process; 0 or absent for every process that maps the binary. */
  pid?: number;
}

/**
 * Links the loaded program `progFd` (loaded with expected_attach_type BPF_TRACE_UPROBE_MULTI)
 * to one uprobe; returns the link fd, which detaches when closed. Throws a LibbpfError with the
 * kernel's errno: EINVAL before Linux 6.6 (no such attach type), EOPNOTSUPP without
 * CONFIG_UPROBES.
 */
export function createUprobeMultiLink(progFd: number, target: UprobeMultiTarget): number {
  const sysBpf = SYS_BPF[Deno.build.arch];
  if (sysBpf === undefined) {
    throw new LibbpfError(
      "bpf(BPF_LINK_CREATE)",
      38,
      [],
      `(no syscall number for ${Deno.build.arch})`,
    );
  }
  const path = new TextEncoder().encode(target.binary + "\0");
  const offsets = new BigUint64Array([BigInt(target.offset)]);
  const attr = new Uint8Array(LINK_CREATE.size);
  const view = new DataView(attr.buffer);
  const address = (b: BufferSource) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b)));
  view.setUint32(LINK_CREATE.prog_fd, progFd, true);
  view.setUint32(LINK_CREATE.attach_type, BPF_TRACE_UPROBE_MULTI, true);
  view.setBigUint64(LINK_CREATE.path, address(path), true);
  view.setBigUint64(LINK_CREATE.offsets, address(offsets), true);
  view.setUint32(LINK_CREATE.cnt, 1, true);
  view.setUint32(LINK_CREATE.multi_flags, target.retprobe ? BPF_F_UPROBE_MULTI_RETURN : 0, true);
  view.setUint32(LINK_CREATE.pid, target.pid ?? 0, true);
  const fd = Number(libc().syscall3(sysBpf, BigInt(BPF_LINK_CREATE), attr, BigInt(attr.length)));
  if (fd < 0) {
    throw new LibbpfError(
      "bpf(BPF_LINK_CREATE uprobe_multi)",
      errno(),
      [],
      `${target.binary}:0x${target.offset.toString(16)}`,
    );
  }
  // The kernel copied path and offsets during the call; they only had to live until here.
  return fd;
}

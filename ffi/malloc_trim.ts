/**
 * `malloc_trim(0)`: hands the C heap's free pages back to the kernel. Loading BPF objects
 * mallocs and frees several MiB (libbpf parses the kernel's BTF for each object's CO-RE
 * relocations), and glibc keeps freed memory resident until told otherwise: trimming once the
 * probes are attached took the default pipeline from 75 to 70 MiB RSS.
 */

let trim: ((pad: bigint) => number) | null | undefined;

/**
 * Returns free C-heap memory to the kernel; false where it cannot (no FFI permission, or a libc
 * without `malloc_trim`, such as musl) or when there was nothing to return.
 */
export function trimCHeap(): boolean {
  if (trim === undefined) trim = openTrim();
  return trim !== null && trim(0n) === 1;
}

function openTrim(): ((pad: bigint) => number) | null {
  // Asked first so that a run without --allow-ffi (replay, --test) is never prompted.
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return null;
  try {
    const lib = Deno.dlopen(
      "libc.so.6",
      {
        malloc_trim: { parameters: ["usize"], result: "i32" },
      } as const,
    );
    return (pad) => lib.symbols.malloc_trim(pad);
  } catch {
    return null; // not glibc
  }
}

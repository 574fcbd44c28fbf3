/**
 * The libbpf 1.x bindings: the project's only `Deno.dlopen` of libbpf, one symbols table.
 *
 * libbpf 1.x returns `-errno` from `int` functions and `NULL` (errno set) from pointer functions.
 * {@linkcode checkRet} and {@linkcode checkPtr} turn both into a {@linkcode LibbpfError} that
 * carries libbpf's log lines, captured through `libbpf_set_print`.
 */
import { errno, libc } from "./libc.ts";
import { LibbpfError, LibraryMissingError } from "./errors.ts";

const symbols = {
  libbpf_set_print: { parameters: ["function"], result: "pointer" }, // libbpf_print_fn_t (libbpf_print_fn_t fn)
  libbpf_major_version: { parameters: [], result: "u32" },
  libbpf_minor_version: { parameters: [], result: "u32" },
  bpf_object__open_file: {
    parameters: ["buffer", "pointer"], // const char *path, const struct bpf_object_open_opts *opts
    result: "pointer", // struct bpf_object *
  },
  bpf_object__open_mem: {
    // const void *obj_buf, size_t obj_buf_sz, const struct bpf_object_open_opts *opts
    parameters: ["buffer", "usize", "buffer"],
    result: "pointer", // struct bpf_object *
  },
  bpf_object__load: { parameters: ["pointer"], result: "i32" }, // struct bpf_object *obj
  bpf_object__close: { parameters: ["pointer"], result: "void" }, // struct bpf_object *obj
  bpf_object__find_program_by_name: {
    parameters: ["pointer", "buffer"], // const struct bpf_object *obj, const char *name
    result: "pointer", // struct bpf_program *
  },
  bpf_object__find_map_by_name: {
    parameters: ["pointer", "buffer"], // const struct bpf_object *obj, const char *name
    result: "pointer", // struct bpf_map *
  },
  bpf_program__attach: { parameters: ["pointer"], result: "pointer" }, // struct bpf_program *prog
  bpf_program__attach_uprobe_opts: {
    // const struct bpf_program *prog, pid_t pid, const char *binary_path, size_t func_offset,
    // const struct bpf_uprobe_opts *opts
    parameters: ["pointer", "i32", "buffer", "usize", "buffer"],
    result: "pointer", // struct bpf_link *
  },
  bpf_program__attach_iter: {
    parameters: ["pointer", "pointer"], // const struct bpf_program *prog, const struct bpf_iter_attach_opts *opts
    result: "pointer", // struct bpf_link *
  },
  bpf_program__attach_cgroup: { parameters: ["pointer", "i32"], result: "pointer" }, // prog, int cgroup_fd
  bpf_link__fd: { parameters: ["pointer"], result: "i32" }, // const struct bpf_link *link
  bpf_iter_create: { parameters: ["i32"], result: "i32" }, // int link_fd
  bpf_program__set_autoload: { parameters: ["pointer", "bool"], result: "i32" }, // prog, bool autoload
  // struct bpf_program *prog, enum bpf_attach_type type (before load; libbpf passes it to
  // BPF_PROG_LOAD as expected_attach_type)
  bpf_program__set_expected_attach_type: { parameters: ["pointer", "u32"], result: "i32" },
  bpf_program__fd: { parameters: ["pointer"], result: "i32" }, // const struct bpf_program *prog
  bpf_prog_test_run_opts: {
    parameters: ["i32", "buffer"], // int prog_fd, struct bpf_test_run_opts *opts
    result: "i32",
  },
  bpf_link__destroy: { parameters: ["pointer"], result: "i32" }, // struct bpf_link *link
  bpf_map__fd: { parameters: ["pointer"], result: "i32" }, // const struct bpf_map *map
  bpf_map__reuse_fd: { parameters: ["pointer", "i32"], result: "i32" }, // struct bpf_map *map, int fd
  bpf_map__max_entries: { parameters: ["pointer"], result: "u32" }, // const struct bpf_map *map
  bpf_map__set_max_entries: { parameters: ["pointer", "u32"], result: "i32" }, // map, __u32 max_entries
  bpf_map__key_size: { parameters: ["pointer"], result: "u32" }, // const struct bpf_map *map
  bpf_map__value_size: { parameters: ["pointer"], result: "u32" }, // const struct bpf_map *map
  bpf_map__initial_value: {
    parameters: ["pointer", "buffer"], // struct bpf_map *map, size_t *psize
    result: "pointer", // void * (the map's data before load)
  },
  bpf_map_lookup_elem: { parameters: ["i32", "buffer", "buffer"], result: "i32" }, // int fd, const void *key, void *value
  bpf_map_update_elem: {
    parameters: ["i32", "buffer", "buffer", "u64"], // int fd, const void *key, const void *value, __u64 flags
    result: "i32",
  },
  bpf_map_delete_elem: { parameters: ["i32", "buffer"], result: "i32" }, // int fd, const void *key
  bpf_map_get_next_key: { parameters: ["i32", "buffer", "buffer"], result: "i32" }, // fd, const void *key, void *next_key
  bpf_map_lookup_batch: {
    // int fd, void *in_batch, void *out_batch, void *keys, void *values, __u32 *count,
    // const struct bpf_map_batch_opts *opts
    parameters: ["i32", "buffer", "buffer", "buffer", "buffer", "buffer", "pointer"],
    result: "i32",
  },
  bpf_map_lookup_and_delete_batch: {
    // the same as bpf_map_lookup_batch; the entries returned are deleted
    parameters: ["i32", "buffer", "buffer", "buffer", "buffer", "buffer", "pointer"],
    result: "i32",
  },
  libbpf_num_possible_cpus: { parameters: [], result: "i32" }, // int (void)
  // The running kernel's BTF, to read enums by name (netdrop's drop reasons).
  btf__load_vmlinux_btf: { parameters: [], result: "pointer" }, // struct btf *(void)
  btf__free: { parameters: ["pointer"], result: "void" }, // struct btf *btf
  btf__find_by_name_kind: {
    parameters: ["pointer", "buffer", "u32"], // const struct btf *btf, const char *name, __u32 kind
    result: "i32", // type id, or -errno
  },
  btf__type_by_id: { parameters: ["pointer", "u32"], result: "pointer" }, // const struct btf_type *
  btf__name_by_offset: { parameters: ["pointer", "u32"], result: "pointer" }, // const char *
} as const satisfies Deno.ForeignLibraryInterface;

type Symbols = Deno.DynamicLibrary<typeof symbols>["symbols"];

/** libbpf's print levels (enum libbpf_print_level). */
export const LIBBPF_WARN = 0, LIBBPF_INFO = 1, LIBBPF_DEBUG = 2;

let lib: Deno.DynamicLibrary<typeof symbols> | undefined;
let printCallback: Deno.UnsafeCallback<typeof PRINT_FN> | undefined;
const PRINT_FN = { parameters: ["i32", "pointer", "pointer"], result: "i32" } as const;
// A failed load prints the whole verifier log as one message, and its reason is at the end:
// the buffer must hold all of it (a va_list cannot be formatted twice).
const printBuffer = new Uint8Array(1 << 20);
const decoder = new TextDecoder();

/** libbpf log lines since the last {@linkcode takeLog}; bounded so a chatty load cannot grow it. */
let logLines: string[] = [];
const LOG_KEEP = 200;
let logLevel = LIBBPF_INFO;
let logSink: ((level: number, line: string) => void) | undefined;

/** The libbpf bindings, opened on first use (with the print callback installed). */
export function libbpf(): Symbols {
  if (!lib) {
    try {
      lib = Deno.dlopen("libbpf.so.1", symbols);
    } catch (e) {
      throw new LibraryMissingError("libbpf.so.1", e);
    }
    printCallback = new Deno.UnsafeCallback(PRINT_FN, (level, fmt, ap) => {
      // va_list is consumable once and only during this call: format it now.
      const n = libc().vsnprintf(printBuffer, BigInt(printBuffer.length), fmt, ap);
      if (level > logLevel || n <= 0) return 0;
      const text = decoder.decode(printBuffer.subarray(0, Math.min(n, printBuffer.length - 1)));
      for (const line of text.split("\n")) {
        if (!line) continue;
        logLines.push(line);
        logSink?.(level, line);
      }
      if (logLines.length > LOG_KEEP) logLines = logLines.slice(-LOG_KEEP);
      return n;
    });
    lib.symbols.libbpf_set_print(printCallback.pointer);
  }
  return lib.symbols;
}

/**
 * Sets which libbpf messages are kept (default INFO; DEBUG is very verbose) and where each is
 * also sent as it arrives (e.g. stderr under `--debug`).
 */
export function setLibbpfLog(level: number, sink?: (level: number, line: string) => void) {
  logLevel = level;
  logSink = sink;
}

/** Returns and clears the libbpf log lines printed since the last call. */
export function takeLog(): string[] {
  const lines = logLines;
  logLines = [];
  return lines;
}

/** Throws a LibbpfError when an int-returning libbpf call returned `-errno`. */
export function checkRet(ret: number, op: string, detail?: string): number {
  if (ret < 0) throw new LibbpfError(op, -ret, takeLog(), detail);
  return ret;
}

/** Throws a LibbpfError when a pointer-returning libbpf call returned NULL (errno set). */
export function checkPtr(
  ptr: Deno.PointerValue,
  op: string,
  detail?: string,
): NonNullable<Deno.PointerValue> {
  if (ptr === null) throw new LibbpfError(op, errno() || 22, takeLog(), detail);
  return ptr;
}

/** A NUL-terminated C string for a `buffer` parameter. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(s + "\0");
  return bytes;
}

/** Unloads libbpf (tests use this so resource sanitizers see a clean close). */
export function closeLibbpf() {
  if (!lib) return;
  lib.symbols.libbpf_set_print(null);
  printCallback?.close();
  lib.close();
  lib = undefined;
  printCallback = undefined;
}

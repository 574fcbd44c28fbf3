/**
 * `BpfObject` owns a libbpf `struct bpf_object`: open → set rodata → load → attach.
 * Programs and maps it hands out are views that live as long as the object; links and ring
 * buffers are owned by whoever made them and must be closed before the object (reverse order).
 */
import { checkPtr, checkRet, cString, libbpf } from "./libbpf.ts";
import { BpfLink } from "./link.ts";
import { BpfMap } from "./map.ts";
import { RingBuffer, type RingBufferOptions, type RingRecordHandler } from "./ring_buffer.ts";
import { warnLeak } from "./leak.ts";
import { errno, libc } from "./libc.ts";
import { LibbpfError } from "./errors.ts";
import { createUprobeMultiLink, type UprobeMultiTarget } from "./uprobe_multi.ts";

const leaks = new FinalizationRegistry<string>((what) => warnLeak("BpfObject", what));

/**
 * An opened (and later loaded) BPF object file.
 *
 * @example
 * ```ts
 * using obj = BpfObject.open("build/bpf/bash.bpf.o");
 * obj.load();
 * using link = obj.program("handle_readline").attachUprobe({ binary: "/bin/bash", func: "readline", retprobe: true });
 * ```
 */
export class BpfObject implements Disposable {
  #ptr: Deno.PointerObject | null;
  // open_mem's ELF buffer: libbpf may read it until the object is closed, so it lives as long.
  #bytes?: Uint8Array;
  readonly path: string;

  private constructor(ptr: Deno.PointerObject, path: string, bytes?: Uint8Array) {
    this.#ptr = ptr;
    this.#bytes = bytes;
    this.path = path;
    leaks.register(this, path, this);
  }

  /** Opens an object file; nothing reaches the kernel until {@linkcode load}. */
  static open(path: string): BpfObject {
    const ptr = checkPtr(
      libbpf().bpf_object__open_file(cString(path), null),
      "bpf_object__open_file",
      path,
    );
    return new BpfObject(ptr, path);
  }

  /**
   * Opens an object from its bytes (embedded in a bundle or a compiled binary). `name` becomes
   * the object's name, which libbpf prefixes to its global-variable maps (`bash.rodata`).
   */
  static openMemory(bytes: Uint8Array<ArrayBuffer>, name: string): BpfObject {
    // struct bpf_object_open_opts, its first two members: size_t sz; const char *object_name.
    // A smaller sz than libbpf's own is how libbpf's ABI says "the rest is unset".
    const cName = cString(name);
    const opts = new BigUint64Array([
      16n,
      BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(cName))),
    ]);
    const ptr = checkPtr(
      libbpf().bpf_object__open_mem(bytes, BigInt(bytes.byteLength), new Uint8Array(opts.buffer)),
      "bpf_object__open_mem",
      name,
    );
    return new BpfObject(ptr, `${name} (embedded)`, bytes);
  }

  /** Verifies and loads every program and creates every map. */
  load(): void {
    checkRet(libbpf().bpf_object__load(this.#handle()), "bpf_object__load", this.path);
  }

  /** The program named `name` (the C function name). */
  program(name: string): BpfProgram {
    const ptr = checkPtr(
      libbpf().bpf_object__find_program_by_name(this.#handle(), cString(name)),
      "bpf_object__find_program_by_name",
      name,
    );
    return new BpfProgram(ptr, name);
  }

  /** The map named `name`; `.rodata`, `.bss`, `.data` name the global-variable maps. */
  map(name: string): BpfMap {
    const ptr = checkPtr(
      libbpf().bpf_object__find_map_by_name(this.#handle(), cString(name)),
      "bpf_object__find_map_by_name",
      name,
    );
    return new BpfMap(ptr, name);
  }

  /** Maps the ring buffer map `name` and reads it; the caller owns and closes the reader. */
  ringBuffer(name: string, onRecord: RingRecordHandler, options?: RingBufferOptions): RingBuffer {
    return new RingBuffer(this.map(name), onRecord, options);
  }

  /** Unloads programs and frees maps. Idempotent. Close links and ring buffers first. */
  close(): void {
    if (!this.#ptr) return;
    libbpf().bpf_object__close(this.#ptr);
    this.#ptr = null;
    this.#bytes = undefined;
    leaks.unregister(this);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #handle(): Deno.PointerObject {
    if (!this.#ptr) throw new Error(`BpfObject ${this.path} is closed`);
    return this.#ptr;
  }
}

// struct bpf_uprobe_opts in libbpf 1.1: sz, ref_ctr_offset, bpf_cookie, retprobe, func_name.
const UPROBE_OPTS_SIZE = 40;

/** Where and how to attach a uprobe. */
export interface UprobeTarget {
  /** Path of the executable or shared library. */
  binary: string;
  /** Symbol to probe; libbpf resolves it in the ELF file. */
  func: string;
  /** true for a uretprobe (fires when the function returns). */
  retprobe: boolean;
  /** Only this process; -1 (default) for every process that maps the binary. */
  pid?: number;
}

/** A program inside a {@linkcode BpfObject}; valid while the object is open. */
export class BpfProgram {
  readonly #ptr: Deno.PointerObject;
  readonly name: string;

  constructor(ptr: Deno.PointerObject, name: string) {
    this.#ptr = ptr;
    this.name = name;
  }

  /** Whether `load()` loads this program (call before load). */
  setAutoload(autoload: boolean): void {
    checkRet(
      libbpf().bpf_program__set_autoload(this.#ptr, autoload),
      "bpf_program__set_autoload",
      this.name,
    );
  }

  /**
   * The attach type the kernel is told at load (`expected_attach_type`), which some links
   * require (BPF_TRACE_UPROBE_MULTI for {@linkcode attachUprobeMulti}). Call before load.
   */
  setExpectedAttachType(type: number): void {
    checkRet(
      libbpf().bpf_program__set_expected_attach_type(this.#ptr, type),
      "bpf_program__set_expected_attach_type",
      this.name,
    );
  }

  /** The program's file descriptor (valid after load). */
  get fd(): number {
    return checkRet(libbpf().bpf_program__fd(this.#ptr), "bpf_program__fd", this.name);
  }

  /**
   * Runs the program once in the kernel with `ctx` as its context (BPF_PROG_TEST_RUN; for
   * `syscall` programs). The kernel writes the context back into `ctx`. Returns the program's
   * return value.
   */
  testRun(ctx: Uint8Array<ArrayBuffer>): number {
    // struct bpf_test_run_opts (libbpf 1.1): sz@0, ctx_in@32, ctx_size_in@48, retval@56; 80
    // bytes in all. A syscall program takes no ctx_out: the kernel copies back into ctx_in.
    const opts = new Uint8Array(80);
    const dv = new DataView(opts.buffer);
    const ctxAddress = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(ctx)));
    dv.setBigUint64(0, 80n, true);
    dv.setBigUint64(32, ctxAddress, true);
    dv.setUint32(48, ctx.length, true);
    checkRet(libbpf().bpf_prog_test_run_opts(this.fd, opts), "bpf_prog_test_run_opts", this.name);
    return dv.getUint32(56, true);
  }

  /** Attaches as its SEC() says (tracepoints, tp_btf, raw tracepoints...). */
  attach(): BpfLink {
    const ptr = checkPtr(libbpf().bpf_program__attach(this.#ptr), "bpf_program__attach", this.name);
    return new BpfLink(ptr, this.name);
  }

  /** Attaches a BPF iterator (`SEC("iter/...")`); read it with {@linkcode readIterator}. */
  attachIterator(): BpfLink {
    const ptr = checkPtr(
      libbpf().bpf_program__attach_iter(this.#ptr, null),
      "bpf_program__attach_iter",
      this.name,
    );
    return new BpfLink(ptr, `iterator ${this.name}`);
  }

  /**
   * Attaches a cgroup program (`SEC("cgroup/...")`) to the cgroup v2 directory `path`, as a
   * link: other programs on the same hook keep running.
   */
  attachCgroup(path: string): BpfLink {
    const O_RDONLY_DIRECTORY_CLOEXEC = 0o2000000 | 0o200000;
    const fd = libc().open(cString(path), O_RDONLY_DIRECTORY_CLOEXEC);
    if (fd < 0) throw new LibbpfError("open cgroup", errno(), [], path);
    try {
      const ptr = checkPtr(
        libbpf().bpf_program__attach_cgroup(this.#ptr, fd),
        "bpf_program__attach_cgroup",
        `${this.name} on ${path}`,
      );
      return new BpfLink(ptr, `cgroup ${path} ${this.name}`);
    } finally {
      libc().close(fd); // the link holds its own reference to the cgroup
    }
  }

  /** Attaches a uprobe or uretprobe on `target.func` in `target.binary`. */
  attachUprobe(target: UprobeTarget): BpfLink {
    const opts = new Uint8Array(UPROBE_OPTS_SIZE);
    const dv = new DataView(opts.buffer);
    const func = cString(target.func);
    dv.setBigUint64(0, BigInt(UPROBE_OPTS_SIZE), true);
    dv.setUint8(24, target.retprobe ? 1 : 0);
    dv.setBigUint64(32, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(func))), true);
    const what = `${target.binary}:${target.func}`;
    const ptr = checkPtr(
      libbpf().bpf_program__attach_uprobe_opts(
        this.#ptr,
        target.pid ?? -1,
        cString(target.binary),
        0n,
        opts,
      ),
      target.retprobe ? "attach uretprobe" : "attach uprobe",
      what,
    );
    return new BpfLink(ptr, `${target.retprobe ? "uretprobe" : "uprobe"} ${what}`);
  }

  /**
   * Attaches a uprobe or uretprobe at a file offset as a uprobe_multi link (Linux 6.6+), which
   * needs no CAP_SYS_ADMIN (see uprobe_multi.ts). The program must have been loaded with
   * {@linkcode setExpectedAttachType}(BPF_TRACE_UPROBE_MULTI).
   */
  attachUprobeMulti(target: UprobeMultiTarget & { func: string }): BpfLink {
    const fd = createUprobeMultiLink(this.fd, target);
    const kind = target.retprobe ? "uretprobe.multi" : "uprobe.multi";
    return BpfLink.fromFd(fd, `${kind} ${target.binary}:${target.func}`);
  }
}

/**
 * Runs an attached iterator once and returns everything its program wrote (a fresh
 * `bpf_iter_create` each call: an iterator's output is read once, to its end).
 */
export function readIterator(link: BpfLink, chunkBytes = 64 * 1024): Uint8Array {
  const fd = checkRet(libbpf().bpf_iter_create(link.fd), "bpf_iter_create", link.description);
  try {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const chunk = new Uint8Array(chunkBytes);
      const n = Number(libc().read(fd, chunk, BigInt(chunkBytes)));
      if (n < 0) throw new LibbpfError("read iterator", errno(), [], link.description);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  } finally {
    libc().close(fd);
  }
}

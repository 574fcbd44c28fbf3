/** `BpfMap`: a map inside a `BpfObject` (a view; the object owns it). */
import { checkPtr, checkRet, libbpf } from "./libbpf.ts";

const ENOENT = 2;

/** A BPF map: sizes before load, element and batch access after. */
export class BpfMap {
  readonly #ptr: Deno.PointerObject;
  readonly name: string;

  constructor(ptr: Deno.PointerObject, name: string) {
    this.#ptr = ptr;
    this.name = name;
  }

  /** The map's file descriptor (valid after load). */
  get fd(): number {
    return checkRet(libbpf().bpf_map__fd(this.#ptr), "bpf_map__fd", this.name);
  }

  get maxEntries(): number {
    return libbpf().bpf_map__max_entries(this.#ptr);
  }

  get keySize(): number {
    return libbpf().bpf_map__key_size(this.#ptr);
  }

  get valueSize(): number {
    return libbpf().bpf_map__value_size(this.#ptr);
  }

  /**
   * Makes this map, before load, the existing map `fd` (another object's): libbpf takes its
   * own copy of the fd and the object's programs use that map instead of creating one.
   */
  reuseFd(fd: number): void {
    checkRet(libbpf().bpf_map__reuse_fd(this.#ptr, fd), "bpf_map__reuse_fd", this.name);
  }

  /** Resizes the map (before load); for a ring buffer, a power of two multiple of the page size. */
  setMaxEntries(n: number): void {
    checkRet(
      libbpf().bpf_map__set_max_entries(this.#ptr, n),
      "bpf_map__set_max_entries",
      this.name,
    );
  }

  /**
   * The initial contents of a global-data map (`.rodata`, `.data`, `.bss`), writable until
   * load: this is how `const volatile` settings reach the program.
   */
  initialValue(): Uint8Array {
    const size = new BigUint64Array(1);
    const ptr = checkPtr(
      libbpf().bpf_map__initial_value(this.#ptr, new Uint8Array(size.buffer)),
      "bpf_map__initial_value",
      this.name,
    );
    return new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(ptr, Number(size[0])));
  }

  /** Reads `key` into `value`; false when the key is absent. */
  lookup(key: Uint8Array<ArrayBuffer>, value: Uint8Array<ArrayBuffer>): boolean {
    const ret = libbpf().bpf_map_lookup_elem(this.fd, key, value);
    if (ret === -ENOENT) return false;
    checkRet(ret, "bpf_map_lookup_elem", this.name);
    return true;
  }

  /** Writes `key` → `value` (`flags`: 0 any, 1 only new, 2 only existing). */
  update(key: Uint8Array<ArrayBuffer>, value: Uint8Array<ArrayBuffer>, flags = 0): void {
    checkRet(
      libbpf().bpf_map_update_elem(this.fd, key, value, BigInt(flags)),
      "bpf_map_update_elem",
      this.name,
    );
  }

  /** Deletes `key`; false when it was absent. */
  delete(key: Uint8Array<ArrayBuffer>): boolean {
    const ret = libbpf().bpf_map_delete_elem(this.fd, key);
    if (ret === -ENOENT) return false;
    checkRet(ret, "bpf_map_delete_elem", this.name);
    return true;
  }

  /** Every key, one syscall each (for small maps; see {@linkcode lookupBatch} for big ones). */
  keys(): Uint8Array<ArrayBuffer>[] {
    const out: Uint8Array<ArrayBuffer>[] = [];
    let prev: Uint8Array<ArrayBuffer> | null = null;
    for (;;) {
      const next = new Uint8Array(this.keySize);
      const ret = libbpf().bpf_map_get_next_key(this.fd, prev, next);
      if (ret === -ENOENT) return out;
      checkRet(ret, "bpf_map_get_next_key", this.name);
      out.push(next);
      prev = next;
    }
  }

  /**
   * Reads every entry with `bpf_map_lookup_batch`, `batchSize` per syscall (about 9x faster
   * than key by key). Yields views into reused buffers: copy what you keep. A per-CPU map
   * (`perCpu`) yields one value per possible CPU, each in an 8-byte-aligned slot.
   */
  *lookupBatch(
    batchSize = 4096,
    perCpu = false,
  ): Generator<{ key: Uint8Array; value: Uint8Array }> {
    yield* this.#batches("bpf_map_lookup_batch", batchSize, perCpu);
  }

  /**
   * Reads and deletes every entry with `bpf_map_lookup_and_delete_batch` (hash maps). A BPF
   * program's write to an entry between its copy and its delete is lost: use it on a map no
   * program writes at the time (a generation the programs have moved off).
   */
  *takeBatch(batchSize = 4096): Generator<{ key: Uint8Array; value: Uint8Array }> {
    yield* this.#batches("bpf_map_lookup_and_delete_batch", batchSize, false);
  }

  *#batches(
    op: "bpf_map_lookup_batch" | "bpf_map_lookup_and_delete_batch",
    batchSize: number,
    perCpu: boolean,
  ): Generator<{ key: Uint8Array; value: Uint8Array }> {
    const fd = this.fd, ks = this.keySize;
    const vs = perCpu ? this.#valueStride() * libbpf().libbpf_num_possible_cpus() : this.valueSize;
    const keys = new Uint8Array(ks * batchSize), values = new Uint8Array(vs * batchSize);
    const inBatch = new Uint8Array(8), outBatch = new Uint8Array(8);
    const count = new Uint32Array(1);
    const countBytes = new Uint8Array(count.buffer);
    for (let first = true;; first = false) {
      count[0] = batchSize;
      const ret = libbpf()[op](
        fd,
        first ? null : inBatch,
        outBatch,
        keys,
        values,
        countBytes,
        null,
      );
      if (ret < 0 && ret !== -ENOENT) checkRet(ret, op, this.name);
      for (let i = 0; i < count[0]; i++) {
        yield {
          key: keys.subarray(i * ks, (i + 1) * ks),
          value: values.subarray(i * vs, (i + 1) * vs),
        };
      }
      if (ret === -ENOENT) return; // no more entries
      inBatch.set(outBatch);
    }
  }

  /** Sums a per-CPU array's u64 value at `index` over every possible CPU. */
  sumPerCpuU64(index: number): bigint {
    const cpus = libbpf().libbpf_num_possible_cpus();
    const values = new BigUint64Array(cpus * (this.#valueStride() / 8));
    const key = new Uint32Array([index]);
    if (!this.lookup(new Uint8Array(key.buffer), new Uint8Array(values.buffer))) return 0n;
    const stride = this.#valueStride() / 8;
    let sum = 0n;
    for (let cpu = 0; cpu < cpus; cpu++) sum += values[cpu * stride];
    return sum;
  }

  // Per-CPU maps return one value per CPU, each rounded up to 8 bytes.
  #valueStride(): number {
    return (this.valueSize + 7) & ~7;
  }
}

/**
 * Kernel maps that probes share: the one sanctioned cross-probe facility of the probe contract
 * (`provides`/`consumes` in src/pipeline/stage.ts). A probe that provides a map registers its
 * fd once loaded and withdraws it when it closes; a probe that consumes it takes the fd before
 * it loads (libbpf `bpf_map__reuse_fd`, which keeps its own reference). The runtime builds
 * providers before consumers. A name nobody provides (the provider is not in the pipeline, or
 * failed to load) has no fd: the consumer then loads its own, empty, copy.
 */
export class SharedMaps {
  readonly #fds = new Map<string, number>();

  /** Registers `fd` as the map `name` (valid until withdrawn). */
  provide(name: string, fd: number): void {
    this.#fds.set(name, fd);
  }

  /** Withdraws `name` if it still is `fd` (the provider is closing: the fd goes away). */
  withdraw(name: string, fd: number): void {
    if (this.#fds.get(name) === fd) this.#fds.delete(name);
  }

  /** The fd of map `name`, or undefined when no probe provides it. */
  fd(name: string): number | undefined {
    return this.#fds.get(name);
  }
}

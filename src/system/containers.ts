/**
 * Which container a cgroup v2 id belongs to: cgroup id → cgroup path → container id.
 *
 * The probes capture each event's cgroup id in the kernel (the task's or the socket's), so the
 * attribution never races a process exiting or moving. This module turns the id into the
 * container id the runtime named the cgroup after:
 *
 * | runtime                    | cgroup directory (systemd driver)  | (cgroupfs driver)          |
 * | -------------------------- | ---------------------------------- | -------------------------- |
 * | docker                     | `docker-<id>.scope`                | `/docker/<id>`             |
 * | containerd (CRI)           | `cri-containerd-<id>.scope`        | `/kubepods/.../pod<uid>/<id>` |
 * | CRI-O                      | `crio-<id>.scope`                  | `/kubepods/.../pod<uid>/<id>` |
 * | podman                     | `libpod-<id>.scope`                | `/libpod_parent/libpod-<id>` |
 *
 * `<id>` is 64 hex digits. The innermost such directory on the path wins (a process in a
 * sub-cgroup of its container, e.g. podman's `libpod-<id>.scope/container`, or docker in
 * docker). `crio-conmon-<id>.scope` and `libpod-conmon-<id>.scope` hold the runtime's monitor,
 * not the container: they do not match. Anything else (system services, user sessions, the
 * root) is no container.
 *
 * Finding the path of an id: on cgroup v2 the id is the kernfs node id, which is also the
 * inode number of the cgroup's directory. open_by_handle_at(2) opens the directory from the id
 * directly (needs CAP_DAC_READ_SEARCH); without it the cgroup2 mount is walked (getdents64
 * gives each directory's inode) at most once per `rescanIntervalMs`, on a miss. Both go
 * through libc (ffi/libc.ts): Deno guards /sys behind --allow-all.
 *
 * Answers are cached in an LRU of `maxEntries` ids, "no container" included. Cgroup ids are
 * never reused (the kernel allocates them increasing), so an answer stays true for the id's
 * life and beyond: nothing expires, entries only make room.
 */
import { LibbpfError } from "../../ffi/errors.ts";
import type { ContainerStats } from "../pipeline/host_facts.ts";
import { closeFd, kernfsPathById, openDirectory, subdirectories } from "../../ffi/libc.ts";

/** Lower-case hex of a container id: docker, containerd, CRI-O and podman all use 64 digits. */
const HEX64 = "[0-9a-f]{64}";
/** One path component naming a container, the id captured. */
const CONTAINER_COMPONENT = new RegExp(
  `^(?:(?:docker|cri-containerd|crio|libpod)-(${HEX64})\\.scope|(?:libpod-)?(${HEX64}))$`,
);

/**
 * The container id (64 hex digits) a cgroup path names, or undefined for a cgroup outside
 * containers. The innermost container directory on the path wins.
 *
 * @example
 * ```ts
 * containerIdOfPath("/system.slice/docker-4f2a…e1.scope"); // "4f2a…e1"
 * containerIdOfPath("/user.slice/user-0.slice/session-1.scope"); // undefined
 * ```
 */
export function containerIdOfPath(path: string): string | undefined {
  const parts = path.split("/");
  for (let i = parts.length - 1; i >= 0; i--) {
    const m = CONTAINER_COMPONENT.exec(parts[i]);
    if (m) return m[1] ?? m[2];
  }
  return undefined;
}

/** Where cgroup paths come from: the kernel, or a stand-in in unit tests. */
export interface CgroupSource {
  /**
   * The path (from the mount, starting with `/`) of cgroup `id`; null when no such cgroup
   * exists (any more); undefined when this source cannot tell (then a walk will).
   */
  pathOf(id: bigint): string | null | undefined;
  /** Every cgroup directory under the mount, with its id and path. */
  walk(): Iterable<{ id: bigint; path: string }>;
  close(): void;
}

const EPERM = 1, ENOENT = 2, EOPNOTSUPP = 95;

/** The kernel's cgroup v2 hierarchy mounted at `mount` (see the module doc). */
export class KernelCgroups implements CgroupSource {
  readonly #mount: string;
  #mountFd: number | undefined;
  /** False once open_by_handle_at proved unusable here (no CAP_DAC_READ_SEARCH). */
  #byHandle = true;

  constructor(mount: string) {
    this.#mount = mount.replace(/\/+$/, "");
  }

  pathOf(id: bigint): string | null | undefined {
    if (!this.#byHandle) return undefined;
    try {
      this.#mountFd ??= openDirectory(this.#mount || "/");
      const full = kernfsPathById(this.#mountFd, id);
      // Another mount namespace's view, or a dentry the kernel could not connect: walk instead.
      if (full !== this.#mount && !full.startsWith(`${this.#mount}/`)) return undefined;
      return full.slice(this.#mount.length) || "/";
    } catch (e) {
      if (!(e instanceof LibbpfError)) throw e;
      // ESTALE: no such cgroup, or a mount that is not cgroup v2 (a test's directory tree):
      // the walk tells which. Without CAP_DAC_READ_SEARCH (EPERM) only walks are left.
      if (e.errno === EPERM || e.errno === EOPNOTSUPP) this.#byHandle = false;
      return undefined;
    }
  }

  *walk(): Iterable<{ id: bigint; path: string }> {
    const stack = ["/"];
    while (stack.length) {
      const dir = stack.pop()!;
      let children;
      try {
        children = subdirectories(this.#mount + (dir === "/" ? "" : dir));
      } catch (e) {
        // Removed while we walked: its cgroups are gone too.
        if (e instanceof LibbpfError && e.errno === ENOENT) continue;
        throw e;
      }
      for (const { name, ino } of children) {
        const path = dir === "/" ? `/${name}` : `${dir}/${name}`;
        yield { id: ino, path };
        stack.push(path);
      }
    }
  }

  close(): void {
    if (this.#mountFd !== undefined) closeFd(this.#mountFd);
    this.#mountFd = undefined;
  }
}

/** Running totals of a {@linkcode ContainerResolver} (the container stage counts them). */
export type ContainerResolverStats = ContainerStats;

/** Options of a {@linkcode ContainerResolver}. */
export interface ContainerResolverOptions {
  /** The most cgroup ids remembered (least recently used go first). */
  maxEntries: number;
  /** Shortest time between two walks of the cgroup mount, in milliseconds. */
  rescanIntervalMs: number;
  /** Milliseconds on a monotonic clock. */
  now: () => number;
}

/**
 * Cgroup id → container id, cached (see the module doc).
 *
 * @example
 * ```ts
 * const resolver = new ContainerResolver(new KernelCgroups(cgroupV2Mount()), {
 *   maxEntries: 10_000, rescanIntervalMs: 1000, now: () => performance.now(),
 * });
 * resolver.lookup(record.fields.cgroup_id as bigint); // "4f2a…e1" or undefined
 * ```
 */
export class ContainerResolver {
  readonly #source: CgroupSource;
  readonly #options: ContainerResolverOptions;
  /** id → container id, or null for a cgroup outside containers; Map order is LRU order. */
  readonly #cache = new Map<bigint, string | null>();
  #lastScan = -Infinity;
  readonly #stats: ContainerResolverStats = {
    hits: 0,
    misses: 0,
    evictions: 0,
    scans: 0,
    deferred: 0,
  };

  constructor(source: CgroupSource, options: ContainerResolverOptions) {
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 1) {
      throw new RangeError(`maxEntries ${options.maxEntries} is not a positive integer`);
    }
    this.#source = source;
    this.#options = options;
  }

  /** Ids cached. */
  get size(): number {
    return this.#cache.size;
  }

  /** A copy of the running totals. */
  /** The running counts (live: the container transform reads them for every record). */
  get stats(): Readonly<ContainerResolverStats> {
    return this.#stats;
  }

  /** The container id of cgroup `id`, or undefined when it is in none (or cannot be told). */
  lookup(id: bigint): string | undefined {
    const cached = this.#cache.get(id);
    if (cached !== undefined) {
      this.#stats.hits++;
      this.#cache.delete(id); // to the young end
      this.#cache.set(id, cached);
      return cached ?? undefined;
    }
    this.#stats.misses++;
    const path = this.#source.pathOf(id);
    if (path !== undefined) {
      const container = path === null ? null : containerIdOfPath(path) ?? null;
      this.#remember(id, container);
      return container ?? undefined;
    }
    return this.#scanFor(id);
  }

  /** Walks the mount, if the last walk is old enough, caching every container found. */
  #scanFor(id: bigint): string | undefined {
    const now = this.#options.now();
    if (now - this.#lastScan < this.#options.rescanIntervalMs) {
      this.#stats.deferred++;
      return undefined;
    }
    this.#lastScan = now;
    this.#stats.scans++;
    let found: string | null | undefined, newest = 0n;
    for (const { id: cgroup, path } of this.#source.walk()) {
      const container = containerIdOfPath(path);
      if (cgroup === id) found = container ?? null;
      else if (container) this.#remember(cgroup, container);
      if (cgroup > newest) newest = cgroup;
    }
    // Ids only grow: one older than a cgroup the walk saw, and not seen itself, is gone.
    if (found === undefined && id < newest) found = null;
    if (found !== undefined) this.#remember(id, found);
    return found ?? undefined;
  }

  #remember(id: bigint, container: string | null): void {
    if (!this.#cache.delete(id) && this.#cache.size >= this.#options.maxEntries) {
      this.#cache.delete(this.#cache.keys().next().value!);
      this.#stats.evictions++;
    }
    this.#cache.set(id, container);
  }

  /** Releases the source's file descriptors. */
  close(): void {
    this.#cache.clear();
    this.#source.close();
  }
}

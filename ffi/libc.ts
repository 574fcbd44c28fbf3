/**
 * The few libc calls the FFI layer needs: mmap for the ring buffer, epoll to wait on it, netlink
 * sockets, errno.
 */
import { LibbpfError, LibraryMissingError } from "./errors.ts";

const symbols = {
  __errno_location: { parameters: [], result: "pointer" }, // int *(void)
  mmap: {
    // void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
    parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"],
    result: "pointer",
  },
  munmap: { parameters: ["pointer", "usize"], result: "i32" }, // int munmap(void *addr, size_t len)
  epoll_create1: { parameters: ["i32"], result: "i32" }, // int epoll_create1(int flags)
  epoll_ctl: {
    // int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
    parameters: ["i32", "i32", "i32", "buffer"],
    result: "i32",
  },
  epoll_wait: {
    // int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout_ms)
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true, // runs on a worker thread, so waiting never blocks the JS event loop
  },
  // The same call on this thread, with a timeout of 0: after the worker's call fails, it tells
  // the cause, since errno() here cannot see the worker thread's errno.
  epoll_wait_now: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
  },
  eventfd: { parameters: ["u32", "i32"], result: "i32" }, // int eventfd(unsigned initval, int flags)
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" }, // ssize_t write(int, const void *, size_t)
  close: { parameters: ["i32"], result: "i32" }, // int close(int fd)
  open: { parameters: ["buffer", "i32"], result: "i32" }, // int open(const char *path, int flags)
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" }, // ssize_t read(int, void *, size_t)
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" }, // int clock_gettime(clockid_t, struct timespec *)
  access: { parameters: ["buffer", "i32"], result: "i32" }, // int access(const char *path, int mode)
  capget: { parameters: ["buffer", "buffer"], result: "i32" }, // int capget(cap_user_header_t, cap_user_data_t)
  getdents64: { parameters: ["i32", "buffer", "usize"], result: "isize" }, // ssize_t getdents64(int fd, void *dirp, size_t count)
  open_by_handle_at: {
    // int open_by_handle_at(int mount_fd, struct file_handle *handle, int flags)
    parameters: ["i32", "buffer", "i32"],
    result: "i32",
  },
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" }, // ssize_t readlink(const char *path, char *buf, size_t size)
  // long syscall(long number, ...): for bpf(2) commands libbpf 1.1 has no wrapper for. Variadic,
  // but with integer arguments only the x86-64 and arm64 calls are the same as a fixed one.
  syscall3: {
    name: "syscall",
    parameters: ["i64", "i64", "buffer", "u64"],
    result: "i64",
  },
  // Netlink sockets (ffi/netlink.ts: conntrack's events).
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" }, // int socket(int domain, int type, int protocol)
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" }, // int bind(int fd, const struct sockaddr *, socklen_t)
  setsockopt: {
    // int setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen)
    parameters: ["i32", "i32", "i32", "buffer", "u32"],
    result: "i32",
  },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" }, // ssize_t recv(int fd, void *buf, size_t len, int flags)
  vsnprintf: {
    // int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap); va_list is a pointer on x86-64
    parameters: ["buffer", "usize", "pointer", "pointer"],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const MAP_FAILED = -1n;
export const EPOLL_CTL_ADD = 1;
export const EPOLLIN = 1;
export const EPOLL_CLOEXEC = 0o2000000;
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const CLOCK_REALTIME = 0;
export const CLOCK_BOOTTIME = 7;

let lib: Deno.DynamicLibrary<typeof symbols> | undefined;

/** The libc bindings, opened on first use. */
export function libc(): Deno.DynamicLibrary<typeof symbols>["symbols"] {
  if (!lib) {
    try {
      lib = Deno.dlopen("libc.so.6", symbols);
    } catch (e) {
      throw new LibraryMissingError("libc.so.6", e);
    }
  }
  return lib.symbols;
}

/** The calling thread's errno, read right after a failed synchronous call. */
export function errno(): number {
  const p = libc().__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

const timespec = new BigInt64Array(2);

/** Reads a clock in integer nanoseconds. */
export function clockNs(clock: number): bigint {
  libc().clock_gettime(clock, timespec);
  return timespec[0] * 1_000_000_000n + timespec[1];
}

/**
 * Nanoseconds to add to a CLOCK_BOOTTIME reading (what `bpf_ktime_get_boot_ns` returns) to get
 * wall-clock time. Read it again now and then: the wall clock can be stepped.
 */
export function bootToRealtimeOffsetNs(): bigint {
  // Two reads can be split by a preemption (milliseconds on a busy machine): bracket the boot
  // reading with two wall-clock ones and keep the tightest of a few tries.
  let best = 0n, bestGap = -1n;
  for (let i = 0; i < 4; i++) {
    const before = clockNs(CLOCK_REALTIME);
    const boot = clockNs(CLOCK_BOOTTIME);
    const after = clockNs(CLOCK_REALTIME);
    const gap = after - before;
    if (bestGap < 0n || gap < bestGap) [best, bestGap] = [(before + after) / 2n - boot, gap];
    if (gap < 20_000n) break;
  }
  return best;
}

const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

/** This process's effective capability set (capget(2)); bit N is capability N. */
export function effectiveCapabilities(): bigint {
  const header = new Uint32Array([LINUX_CAPABILITY_VERSION_3, 0]); // version, pid 0 = self
  const data = new Uint32Array(6); // two __user_cap_data_struct: effective, permitted, inheritable
  if (libc().capget(new Uint8Array(header.buffer), new Uint8Array(data.buffer)) < 0) return 0n;
  return (BigInt(data[3]) << 32n) | BigInt(data[0]);
}

/**
 * Whether this process may read `path` (access(2)). For /sys and /proc, which Deno guards
 * behind --allow-all although libbpf reads them natively.
 */
export function readable(path: string): boolean {
  const R_OK = 4;
  return libc().access(new TextEncoder().encode(path + "\0"), R_OK) === 0;
}

const O_RDONLY_CLOEXEC = 0o2000000;

/**
 * Reads a small text file under /proc or /sys through libc. Deno guards every path under /proc
 * and /sys behind --allow-all, even with --allow-read for it; libc reads them with only the
 * --allow-ffi the collector already has. Throws a LibbpfError carrying the errno.
 */
export function readKernelFile(path: string, maxBytes = 1 << 20): string {
  const c = libc();
  const fd = c.open(new TextEncoder().encode(path + "\0"), O_RDONLY_CLOEXEC);
  if (fd < 0) throw new LibbpfError("open", errno(), [], path);
  try {
    const buf = new Uint8Array(maxBytes);
    let used = 0;
    for (;;) {
      const n = Number(c.read(fd, buf.subarray(used), BigInt(maxBytes - used)));
      if (n < 0) throw new LibbpfError("read", errno(), [], path);
      if (n === 0 || used + n >= maxBytes) {
        return new TextDecoder().decode(buf.subarray(0, used + n));
      }
      used += n;
    }
  } finally {
    c.close(fd);
  }
}

const O_DIRECTORY = 0o200000;
const O_PATH = 0o10000000;
const DT_DIR = 4;
const FILEID_KERNFS = 0xfe;

// Reused by every subdirectories() call: a walk lists thousands of directories.
const direntBuffer = new Uint8Array(32 * 1024);
const direntView = new DataView(direntBuffer.buffer);
const direntNames = new TextDecoder();

/**
 * A directory's subdirectories, each with its inode number (getdents64's d_ino), through libc:
 * for /sys/fs/cgroup, which Deno guards behind --allow-all. In cgroup v2 the inode number of a
 * cgroup's directory is its cgroup id (the kernfs node id bpf_get_current_cgroup_id returns).
 * Throws a LibbpfError carrying the errno (ENOENT when the directory went away).
 */
export function subdirectories(path: string): { name: string; ino: bigint }[] {
  const c = libc();
  const fd = openDirectory(path);
  try {
    const out: { name: string; ino: bigint }[] = [];
    const buf = direntBuffer, view = direntView, decoder = direntNames;
    for (;;) {
      const n = Number(c.getdents64(fd, buf, BigInt(buf.length)));
      if (n < 0) throw new LibbpfError("getdents64", errno(), [], path);
      if (n === 0) return out;
      // struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
      for (let at = 0; at < n;) {
        const reclen = view.getUint16(at + 16, true);
        if (buf[at + 18] === DT_DIR) {
          const nameStart = at + 19;
          const name = decoder.decode(buf.subarray(nameStart, buf.indexOf(0, nameStart)));
          if (name !== "." && name !== "..") {
            out.push({ name, ino: view.getBigUint64(at, true) });
          }
        }
        at += reclen;
      }
    }
  } finally {
    c.close(fd);
  }
}

/** An fd of a directory (to anchor open_by_handle_at, which refuses O_PATH); close with closeFd. */
export function openDirectory(path: string): number {
  const fd = libc().open(new TextEncoder().encode(path + "\0"), O_RDONLY_CLOEXEC | O_DIRECTORY);
  if (fd < 0) throw new LibbpfError("open", errno(), [], path);
  return fd;
}

/** Closes an fd from openDirectory. */
export function closeFd(fd: number): void {
  libc().close(fd);
}

/**
 * The path of the kernfs node `id` (a cgroup v2 id) on the mount `mountFd` is on, found by
 * open_by_handle_at(2) with a kernfs file handle and the fd's /proc/self/fd link. Needs
 * CAP_DAC_READ_SEARCH. Throws a LibbpfError with the errno: ESTALE when no such cgroup exists
 * (any more), EPERM without the capability.
 */
export function kernfsPathById(mountFd: number, id: bigint): string {
  const c = libc();
  // struct file_handle { unsigned int handle_bytes; int handle_type; unsigned char f_handle[8]; }
  const handle = new Uint8Array(16);
  const view = new DataView(handle.buffer);
  view.setUint32(0, 8, true);
  view.setInt32(4, FILEID_KERNFS, true);
  view.setBigUint64(8, id, true);
  const fd = c.open_by_handle_at(mountFd, handle, O_PATH | O_RDONLY_CLOEXEC);
  if (fd < 0) throw new LibbpfError("open_by_handle_at", errno(), [], `cgroup id ${id}`);
  try {
    const buf = new Uint8Array(4096);
    const link = new TextEncoder().encode(`/proc/self/fd/${fd}\0`);
    const n = Number(c.readlink(link, buf, BigInt(buf.length)));
    if (n < 0) throw new LibbpfError("readlink", errno(), [], `/proc/self/fd/${fd}`);
    return new TextDecoder().decode(buf.subarray(0, n));
  } finally {
    c.close(fd);
  }
}

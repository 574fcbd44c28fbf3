/**
 * Errors raised by the FFI layer. `LibbpfError` is the only error thrown for a failed libbpf
 * or libc call: it carries the operation, the errno and the libbpf log lines printed during it.
 */

const ERRNO_NAMES: { [errno: number]: [string, string] } = {
  1: ["EPERM", "Operation not permitted"],
  2: ["ENOENT", "No such file or directory"],
  3: ["ESRCH", "No such process"],
  4: ["EINTR", "Interrupted system call"],
  5: ["EIO", "Input/output error"],
  7: ["E2BIG", "Argument list too long"],
  9: ["EBADF", "Bad file descriptor"],
  11: ["EAGAIN", "Resource temporarily unavailable"],
  12: ["ENOMEM", "Cannot allocate memory"],
  13: ["EACCES", "Permission denied"],
  14: ["EFAULT", "Bad address"],
  16: ["EBUSY", "Device or resource busy"],
  17: ["EEXIST", "File exists"],
  19: ["ENODEV", "No such device"],
  22: ["EINVAL", "Invalid argument"],
  24: ["EMFILE", "Too many open files"],
  28: ["ENOSPC", "No space left on device"],
  38: ["ENOSYS", "Function not implemented"],
  93: ["EPROTONOSUPPORT", "Protocol not supported"],
  95: ["EOPNOTSUPP", "Operation not supported"],
  105: ["ENOBUFS", "No buffer space available"],
  524: ["ENOTSUPP", "Operation is not supported"],
  4007: ["LIBBPF_ERRNO__PROG2BIG", "Program too big"],
};

/** Returns `ENAME (description)` for an errno, e.g. `EPERM (Operation not permitted)`. */
export function describeErrno(errno: number): string {
  const known = ERRNO_NAMES[errno];
  return known ? `${known[0]} (${known[1]})` : `errno ${errno}`;
}

/** The symbolic name of an errno (`EPERM`), or `errno N` when unknown. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno]?.[0] ?? `errno ${errno}`;
}

/**
 * A libbpf or libc call failed.
 *
 * @example
 * ```ts
 * try { obj.load(); } catch (e) {
 *   if (e instanceof LibbpfError && e.errno === 1) console.error("needs CAP_BPF");
 * }
 * ```
 */
export class LibbpfError extends Error {
  override name = "LibbpfError";
  /** The C function that failed, e.g. `bpf_object__load`. */
  readonly op: string;
  /** Positive errno. */
  readonly errno: number;
  /** libbpf's own log lines printed during the call (the verifier log on a load failure). */
  readonly log: readonly string[];

  constructor(op: string, errno: number, log: readonly string[] = [], detail = "") {
    super(`${op}${detail ? ` ${detail}` : ""}: ${describeErrno(errno)}`);
    this.op = op;
    this.errno = errno;
    this.log = log;
  }

  /**
   * One line for the user: the message, a hint on EPERM, and libbpf's reason (the verifier's
   * own, when a load was rejected). src/errors.ts `describeError` uses it for any error that
   * has a `describe()`, so it need not import this layer.
   */
  describe(): string {
    const hint = this.errno === 1 ? " (needs root, or CAP_BPF and CAP_PERFMON)" : "";
    const why = verifierReason(this.log) ??
      this.log.filter((l) => !l.startsWith("libbpf: prog") || l.includes("failed")).at(-1);
    return `${this.message}${hint}${why ? ` [${why}]` : ""}`;
  }
}

/** The verifier's own reason from a load log: the last line before its statistics. */
function verifierReason(log: readonly string[]): string | undefined {
  const end = log.findIndex((l) => l.includes("-- END PROG LOAD LOG --"));
  if (end < 0) return undefined;
  for (let i = end - 1; i >= 0 && !log[i].includes("-- BEGIN PROG LOAD LOG --"); i--) {
    const line = log[i].trim();
    if (line && !/^processed \d+ insns/.test(line) && !line.startsWith("verification time")) {
      return `verifier: ${line}`;
    }
  }
  return undefined;
}

/** libbpf.so.1 or libc could not be opened. */
export class LibraryMissingError extends Error {
  override name = "LibraryMissingError";
  readonly library: string;
  constructor(library: string, cause: unknown) {
    super(
      `cannot load ${library}: ${cause instanceof Error ? cause.message : cause}` +
        (library.startsWith("libbpf") ? " (install it: ./scripts/setup.sh installs libbpf1)" : ""),
    );
    this.library = library;
  }

  /** The message says it all (what is missing and how to install it). */
  describe(): string {
    return this.message;
  }
}

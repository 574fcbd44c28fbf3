/** `BpfLink`: an attachment of a program to a hook. Closing it detaches the program. */
import { checkRet, libbpf } from "./libbpf.ts";
import { warnLeak } from "./leak.ts";
import { errno, libc } from "./libc.ts";
import { LibbpfError } from "./errors.ts";

const leaks = new FinalizationRegistry<string>((what) => warnLeak("BpfLink", what));

/**
 * What a link holds: a libbpf `struct bpf_link *`, or a bare link fd from a `bpf()` call made
 * without libbpf (a link type libbpf 1.1 cannot create; see uprobe_multi.ts).
 */
type Handle = { ptr: Deno.PointerObject } | { fd: number };

/** An attached program; detached by {@linkcode close} (and by the kernel when the process exits). */
export class BpfLink implements Disposable {
  #handle: Handle | null;
  /** What is attached where, e.g. `uretprobe /usr/bin/bash:readline`. */
  readonly description: string;

  /** Wraps a libbpf link, or (`{ fd }`) takes ownership of a link fd: see {@linkcode fromFd}. */
  constructor(handle: Deno.PointerObject | { fd: number }, description: string) {
    this.#handle = "fd" in handle ? { fd: handle.fd } : { ptr: handle };
    this.description = description;
    leaks.register(this, description, this);
  }

  /** Takes ownership of a link fd from `BPF_LINK_CREATE`: closing the fd detaches. */
  static fromFd(fd: number, description: string): BpfLink {
    return new BpfLink({ fd }, description);
  }

  /** The link's file descriptor (an iterator link's is what `bpf_iter_create` takes). */
  get fd(): number {
    if (!this.#handle) throw new Error(`${this.description}: link is closed`);
    if ("fd" in this.#handle) return this.#handle.fd;
    return checkRet(libbpf().bpf_link__fd(this.#handle.ptr), "bpf_link__fd", this.description);
  }

  /** Detaches. Idempotent. */
  close(): void {
    if (!this.#handle) return;
    const handle = this.#handle;
    this.#handle = null;
    leaks.unregister(this);
    if ("ptr" in handle) {
      checkRet(libbpf().bpf_link__destroy(handle.ptr), "bpf_link__destroy", this.description);
    } else if (libc().close(handle.fd) < 0) {
      throw new LibbpfError("close link", errno(), [], this.description);
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

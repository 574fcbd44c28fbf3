/** `BpfLink`: an attachment of a program to a hook. Closing it detaches the program. */
import { checkRet, libbpf } from "./libbpf.ts";
import { warnLeak } from "./leak.ts";

const leaks = new FinalizationRegistry<string>((what) => warnLeak("BpfLink", what));

/** An attached program; detached by {@linkcode close} (and by the kernel when the process exits). */
export class BpfLink implements Disposable {
  #ptr: Deno.PointerObject | null;
  /** What is attached where, e.g. `uretprobe /usr/bin/bash:readline`. */
  readonly description: string;

  constructor(ptr: Deno.PointerObject, description: string) {
    this.#ptr = ptr;
    this.description = description;
    leaks.register(this, description, this);
  }

  /** The link's file descriptor (an iterator link's is what `bpf_iter_create` takes). */
  get fd(): number {
    if (!this.#ptr) throw new Error(`${this.description}: link is closed`);
    return checkRet(libbpf().bpf_link__fd(this.#ptr), "bpf_link__fd", this.description);
  }

  /** Detaches. Idempotent. */
  close(): void {
    if (!this.#ptr) return;
    const ptr = this.#ptr;
    this.#ptr = null;
    leaks.unregister(this);
    checkRet(libbpf().bpf_link__destroy(ptr), "bpf_link__destroy", this.description);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

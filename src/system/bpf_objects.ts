/**
 * Where probes get their compiled BPF objects.
 *
 * From the source tree: `build/bpf/<name>.bpf.o`, made by `scripts/build_bpf.sh`. In a bundle
 * or a compiled binary (`deno task bundle`, `deno task compile`): the bytes were embedded at
 * build time (`scripts/embed_bpf.ts` writes an entry that calls {@linkcode embedBpfObjects}),
 * and libbpf opens them from memory, so the one file needs nothing beside it.
 *
 * Neither way needs a Deno read permission: libbpf reads files itself, and the check that the
 * file is there uses access(2).
 */
import { BpfObject } from "../../ffi/object.ts";
import { readable } from "../../ffi/libc.ts";
import { UserError } from "../errors.ts";

let embedded: Map<string, Uint8Array<ArrayBuffer>> | undefined;

/** Registers BPF objects built into this program (name → base64 of the `.bpf.o`). */
export function embedBpfObjects(objects: { [name: string]: string }): void {
  embedded = new Map(
    Object.entries(objects).map(([name, b64]) => [name, Uint8Array.fromBase64(b64)]),
  );
}

/** Whether this program carries its BPF objects (a bundle or a compiled binary). */
export function bpfObjectsEmbedded(): boolean {
  return embedded !== undefined;
}

/** Where the object `name` comes from, for `--explain` and `--doctor`. */
export function bpfObjectSource(name: string): string {
  return embedded ? `${name}.bpf.o (embedded)` : bpfObjectPath(name);
}

/** Opens the BPF object `name` (a probe def's `bpfObject`) from wherever this build keeps it. */
export function openBpfObject(name: string): BpfObject {
  if (embedded) {
    const bytes = embedded.get(name);
    if (!bytes) throw new UserError(`BPF object ${name}.bpf.o is not in this build: rebuild it`);
    return BpfObject.openMemory(bytes, name);
  }
  const path = bpfObjectPath(name);
  if (!readable(path)) {
    throw new UserError(
      `BPF object ${path} is missing: build it with ./scripts/setup.sh (or deno task build)`,
    );
  }
  return BpfObject.open(path);
}

function bpfObjectPath(name: string): string {
  return new URL(`../../build/bpf/${name}.bpf.o`, import.meta.url).pathname;
}

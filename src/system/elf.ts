/**
 * Just enough ELF64 reading to decide where readline lives: which functions a binary defines
 * (in .dynsym or .symtab), which shared libraries it needs (DT_NEEDED), and at which file
 * offset a function starts (what a uprobe_multi link takes).
 */

const SHT_SYMTAB = 2, SHT_DYNSYM = 11, SHT_DYNAMIC = 6;
const STT_OBJECT = 1, STT_FUNC = 2, DT_NEEDED = 1;

/** Thrown for a file that is not a little-endian ELF64 file. */
export class ElfError extends Error {
  override name = "ElfError";
}

interface Section {
  type: number;
  /** sh_addr: the virtual address the section is linked at. */
  addr: number;
  offset: number;
  size: number;
  link: number;
  entsize: number;
}

function sections(bytes: Uint8Array): { view: DataView; list: Section[] } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // "\x7fELF", ELFCLASS64, ELFDATA2LSB
  if (bytes.length < 64 || view.getUint32(0) !== 0x7f454c46 || bytes[4] !== 2 || bytes[5] !== 1) {
    throw new ElfError("not a 64-bit little-endian ELF file");
  }
  const shoff = Number(view.getBigUint64(0x28, true));
  const shentsize = view.getUint16(0x3a, true), shnum = view.getUint16(0x3c, true);
  if (shoff + shnum * shentsize > bytes.length) throw new ElfError("section headers out of bounds");
  const list: Section[] = [];
  for (let i = 0; i < shnum; i++) {
    const h = shoff + i * shentsize;
    list.push({
      type: view.getUint32(h + 4, true),
      addr: Number(view.getBigUint64(h + 0x10, true)),
      offset: Number(view.getBigUint64(h + 0x18, true)),
      size: Number(view.getBigUint64(h + 0x20, true)),
      link: view.getUint32(h + 0x28, true),
      entsize: Number(view.getBigUint64(h + 0x38, true)),
    });
  }
  return { view, list };
}

function cStringAt(bytes: Uint8Array, offset: number): string {
  let end = offset;
  while (end < bytes.length && bytes[end] !== 0) end++;
  return new TextDecoder().decode(bytes.subarray(offset, end));
}

/** Runs `read` over the file, turning an out-of-bounds read (a truncated file) into ElfError. */
function guarded<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof RangeError) throw new ElfError("truncated or corrupt ELF file");
    throw e;
  }
}

/** Which of `names` the ELF file defines as functions (undefined imports do not count). */
export function definedFunctions(bytes: Uint8Array, names: readonly string[]): Set<string> {
  return guarded(() => definedFunctionsUnchecked(bytes, names));
}

/** The DT_NEEDED entries: sonames of the shared libraries the file links. */
export function neededLibraries(bytes: Uint8Array): string[] {
  return guarded(() => neededLibrariesUnchecked(bytes));
}

/**
 * The file offset where function `name` starts. A symbol's value is a virtual address (absolute
 * in an executable, relative to the load base in a shared library); the kernel places uprobes
 * by file offset, so it is moved by the difference between its section's address and file
 * offset. Throws an ElfError when the file does not define `name`, or defines it at two places.
 */
export function functionFileOffset(bytes: Uint8Array, name: string): number {
  return guarded(() => functionFileOffsetUnchecked(bytes, name));
}

function functionFileOffsetUnchecked(bytes: Uint8Array, name: string): number {
  const { list, found } = functionSymbols(bytes, [name]);
  const offsets = new Set<number>();
  for (const { shndx, value } of found.get(name) ?? []) {
    const section = list[shndx];
    if (!section) throw new ElfError(`${name}: symbol in section ${shndx}, which does not exist`);
    offsets.add(value - section.addr + section.offset);
  }
  if (offsets.size === 0) throw new ElfError(`does not define function ${name}`);
  if (offsets.size > 1) throw new ElfError(`defines function ${name} more than once`);
  return [...offsets][0];
}

/**
 * The link-time address (symbol value) of the function or variable `name`, e.g. bash's
 * `last_command_exit_value`; undefined when the file does not define it once.
 */
export function symbolAddress(bytes: Uint8Array, name: string): number | undefined {
  return guarded(() => {
    const values = new Set(
      (symbols(bytes, [name], [STT_FUNC, STT_OBJECT]).found.get(name) ?? []).map((s) => s.value),
    );
    return values.size === 1 ? [...values][0] : undefined;
  });
}

function definedFunctionsUnchecked(bytes: Uint8Array, names: readonly string[]): Set<string> {
  return new Set(functionSymbols(bytes, names).found.keys());
}

/**
 * The defined function symbols (in .symtab or .dynsym) named in `names`: each name found, with
 * the section index and value of every symbol that defines it.
 */
function functionSymbols(bytes: Uint8Array, names: readonly string[]): {
  list: Section[];
  found: Map<string, { shndx: number; value: number }[]>;
} {
  return symbols(bytes, names, [STT_FUNC]);
}

/** The defined symbols of the given types (STT_*) named in `names`, as functionSymbols. */
function symbols(bytes: Uint8Array, names: readonly string[], types: readonly number[]): {
  list: Section[];
  found: Map<string, { shndx: number; value: number }[]>;
} {
  const { view, list } = sections(bytes);
  // Compare raw name bytes: decoding each of bash's ~2000 symbol names costs 20 ms.
  const wanted = names.map((name) => ({ name, bytes: new TextEncoder().encode(name) }));
  const found = new Map<string, { shndx: number; value: number }[]>();
  for (const s of list) {
    if (s.type !== SHT_SYMTAB && s.type !== SHT_DYNSYM) continue;
    const strtab = list[s.link];
    for (let off = s.offset; off + 24 <= s.offset + s.size; off += s.entsize || 24) {
      const shndx = view.getUint16(off + 6, true);
      if (!types.includes(bytes[off + 4] & 0xf) || shndx === 0) continue; // not defined here
      const at = strtab.offset + view.getUint32(off, true);
      for (const w of wanted) {
        if (!nameAt(bytes, at, w.bytes)) continue;
        const symbol = { shndx, value: Number(view.getBigUint64(off + 8, true)) };
        const seen = found.get(w.name);
        if (seen) seen.push(symbol);
        else found.set(w.name, [symbol]);
      }
    }
  }
  return { list, found };
}

/** Whether the NUL-terminated string at `at` is exactly `name`. */
function nameAt(bytes: Uint8Array, at: number, name: Uint8Array): boolean {
  if (at + name.length >= bytes.length || bytes[at + name.length] !== 0) return false;
  for (let i = 0; i < name.length; i++) if (bytes[at + i] !== name[i]) return false;
  return true;
}

function neededLibrariesUnchecked(bytes: Uint8Array): string[] {
  const { view, list } = sections(bytes);
  const needed: string[] = [];
  for (const s of list) {
    if (s.type !== SHT_DYNAMIC) continue;
    const strtab = list[s.link];
    for (let off = s.offset; off + 16 <= s.offset + s.size; off += 16) {
      const tag = view.getBigInt64(off, true);
      if (tag === 0n) break;
      if (tag === BigInt(DT_NEEDED)) {
        needed.push(cStringAt(bytes, strtab.offset + Number(view.getBigUint64(off + 8, true))));
      }
    }
  }
  return needed;
}

/**
 * Where a process's resident memory is, from /proc/<pid>/smaps: each mapping put in one of a few
 * kinds by what backs it. Linux names file and special mappings; anonymous ones are told apart by
 * how their owners allocate them (the heuristics are below, each with its reason), and
 * {@linkcode v8Heap} in memory.ts gives V8's own count to check the V8 row against.
 */

/** One mapping of /proc/<pid>/smaps: its range, permissions, name and Rss. */
export interface Mapping {
  start: number;
  end: number;
  perms: string;
  /** The path, `[heap]`, `[stack]`, `anon_inode:bpf-map`..., or "" for anonymous memory. */
  name: string;
  rssKib: number;
}

/** What a process's resident memory is, in KiB each. */
export interface MemoryKinds {
  /** The deno executable's pages (its code and read-only data, file-backed). */
  deno_binary: number;
  /** Other files mapped: shared libraries (libc, libbpf...), deno's cache databases. */
  other_files: number;
  /** V8's heap: its pages and its code range. */
  v8_heap: number;
  /** malloc's memory: the main heap (brk) and the per-thread arenas. */
  c_heap: number;
  /** Thread stacks. */
  stacks: number;
  /** BPF maps mapped into the process (ring buffers, mmapable arrays). */
  bpf_maps: number;
  /** Anonymous memory none of the rules above names. */
  other_anonymous: number;
}

export const KIND_NAMES: { [kind in keyof MemoryKinds]: string } = {
  deno_binary: "deno binary (code, file-backed)",
  other_files: "other files (libc, libbpf, deno caches)",
  v8_heap: "V8 heap (pages and code range)",
  c_heap: "C heap (malloc: brk heap and arenas)",
  stacks: "thread stacks",
  bpf_maps: "BPF maps and rings mapped",
  other_anonymous: "other anonymous",
};

/** Parses smaps text (only the fields used here). */
export function parseSmaps(text: string): Mapping[] {
  const mappings: Mapping[] = [];
  for (const line of text.split("\n")) {
    // "7fa214000000-7fa234000000 rwxp 00000000 00:00 0      [name]"
    const m = line.match(/^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/);
    if (m) {
      mappings.push({
        start: parseInt(m[1], 16),
        end: parseInt(m[2], 16),
        perms: m[3],
        name: m[4].trim(),
        rssKib: 0,
      });
      continue;
    }
    const rss = line.match(/^Rss:\s+(\d+) kB/);
    if (rss && mappings.length) mappings[mappings.length - 1].rssKib = Number(rss[1]);
  }
  return mappings;
}

/**
 * glibc puts each arena's heap at an address aligned to its largest size (HEAP_MAX_SIZE, 64 MiB
 * on 64-bit), so an anonymous mapping starting on such a boundary in the mmap area is an arena.
 */
const ARENA_ALIGN = 64 * 2 ** 20;
/**
 * V8 places its pages at random addresses below 2^46 (its own address-space randomisation),
 * where the kernel's mmap area (libraries, arenas, stacks: near 0x7f...) and the executable
 * (0x55...) are not; its code range is the one read-write-execute reservation.
 */
const V8_RANDOM_LIMIT = 2 ** 46;

/** Sorts `mappings` (of a process whose executable is `exe`) into kinds, Rss summed in KiB. */
export function memoryKinds(mappings: Mapping[], exe: string): MemoryKinds {
  const kinds: MemoryKinds = {
    deno_binary: 0,
    other_files: 0,
    v8_heap: 0,
    c_heap: 0,
    stacks: 0,
    bpf_maps: 0,
    other_anonymous: 0,
  };
  mappings.forEach((m, i) => {
    kinds[kindOf(m, mappings[i - 1], exe)] += m.rssKib;
  });
  return kinds;
}

function kindOf(m: Mapping, below: Mapping | undefined, exe: string): keyof MemoryKinds {
  if (m.name === exe) return "deno_binary";
  if (m.name.startsWith("anon_inode:bpf")) return "bpf_maps";
  if (m.name === "[heap]") return "c_heap";
  if (m.name === "[stack]") return "stacks";
  if (m.name.startsWith("/")) return "other_files";
  if (m.name !== "") return "other_anonymous"; // [vdso], /dev/zero (deleted), ...
  if (m.perms === "rwxp" || m.start < V8_RANDOM_LIMIT) return "v8_heap";
  if (m.start % ARENA_ALIGN === 0) return "c_heap";
  // A thread's stack sits right above its guard page (no access, mapped with it).
  if (below && below.end === m.start && below.perms === "---p" && below.name === "") {
    return "stacks";
  }
  return "other_anonymous";
}

/** The kinds of a running process, read now. */
export function processMemoryKinds(pid: number): MemoryKinds {
  const exe = Deno.readLinkSync(`/proc/${pid}/exe`);
  return memoryKinds(parseSmaps(Deno.readTextFileSync(`/proc/${pid}/smaps`)), exe);
}

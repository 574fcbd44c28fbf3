import assert from "node:assert/strict";
import { memoryKinds, parseSmaps } from "./smaps.ts";

/** One smaps entry with only the lines the parser reads (and one it skips). */
const entry = (range: string, perms: string, name: string, rss: number) =>
  `${range} ${perms} 00000000 00:00 0          ${name}\nSize:  4 kB\nRss:  ${rss} kB\n`;

// Shaped like a running collector's smaps (addresses and sizes from one).
const SMAPS = [
  entry("55b0f8f00000-55b0f8fa3000", "r-xp", "/usr/bin/deno", 1000),
  entry("55b0f8fa3000-55b0f8fd1000", "rw-p", "[heap]", 144),
  entry("21f44400000-21f44440000", "rw-p", "", 256), // a V8 page at a random address
  entry("7fa1e0000000-7fa1e009d000", "rw-p", "", 412), // a malloc arena (64 MiB aligned)
  entry("7fa1e009d000-7fa1e4000000", "---p", "", 0), // the rest of its reservation
  entry("7fa214000000-7fa234000000", "rwxp", "", 712), // V8's code range
  entry("7fa2501f6000-7fa2501f7000", "---p", "", 0), // a thread's guard page
  entry("7fa2501f7000-7fa2503f7000", "rw-p", "", 36), // and its stack
  entry("7fa251bb9000-7fa251c2d000", "r-xp", "/usr/lib/x86_64-linux-gnu/libc.so.6", 136),
  entry("7fa253390000-7fa253393000", "rw-p", "", 8), // anonymous, none of the above
  entry("7fa25368f000-7fa253791000", "rw-s", "anon_inode:bpf-map", 1040),
  entry("7ffc23dcb000-7ffc23dec000", "rw-p", "[stack]", 420),
].join("");

Deno.test("memoryKinds() puts each mapping's Rss in the kind its owner allocates", () => {
  const kinds = memoryKinds(parseSmaps(SMAPS), "/usr/bin/deno");
  assert.deepEqual(kinds, {
    deno_binary: 1000,
    other_files: 136,
    v8_heap: 256 + 712,
    c_heap: 144 + 412,
    stacks: 36 + 420,
    bpf_maps: 1040,
    other_anonymous: 8,
  });
});

Deno.test("memoryKinds() accounts for every resident KiB exactly once", () => {
  const mappings = parseSmaps(SMAPS);
  const total = mappings.reduce((sum, m) => sum + m.rssKib, 0);
  const kinds = memoryKinds(mappings, "/usr/bin/deno");
  assert.equal(Object.values(kinds).reduce((a, b) => a + b, 0), total);
  assert.equal(mappings.length, 12);
});

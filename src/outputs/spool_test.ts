import assert from "node:assert/strict";
import { join } from "node:path";
import { serverTest } from "../../test/_server_process.ts";
import { HEADER_BYTES as H, Spool } from "./spool.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string) => encoder.encode(text);
const NO_DROPS = { droppedBatches: 0, droppedBytes: 0 };

/** A temp directory (under `parent`, if it exists) removed after `fn`. */
function inTempDir(fn: (dir: string) => void, parent?: string): void {
  const dir = Deno.makeTempDirSync({
    prefix: "spool_test_",
    dir: parent && isDirectory(parent) ? parent : undefined,
  });
  try {
    fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** The names in `dir`, sorted. */
const names = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

/** Peeks and removes until empty; the bodies as text, in order. */
function drain(spool: Spool): string[] {
  const out: string[] = [];
  for (let b = spool.peek(); b; b = spool.peek()) {
    out.push(decoder.decode(b.body));
    spool.remove(b.id);
  }
  return out;
}

Deno.test("Spool peeks the oldest batch until it is removed, in append order", () => {
  inTempDir((dir) => {
    const spool = Spool.open(dir, { maxBytes: 1024 });
    assert.equal(spool.dir, dir);
    assert.equal(spool.peek(), undefined);
    for (const text of ["a 1\n", "b 2\n", "c 3\n"]) {
      assert.deepEqual(spool.append(bytes(text)), NO_DROPS);
    }
    assert.deepEqual(names(dir), ["000000000001.lp", "000000000002.lp", "000000000003.lp"]);

    const first = spool.peek()!;
    assert.equal(decoder.decode(first.body), "a 1\n");
    assert.equal(spool.peek()!.id, first.id, "peek does not remove");
    spool.remove(first.id);
    const second = spool.peek()!;
    assert.equal(decoder.decode(second.body), "b 2\n");
    assert.ok(second.id > first.id);
    assert.deepEqual(drain(spool), ["b 2\n", "c 3\n"]);
    assert.equal(spool.peek(), undefined);
    assert.deepEqual(names(dir), []);
  });
});

Deno.test("Spool stats follow every append, peek and remove", () => {
  inTempDir((dir) => {
    const spool = Spool.open(dir, { maxBytes: 1024 });
    assert.deepEqual(spool.stats, { batches: 0, bytes: 0 });
    spool.append(bytes("abc"));
    assert.deepEqual(spool.stats, { batches: 1, bytes: H + 3 }, "a header line and the body");
    spool.append(bytes("defgh"));
    assert.deepEqual(spool.stats, { batches: 2, bytes: 2 * H + 8 });
    spool.append(new Uint8Array(0));
    assert.deepEqual(spool.stats, { batches: 3, bytes: 3 * H + 8 });
    const oldest = spool.peek()!;
    assert.deepEqual(spool.stats, { batches: 3, bytes: 3 * H + 8 });
    spool.remove(oldest.id);
    assert.deepEqual(spool.stats, { batches: 2, bytes: 2 * H + 5 });
    spool.remove(oldest.id); // again: no longer spooled
    spool.remove(999); // never spooled
    assert.deepEqual(spool.stats, { batches: 2, bytes: 2 * H + 5 });
    drain(spool);
    assert.deepEqual(spool.stats, { batches: 0, bytes: 0 });
  });
});

Deno.test("Spool reopened on the same directory sees the same batches and continues numbering", () => {
  inTempDir((dir) => {
    const before = Spool.open(dir, { maxBytes: 1024 });
    for (const text of ["a\n", "bb\n", "ccc\n"]) before.append(bytes(text));
    before.remove(before.peek()!.id);

    const after = Spool.open(dir, { maxBytes: 1024 });
    assert.deepEqual(after.stats, { batches: 2, bytes: 2 * H + 7 });
    assert.equal(decoder.decode(after.peek()!.body), "bb\n");
    after.append(bytes("dddd\n"));
    assert.deepEqual(names(dir), ["000000000002.lp", "000000000003.lp", "000000000004.lp"]);
    assert.deepEqual(drain(after), ["bb\n", "ccc\n", "dddd\n"]);

    // Emptied: numbering still goes on, so a batch never reuses a name within one run.
    after.append(bytes("e\n"));
    assert.deepEqual(names(dir), ["000000000005.lp"]);
  });
});

Deno.test("Spool drops its oldest batches to stay within maxBytes and counts them", () => {
  inTempDir((dir) => {
    const spool = Spool.open(dir, { maxBytes: 3 * H + 10 });
    assert.deepEqual(spool.append(bytes("1111")), NO_DROPS);
    assert.deepEqual(spool.append(bytes("222")), NO_DROPS);
    assert.deepEqual(spool.append(bytes("333")), NO_DROPS, "exactly maxBytes fits");
    assert.deepEqual(spool.stats, { batches: 3, bytes: 3 * H + 10 });

    assert.deepEqual(spool.append(bytes("44")), { droppedBatches: 1, droppedBytes: H + 4 });
    assert.deepEqual(spool.stats, { batches: 3, bytes: 3 * H + 8 });
    assert.deepEqual(spool.append(bytes(`55555555${"5".repeat(H)}`)), {
      droppedBatches: 2,
      droppedBytes: 2 * H + 6,
    });
    assert.deepEqual(spool.stats, { batches: 2, bytes: 3 * H + 10 });
    assert.deepEqual(names(dir), ["000000000004.lp", "000000000005.lp"]);
    assert.deepEqual(drain(spool), ["44", `55555555${"5".repeat(H)}`]);
  });
});

Deno.test("Spool reopened with a lower maxBytes trims on the next append and reports it", () => {
  inTempDir((dir) => {
    const big = Spool.open(dir, { maxBytes: 1000 });
    for (const text of ["aaaa", "bbbb", "cccc"]) big.append(bytes(text));
    const small = Spool.open(dir, { maxBytes: 2 * H + 6 });
    assert.deepEqual(small.stats, { batches: 3, bytes: 3 * H + 12 });
    assert.deepEqual(small.append(bytes("dd")), { droppedBatches: 2, droppedBytes: 2 * H + 8 });
    assert.deepEqual(small.stats, { batches: 2, bytes: 2 * H + 6 });
    assert.deepEqual(drain(small), ["cccc", "dd"]);
  });
});

Deno.test("Spool refuses a batch larger than maxBytes alone and keeps the others", () => {
  inTempDir((dir) => {
    const spool = Spool.open(dir, { maxBytes: H + 10 });
    spool.append(bytes("abc"));
    assert.deepEqual(spool.append(new Uint8Array(11)), {
      droppedBatches: 1,
      droppedBytes: H + 11,
    });
    assert.deepEqual(spool.stats, { batches: 1, bytes: H + 3 });
    assert.deepEqual(names(dir), ["000000000001.lp"]);
    assert.deepEqual(drain(spool), ["abc"]);
  });
});

Deno.test("Spool.open deletes leftover .tmp batches and keeps unrelated files", () => {
  inTempDir((dir) => {
    Deno.writeTextFileSync(join(dir, "000000000010.lp"), "ten\n");
    Deno.writeTextFileSync(join(dir, "000000000002.lp"), "two\n");
    Deno.writeTextFileSync(join(dir, "000000000011.lp.tmp"), "half a ba");
    Deno.writeTextFileSync(join(dir, "notes.txt"), "mine");
    Deno.writeTextFileSync(join(dir, "editor.tmp"), "mine too");
    Deno.writeTextFileSync(join(dir, "42.lp"), "not padded: not ours");
    Deno.mkdirSync(join(dir, "000000000099.lp"));

    const spool = Spool.open(dir, { maxBytes: 1024 });
    assert.deepEqual(spool.stats, { batches: 2, bytes: 8 }, "spooled before headers: as they are");
    assert.deepEqual(names(dir), [
      "000000000002.lp",
      "000000000010.lp",
      "000000000099.lp",
      "42.lp",
      "editor.tmp",
      "notes.txt",
    ]);
    spool.append(bytes("eleven\n"));
    assert.ok(names(dir).includes("000000000011.lp"));
    assert.deepEqual(drain(spool), ["two\n", "ten\n", "eleven\n"]);
    assert.deepEqual(names(dir), ["000000000099.lp", "42.lp", "editor.tmp", "notes.txt"]);
  });
});

Deno.test("Spool.remove of a batch dropped while it was being sent is a no-op", () => {
  inTempDir((dir) => {
    const spool = Spool.open(dir, { maxBytes: 2 * H + 8 });
    spool.append(bytes("aaaa"));
    spool.append(bytes("bbbb"));
    const sending = spool.peek()!;
    assert.deepEqual(spool.append(bytes("cccc")), { droppedBatches: 1, droppedBytes: H + 4 });
    spool.remove(sending.id);
    assert.deepEqual(spool.stats, { batches: 2, bytes: 2 * H + 8 });
    assert.deepEqual(drain(spool), ["bbbb", "cccc"]);
  });
});

Deno.test("Spool.peek skips a batch whose file was deleted by hand", () => {
  inTempDir((dir) => {
    const spool = Spool.open(dir, { maxBytes: 1024 });
    spool.append(bytes("gone"));
    spool.append(bytes("here"));
    Deno.removeSync(join(dir, "000000000001.lp"));
    assert.equal(decoder.decode(spool.peek()!.body), "here");
    assert.deepEqual(spool.stats, { batches: 1, bytes: H + 4 });
  });
});

Deno.test("Spool.open throws an error naming the directory it cannot create", () => {
  inTempDir((dir) => {
    Deno.writeTextFileSync(join(dir, "file"), "");
    const bad = join(dir, "file", "spool");
    assert.throws(() => Spool.open(bad, { maxBytes: 1024 }), (e: Error) => {
      assert.match(e.message, /cannot create the directory/);
      assert.ok(e.message.includes(bad), e.message);
      return true;
    });
  });
});

Deno.test("Spool.open rejects a maxBytes that is not a positive integer", () => {
  inTempDir((dir) => {
    for (const maxBytes of [0, -1, 1.5, NaN, Infinity]) {
      assert.throws(() => Spool.open(dir, { maxBytes }), RangeError, String(maxBytes));
    }
  });
});

Deno.test("Spool keeps 10,000 small batches in order through append and drain", () => {
  // On tmpfs where there is one: its fsyncs cost nothing (two per append, ~1 ms on a disk).
  inTempDir((dir) => {
    const n = 10_000;
    const spool = Spool.open(dir, { maxBytes: 1024 * 1024 });
    let total = 0;
    for (let i = 0; i < n; i++) {
      const body = bytes(`m,i=${i} v=${i}i\n`);
      total += H + body.length;
      assert.deepEqual(spool.append(body), NO_DROPS);
    }
    assert.deepEqual(spool.stats, { batches: n, bytes: total });
    let i = 0;
    for (let b = spool.peek(); b; b = spool.peek(), i++) {
      const text = decoder.decode(b.body);
      if (text !== `m,i=${i} v=${i}i\n`) {
        assert.fail(`batch ${i} came back as ${JSON.stringify(text)}`);
      }
      spool.remove(b.id);
    }
    assert.equal(i, n);
    assert.deepEqual(spool.stats, { batches: 0, bytes: 0 });
    assert.deepEqual(names(dir), []);
  }, "/dev/shm");
});

Deno.test("Spool.peek skips and deletes an empty, cut or damaged batch, reporting each, and goes on", () => {
  inTempDir((dir) => {
    const bad: string[] = [];
    const spool = Spool.open(dir, {
      maxBytes: 1024,
      onBadBatch: (file, why) => bad.push(`${file}: ${why}`),
    });
    for (const text of ["empty\n", "cut\n", "cut header\n", "flipped\n", "whole\n"]) {
      spool.append(bytes(text));
    }
    const file = (id: number) => join(dir, `00000000000${id}.lp`);
    Deno.writeFileSync(file(1), new Uint8Array(0)); // a power loss before the data was written
    Deno.truncateSync(file(2), H + 2);
    Deno.truncateSync(file(3), 20);
    const flipped = Deno.readFileSync(file(4));
    flipped[H + 1] ^= 1;
    Deno.writeFileSync(file(4), flipped);

    assert.deepEqual(drain(spool), ["whole\n"]);
    assert.deepEqual(bad, [
      "000000000001.lp: empty",
      "000000000002.lp: cut short (2 of 4 bytes)",
      "000000000003.lp: cut short in its header (20 bytes)",
      "000000000004.lp: damaged (its checksum does not match)",
    ]);
    assert.deepEqual(names(dir), [], "the bad ones are deleted");
    assert.deepEqual(spool.stats, { batches: 0, bytes: 0 });
  });
});

serverTest(
  "strace",
  "strace",
  "Spool.append syncs the batch before its rename and the directory after it",
  async () => {
    // A child process under strace appends one batch; the system calls show the order.
    const dir = Deno.makeTempDirSync({ prefix: "spool_test_" });
    const trace = `${dir}/trace`;
    try {
      const script = `import { Spool } from ${JSON.stringify(import.meta.resolve("./spool.ts"))};
Spool.open(${JSON.stringify(`${dir}/spool`)}, { maxBytes: 1 << 20 }).append(new Uint8Array([97]));`;
      const run = await new Deno.Command("strace", {
        args: [
          "-f",
          "-qq",
          "-o",
          trace,
          "-e",
          "trace=openat,fsync,fdatasync,rename,renameat,renameat2",
        ]
          .concat([Deno.execPath(), "eval", script]),
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
      const kinds = Deno.readTextFileSync(trace).split("\n").map((l) => l.replace(/^\d+\s+/, ""))
        .map((l) =>
          l.startsWith("openat") && l.includes(`${dir}/spool/000000000001.lp.tmp`)
            ? "write"
            : l.startsWith("rename") && l.includes(`${dir}/spool/`)
            ? "rename"
            : /^f(data)?sync\(/.test(l)
            ? l.slice(0, l.indexOf("("))
            : undefined
        );
      const ours = kinds.slice(kinds.indexOf("write")).filter(Boolean);
      assert.deepEqual(ours, ["write", "fdatasync", "rename", "fsync"]);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
);

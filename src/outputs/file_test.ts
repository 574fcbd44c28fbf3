import assert from "node:assert/strict";
import { fileURLToPath as fromFileUrl } from "node:url";
import { encodeJson, encodeLineProtocol } from "../encode/mod.ts";
import { UserError } from "../errors.ts";
import { buildStage, configureStage } from "../pipeline/testing.ts";
import type { Record } from "../record.ts";
import { fileOutput } from "./file.ts";

const START = 1_764_000_000_000_000_000n; // buildStage's clock
const LABELS = { stage: "file" };

function records(n: number): Record[] {
  return Array.from({ length: n }, (_, i) => ({
    measurement: "bash",
    tags: { host: "h1", source: "bash" },
    fields: { cmd: `echo ${i} é 🙂`, n: BigInt(i), ratio: i / 4, ok: i % 2 === 0 },
    time: START + BigInt(i),
  }));
}

const lines = (text: string) => text.split("\n").slice(0, -1);

/** A temp directory removed after `fn`. */
async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "file_output_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("file() writes JSON lines once each and in order", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/out.jsonl`;
    // A small buffer makes several writes, some while another is in flight.
    const { stage, counters } = await buildStage(fileOutput, { path, buffer: "512B" });
    const input = records(500);
    for (const r of input) await stage.push(r);
    await stage.close();
    assert.deepEqual(lines(await Deno.readTextFile(path)), input.map(encodeJson));
    assert.equal(counters.get("records_written", LABELS), 500n);
    assert.equal(counters.get("output_errors", LABELS), 0n);
  });
});

Deno.test("file() writes line protocol lines once each and in order", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/out.lp`;
    const { stage } = await buildStage(fileOutput, { path, format: "line_protocol" });
    const input = records(20);
    for (const r of input) await stage.push(r);
    await stage.close();
    assert.deepEqual(lines(await Deno.readTextFile(path)), input.map((r) => encodeLineProtocol(r)));
  });
});

Deno.test("file() counts the line protocol fields it cannot write, by reason", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/out.lp`;
    const { stage, counters } = await buildStage(fileOutput, { path, format: "line_protocol" });
    const [r] = records(1);
    await stage.push({ ...r, fields: { n: 1n, huge: 2n ** 64n, tiny: -(2n ** 63n) - 1n } });
    await stage.push({ ...r, fields: { n: 2n, ratio: NaN } });
    await stage.close();
    assert.deepEqual(lines(await Deno.readTextFile(path)).map((l) => l.split(" ")[1]), [
      "n=1i",
      "n=2i",
    ]);
    const dropped = (reason: string) => counters.get("fields_dropped", { ...LABELS, reason });
    assert.equal(dropped("integer_out_of_range"), 2n);
    assert.equal(dropped("float_not_finite"), 1n);
  });
});

Deno.test("file() appends by default and truncates with append: false", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/out.jsonl`;
    await Deno.writeTextFile(path, "old\n");
    const [a, b] = records(2);

    const appending = await buildStage(fileOutput, { path });
    appending.stage.push(a);
    await appending.stage.close();
    assert.equal(await Deno.readTextFile(path), `old\n${encodeJson(a)}\n`);

    const truncating = await buildStage(fileOutput, { path, append: false });
    assert.equal(await Deno.readTextFile(path), "", "empty as soon as the stage starts");
    truncating.stage.push(b);
    await truncating.stage.close();
    assert.equal(await Deno.readTextFile(path), `${encodeJson(b)}\n`);
  });
});

Deno.test("file() has records on disk after flush", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/out.jsonl`;
    const { stage, counters } = await buildStage(fileOutput, { path });
    const input = records(3);
    for (const r of input) assert.equal(stage.push(r), undefined, "a small buffer: no promise");
    assert.equal(await Deno.readTextFile(path), "", "still buffered");
    await stage.flush("shutdown");
    assert.deepEqual(lines(await Deno.readTextFile(path)), input.map(encodeJson));
    assert.equal(counters.get("records_written", LABELS), 3n);
    await stage.close();
  });
});

Deno.test("file() writes buffered records at every flush_every tick", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/out.jsonl`;
    const { stage, clock } = await buildStage(fileOutput, { path, flush_every: "1s" });
    const [a] = records(1);
    stage.push(a);
    clock.advance(START + 1_000_000_000n);
    let text = "";
    for (let i = 0; i < 200 && text === ""; i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      text = await Deno.readTextFile(path);
    }
    assert.equal(text, `${encodeJson(a)}\n`);
    await stage.close();
  });
});

Deno.test("file() pushes back only when the buffer is full and a write is in flight", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/out.jsonl`;
    const { stage } = await buildStage(fileOutput, { path, buffer: "1B" });
    const [a, b, c] = records(3);
    assert.equal(stage.push(a), undefined, "the first full buffer starts a write");
    const pending = stage.push(b);
    assert.ok(pending instanceof Promise, "a second full buffer waits for the first write");
    await pending;
    assert.equal(stage.push(c) instanceof Promise, true, "b's write is in flight now");
    await stage.close();
    assert.deepEqual(lines(await Deno.readTextFile(path)), [a, b, c].map(encodeJson));
  });
});

Deno.test("file() counts a record line protocol cannot express and goes on", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/out.lp`;
    const { stage, counters, logs } = await buildStage(fileOutput, {
      path,
      format: "line_protocol",
    });
    const [a] = records(1);
    const empty: Record = { ...a, fields: {} };
    stage.push(empty);
    stage.push(empty);
    stage.push(a);
    await stage.close();
    assert.equal(await Deno.readTextFile(path), `${encodeLineProtocol(a)}\n`);
    assert.equal(counters.get("encode_errors", LABELS), 2n);
    assert.equal(logs.length, 1);
  });
});

Deno.test("file() refuses a path in a missing directory, naming it, and creates nothing", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/missing/out.jsonl`;
    await assert.rejects(
      () => buildStage(fileOutput, { path }),
      (e: unknown) => {
        assert.ok(e instanceof UserError);
        assert.equal(
          e.message,
          `cannot open ${path} for writing: directory ${dir}/missing does not exist ` +
            "(create it first: the file output does not create directories)",
        );
        return true;
      },
    );
    await assert.rejects(() => Deno.stat(`${dir}/missing`), Deno.errors.NotFound);
  });
});

Deno.test("file() counts and logs a failed write and keeps going", async () => {
  // /dev/full (Linux) fails every write with ENOSPC.
  const { stage, counters, logs } = await buildStage(fileOutput, { path: "/dev/full" });
  const [a, b] = records(2);
  stage.push(a);
  await stage.flush("shutdown");
  stage.push(b);
  await stage.close();
  assert.equal(counters.get("output_errors", LABELS), 2n);
  assert.equal(counters.get("records_written", LABELS), 0n);
  assert.equal(logs.length, 2);
  assert.match(logs[0], /^warning: file: cannot write 1 records to \/dev\/full: /);
});

Deno.test("file() example validates and explains itself", () => {
  const { config, errors } = configureStage(fileOutput, fileOutput.example);
  assert.deepEqual(errors, []);
  // deno-lint-ignore no-explicit-any
  assert.deepEqual(fileOutput.explain!(config as any), {
    details: ["writes json lines to /var/log/collector/bash.jsonl (append)"],
    writes: ["/var/log/collector/bash.jsonl"],
  });
});

Deno.test("file() rejects an unknown format and a sub-millisecond flush_every", () => {
  const { errors } = configureStage(fileOutput, { path: "x", format: "jsn" });
  assert.deepEqual(errors.map((e) => e.reason), [
    'expected one of json, line_protocol, got "jsn" (did you mean "json"?)',
  ]);
  const sub = configureStage(fileOutput, { path: "x", flush_every: "1.0005s" });
  assert.deepEqual(sub.errors.map((e) => [e.path, e.reason]), [
    ["test.file.flush_every", 'expected whole milliseconds, got "1.0005s"'],
  ]);
});

const byteLength = (text: string) => new TextEncoder().encode(text).length;

/**
 * The oracle for rotation: the files that `lines` fill when each file takes lines until the
 * next would pass `max` bytes (an empty one takes any line); `existing` bytes are there first.
 */
function pack(lines: string[], max: number, existing = 0): string[] {
  const files = [""];
  let size = existing;
  for (const line of lines) {
    const n = byteLength(line) + 1;
    if (size > 0 && size + n > max) [files[files.length], size] = ["", 0];
    files[files.length - 1] += `${line}\n`;
    size += n;
  }
  return files;
}

/** The names in `dir`, sorted. */
async function namesIn(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir), (e) => e.name)).sort();
}

for (const buffer of ["300B", "64KiB"]) {
  // 300B: many writes, some while another is in flight; 64KiB: one buffer split over files.
  Deno.test(`file() rotates between lines at max_size and keeps the newest (buffer ${buffer})`, async () => {
    await inTempDir(async (dir) => {
      const path = `${dir}/out.jsonl`;
      const { stage, counters } = await buildStage(fileOutput, {
        path,
        buffer,
        max_size: "1KiB",
        keep: 3,
      });
      const input = records(200).map(encodeJson);
      for (const r of records(200)) await stage.push(r);
      await stage.close();

      const expected = pack(input, 1024);
      assert.ok(expected.length > 10, "enough records for many rotations");
      assert.deepEqual(await namesIn(dir), [
        "out.jsonl",
        "out.jsonl.1",
        "out.jsonl.2",
        "out.jsonl.3",
      ]);
      const onDisk = await Promise.all(
        [`${path}.3`, `${path}.2`, `${path}.1`, path].map((p) => Deno.readTextFile(p)),
      );
      for (const text of onDisk) assert.ok(byteLength(text) <= 1024, `${byteLength(text)} bytes`);
      // Nothing lost or repeated across a rotation: oldest to newest is the input's tail, and
      // only whole files at its start went (each full: its next line would not have fitted).
      const kept = lines(onDisk.join(""));
      assert.deepEqual(kept, input.slice(input.length - kept.length));
      assert.deepEqual(onDisk, expected.slice(-4));
      assert.equal(counters.get("files_rotated", LABELS), BigInt(expected.length - 1));
      assert.equal(counters.get("records_written", LABELS), 200n);
      assert.equal(counters.get("output_errors", LABELS), 0n);
    });
  });
}

Deno.test("file() puts a line longer than max_size alone in a file", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/out.jsonl`;
    const [a, b, c] = records(3);
    const big: Record = { ...a, fields: { cmd: "x".repeat(1000) } };
    assert.ok(byteLength(encodeJson(a) + encodeJson(b)) + 2 < 512, "a and b share a file");
    const { stage, counters } = await buildStage(fileOutput, { path, max_size: "512B", keep: 3 });
    for (const r of [a, b, big, c]) stage.push(r);
    await stage.close();
    assert.equal(await Deno.readTextFile(`${path}.2`), `${encodeJson(a)}\n${encodeJson(b)}\n`);
    assert.equal(await Deno.readTextFile(`${path}.1`), `${encodeJson(big)}\n`);
    assert.equal(await Deno.readTextFile(path), `${encodeJson(c)}\n`);
    assert.equal(counters.get("files_rotated", LABELS), 2n);
  });
});

Deno.test("file() writes a long first line into the empty file without rotating", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/out.jsonl`;
    const [a] = records(1);
    const big: Record = { ...a, fields: { cmd: "x".repeat(1000) } };
    const { stage, counters } = await buildStage(fileOutput, { path, max_size: "512B" });
    stage.push(big);
    stage.push(a);
    await stage.close();
    assert.deepEqual(await namesIn(dir), ["out.jsonl", "out.jsonl.1"]);
    assert.equal(await Deno.readTextFile(`${path}.1`), `${encodeJson(big)}\n`);
    assert.equal(await Deno.readTextFile(path), `${encodeJson(a)}\n`);
    assert.equal(counters.get("files_rotated", LABELS), 1n);
  });
});

Deno.test("file() counts an appended file's size and fills it to exactly max_size", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/out.jsonl`;
    const [a, b] = records(2);
    const old = `${"o".repeat(1024 - byteLength(encodeJson(a)) - 2)}\n`;
    await Deno.writeTextFile(path, old);
    const { stage, counters } = await buildStage(fileOutput, { path, max_size: "1KiB" });
    stage.push(a);
    await stage.flush("shutdown");
    assert.equal(counters.get("files_rotated", LABELS), 0n, "a fits exactly");
    assert.equal(byteLength(await Deno.readTextFile(path)), 1024);
    stage.push(b);
    await stage.close();
    assert.equal(await Deno.readTextFile(`${path}.1`), `${old}${encodeJson(a)}\n`);
    assert.equal(await Deno.readTextFile(path), `${encodeJson(b)}\n`);
    assert.equal(counters.get("files_rotated", LABELS), 1n);
  });
});

Deno.test("file() writes on past max_size, warning once per outage, while it cannot rotate", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/out.jsonl`;
    // A directory where path.1 goes: renaming the file onto it fails.
    await Deno.mkdir(`${path}.1`);
    await Deno.writeTextFile(`${path}.1/blocker`, "");
    const input = records(6);
    const { stage, counters, logs } = await buildStage(fileOutput, {
      path,
      max_size: "256B",
      keep: 1,
    });
    for (const r of input.slice(0, 3)) {
      stage.push(r);
      await stage.flush("shutdown");
    }
    assert.deepEqual(lines(await Deno.readTextFile(path)), input.slice(0, 3).map(encodeJson));
    assert.equal(counters.get("files_rotated", LABELS), 0n);
    assert.equal(logs.length, 1);
    assert.match(logs[0], /^warning: file: cannot rotate .*out\.jsonl: .*writing on past max_size/);

    await Deno.remove(`${path}.1`, { recursive: true });
    stage.push(input[3]);
    await stage.flush("shutdown");
    assert.deepEqual(
      lines(await Deno.readTextFile(`${path}.1`)),
      input.slice(0, 3).map(encodeJson),
    );
    assert.deepEqual(lines(await Deno.readTextFile(path)), [encodeJson(input[3])]);
    assert.equal(counters.get("files_rotated", LABELS), 1n);
    assert.equal(counters.get("records_written", LABELS), 4n);

    // Blocked again after a rotation succeeded: a new warning.
    await Deno.remove(`${path}.1`);
    await Deno.mkdir(`${path}.1`);
    await Deno.writeTextFile(`${path}.1/blocker`, "");
    for (const r of input.slice(4)) {
      stage.push(r);
      await stage.flush("shutdown");
    }
    assert.equal(logs.length, 2);
    assert.deepEqual(lines(await Deno.readTextFile(path)), input.slice(3).map(encodeJson));
    await stage.close();
  });
});

Deno.test("file() explains rotation and the paths it renames", () => {
  const path = "/var/log/collector/bash.jsonl";
  const { config, errors } = configureStage(fileOutput, { path, max_size: "100MiB", keep: 3 });
  assert.deepEqual(errors, []);
  // deno-lint-ignore no-explicit-any
  assert.deepEqual(fileOutput.explain!(config as any), {
    details: [
      `writes json lines to ${path} (append)`,
      `rotates before 100MiB into ${path}.1 to ${path}.3, deleting older ones`,
    ],
    reads: [path, `${path}.1`, `${path}.2`],
    writes: [path, `${path}.1`, `${path}.2`, `${path}.3`],
  });
});

Deno.test("file() rotates with only the permissions explain asks for", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/out.jsonl`;
    const options = { path, max_size: "256B", keep: 2 };
    const { config } = configureStage(fileOutput, options);
    // deno-lint-ignore no-explicit-any
    const { reads = [], writes = [] } = fileOutput.explain!(config as any);
    const script = `${dir}/child.ts`;
    await Deno.writeTextFile(
      script,
      `import { buildStage } from ${JSON.stringify(import.meta.resolve("../pipeline/testing.ts"))};
import { fileOutput } from ${JSON.stringify(import.meta.resolve("./file.ts"))};
const { stage, counters, logs } = await buildStage(fileOutput, ${JSON.stringify(options)});
for (let i = 0; i < 20; i++) stage.push({ measurement: "m", tags: {}, fields: { i }, time: 1n });
await stage.close();
console.log(JSON.stringify({ rotated: String(counters.get("files_rotated", { stage: "file" })), logs }));
`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        // The script sits in the temp dir; the project's config maps "yaml" for testing.ts.
        `--config=${fromFileUrl(import.meta.resolve("../../deno.json"))}`,
        "--allow-env=LOG_TOKENS,LOG_STREAM", // the yaml package's switches; always granted
        `--allow-read=${reads.join(",")}`,
        `--allow-write=${writes.join(",")}`,
        script,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const result = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.deepEqual(result.logs, []);
    assert.ok(Number(result.rotated) >= 3, `rotated ${result.rotated} times`);
    assert.deepEqual(await namesIn(dir), ["child.ts", "out.jsonl", "out.jsonl.1", "out.jsonl.2"]);
  });
});

Deno.test("file() rejects a zero max_size and a keep below 1", () => {
  const zero = configureStage(fileOutput, { path: "x", max_size: "0B" });
  assert.deepEqual(zero.errors.map((e) => [e.path, e.reason]), [
    ["test.file.max_size", "expected a size of at least 1B, got 0"],
  ]);
  const none = configureStage(fileOutput, { path: "x", max_size: "1KiB", keep: 0 });
  assert.deepEqual(none.errors.map((e) => [e.path, e.reason]), [
    ["test.file.keep", "expected an integer from 1 to 100, got 0"],
  ]);
});

import assert from "node:assert/strict";
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

import assert from "node:assert/strict";
import { buildStage, configureStage } from "../pipeline/testing.ts";
import type { Record } from "../record.ts";
import { type TagsConfig, tagsTransform } from "./tags.ts";

function record(tags: { [key: string]: string } = {}): Record {
  return {
    measurement: "bash",
    tags: { host: "web-1", source: "bash", ...tags },
    fields: { cmd: "ls", message: "m", pid: "4242", user: "root" },
    time: 1_764_085_464_123_456_789n,
  };
}

Deno.test("tags renames, then adds, then drops", async () => {
  const { stage, emitted } = await buildStage(tagsTransform, {
    rename: { dc: "datacenter", rack: "position" },
    add: { env: "prod", position: "fixed" },
    drop: ["pid_ns"],
  });
  await stage.push(record({ dc: "eu-1", rack: "r7", pid_ns: "4026531836", keep: "yes" }));
  assert.deepEqual(emitted[0].tags, {
    host: "web-1",
    source: "bash",
    keep: "yes",
    datacenter: "eu-1",
    position: "fixed", // add comes after rename, so it wins
    env: "prod",
  });
});

Deno.test("tags emits a copy and never mutates the incoming record", async () => {
  const { stage, emitted } = await buildStage(tagsTransform, {
    rename: { a: "b" },
    add: { env: "prod" },
    drop: ["c"],
  });
  const input = record({ a: "1", c: "3" });
  const before = structuredClone(input);
  await stage.push(input);
  await stage.push(input); // a second branch seeing the same record gets the same answer
  assert.deepEqual(input, before);
  assert.notEqual(emitted[0], input);
  assert.notEqual(emitted[0].tags, input.tags);
  assert.equal(emitted[0].fields, input.fields, "fields are shared, not copied");
  assert.deepEqual(emitted[0], emitted[1]);
  assert.deepEqual(emitted[0].tags, { host: "web-1", source: "bash", b: "1", env: "prod" });
});

Deno.test("tags renames read the incoming tags, so renames swap rather than chain", async () => {
  const { stage, emitted } = await buildStage(tagsTransform, { rename: { a: "b", b: "a" } });
  await stage.push(record({ a: "1", b: "2" }));
  assert.deepEqual(emitted[0].tags, { host: "web-1", source: "bash", b: "1", a: "2" });
});

Deno.test("tags: a renamed value replaces an existing tag; a missing tag is not created", async () => {
  const { stage, emitted } = await buildStage(tagsTransform, { rename: { a: "b", x: "y" } });
  await stage.push(record({ a: "new", b: "old" }));
  assert.deepEqual(emitted[0].tags, { host: "web-1", source: "bash", b: "new" });
});

Deno.test("tags add overwrites a tag, host included, and reads numbers as text", async () => {
  const { stage, emitted } = await buildStage(tagsTransform, { add: { host: "stable", rack: 7 } });
  await stage.push(record());
  assert.deepEqual(emitted[0].tags, { host: "stable", source: "bash", rack: "7" });
});

Deno.test("tags rejects empty values, doubled renames and self-defeating combinations", () => {
  const { errors } = configureStage(tagsTransform, {
    rename: { a: "x", b: "x", c: "c", host: "hostname", d: "gone" },
    add: { env: "", team: "infra" },
    drop: ["source", "team", "gone"],
  });
  assert.deepEqual(errors.map((e) => `${e.path}: ${e.reason}`), [
    "test.tags.add.env: a tag value cannot be empty (line protocol has no empty tags); use drop " +
    "to remove it",
    `test.tags.rename.b: "a" and "b" are both renamed to "x"`,
    `test.tags.rename.c: renames "c" to itself`,
    `test.tags.rename.host: every record carries "host" (src/record.ts); it cannot be renamed`,
    `test.tags.drop[0]: every record carries "source" (src/record.ts); it cannot be dropped`,
    `test.tags.drop[1]: "team" is added and then dropped; remove one of the two`,
    `test.tags.drop[2]: "gone" is renamed from "d" and then dropped; drop "d" instead`,
  ]);
  for (const e of errors) assert.ok(e.line > 0 && e.column > 0, e.message);
});

Deno.test("tags needs something to do and checks value types", () => {
  assert.deepEqual(configureStage(tagsTransform, {}).errors.map((e) => e.reason), [
    "does nothing: give add, rename or drop",
  ]);
  const bad = configureStage(tagsTransform, { add: { env: ["a"] }, rename: "x" });
  assert.deepEqual(bad.errors.map((e) => `${e.path}: ${e.reason}`), [
    `test.tags.rename: expected a mapping of names to values, got "x"`,
    "test.tags.add.env: expected a string, number or boolean, got a list",
  ]);
});

Deno.test("tags explains renames, added names and drops, never added values", () => {
  const { config } = configureStage(tagsTransform, {
    rename: { dc: "datacenter" },
    add: { env: "prod", team: "infra" },
    drop: ["pid_ns", "tty"],
  });
  assert.deepEqual(tagsTransform.explain?.(config as TagsConfig).details, [
    "rename dc → datacenter",
    "add env, team",
    "drop pid_ns, tty",
  ]);
});

import assert from "node:assert/strict";
import type { ConfigError } from "../errors.ts";
import { At } from "../pipeline/schema.ts";
import { buildStage, configureStage } from "../pipeline/testing.ts";
import { YamlSource } from "../pipeline/yaml_source.ts";
import type { FieldValue, Record } from "../record.ts";
import { type FilterConfig, filterTransform } from "./filter.ts";

function bash(fields: { [key: string]: FieldValue } = {}): Record {
  return {
    measurement: "bash",
    tags: { host: "web-1", source: "bash" },
    fields: { cmd: "ls -la", message: "m", pid: "4242", user: "root", ...fields },
    time: 1_764_085_464_123_456_789n,
  };
}

const filtered = { stage: "filter" };

Deno.test("filter drops matching records and counts them as records_filtered", async () => {
  const { stage, emitted, counters } = await buildStage(filterTransform, {
    drop: { field: "cmd", prefix: "ls" },
  });
  const keep = bash({ cmd: "sudo reboot" });
  for (const r of [bash(), keep, bash({ cmd: "ls" })]) await stage.push(r);
  assert.deepEqual(emitted, [keep]);
  assert.equal(emitted[0], keep, "passes the record itself on, unchanged");
  assert.equal(counters.get("records_filtered", filtered), 2n);
});

Deno.test("filter keep passes only matching records", async () => {
  const { stage, emitted, counters } = await buildStage(filterTransform, {
    keep: { all: [{ field: "user", equals: "root" }, { field: "pid", gt: 1000 }] },
  });
  await stage.push(bash());
  await stage.push(bash({ user: "alice" }));
  await stage.push(bash({ pid: "12" }));
  assert.deepEqual(emitted.map((r) => r.fields.pid), ["4242"]);
  assert.equal(counters.get("records_filtered", filtered), 2n);
  await stage.flush("shutdown");
  await stage.close();
});

Deno.test("filter needs exactly one of keep and drop", () => {
  const both = configureStage(filterTransform, {
    keep: { field: "cmd", exists: true },
    drop: { field: "cmd", prefix: "ls" },
  });
  assert.deepEqual(both.errors.map((e) => `${e.path}: ${e.reason}`), [
    `test.filter.drop: give "keep" or "drop", not both (keep passes only matching records, ` +
    `drop removes them)`,
  ]);
  assert.ok(both.errors[0].line > 0);
  const neither = configureStage(filterTransform, {});
  assert.deepEqual(neither.errors.map((e) => `${e.path}: ${e.reason}`), [
    `test.filter: needs "keep" or "drop": a condition such as drop: { field: cmd, prefix: "ls" }`,
  ]);
});

Deno.test("filter reports a bad condition at its exact sub-path", () => {
  const { errors } = configureStage(filterTransform, {
    keep: { all: [{ field: "cmd", prefix: "sudo" }, { field: "cmd", regex: "([a-z" }] },
  });
  assert.equal(errors.length, 1);
  assert.equal(errors[0].path, "test.filter.keep.all[1].regex");
  assert.match(
    errors[0].message,
    /^test\.yaml:\d+:\d+: test\.filter\.keep\.all\[1\]\.regex: invalid regex: /,
  );
  assert.ok(errors[0].line > 1 && errors[0].column > 1);
  const typo = configureStage(filterTransform, { drop: { field: "cmd", startswith: "ls" } });
  assert.match(typo.errors[0].reason, /unknown operator "startswith" \(did you mean "prefix"\?\)/);
  assert.equal(typo.errors[0].path, "test.filter.drop.startswith");
});

Deno.test("filter does not also say a key is missing when it was given but is invalid", () => {
  const errors: ConfigError[] = [];
  const { source } = YamlSource.parse("test.yaml", "keep: { field: cmd }");
  assert.ok(source);
  const at = new At(source, "", errors);
  const spec = filterTransform.schema.keep;
  assert.equal(spec.type, "custom");
  const keep = spec.type === "custom" ? spec.parse({ field: "cmd" }, at.child("keep")) : undefined;
  assert.equal(errors.length, 1);
  assert.deepEqual(filterTransform.validate?.({ keep } as FilterConfig, at), []);
});

Deno.test("filter explains its condition in one line", () => {
  const drop = configureStage(filterTransform, { drop: { field: "cmd", prefix: "ls" } });
  assert.deepEqual(filterTransform.explain?.(drop.config as FilterConfig).details, [
    `drop when field cmd prefix "ls"`,
    "dropped records are counted as records_filtered",
  ]);
  const keep = configureStage(filterTransform, { keep: { not: { tag: "host", in: ["ci"] } } });
  assert.deepEqual(
    filterTransform.explain?.(keep.config as FilterConfig).details?.[0],
    [
      `keep when not (tag host in ["ci"])`,
    ][0],
  );
});

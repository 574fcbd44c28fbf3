/**
 * One test over every registered transform: what the stage contract (src/pipeline/stage.ts)
 * asks of each. A new transform needs a sample record below, or this test fails.
 */
import assert from "node:assert/strict";
import { buildStage, configureStage } from "../pipeline/testing.ts";
import type { StageDef } from "../pipeline/stage.ts";
import type { Record } from "../record.ts";
import { TRANSFORMS } from "./mod.ts";

function bash(cmd: string): Record {
  return {
    measurement: "bash",
    tags: { host: "web-1", source: "bash" },
    fields: {
      cmd,
      message: `pid:\`4242\` user:\`root\` cmd:\`${cmd}\``,
      pid: "4242",
      user: "root",
    },
    time: 1_764_085_464_123_456_789n,
  };
}

/** A netflow record seen from the client side. */
const flow: Record = {
  measurement: "netflow",
  tags: {
    host: "web-1",
    source: "netflow",
    direction: "outgoing",
    src_port: "40000",
    dst_port: "443",
  },
  fields: { bytes_written: 100n },
  time: 1_764_085_464_123_456_789n,
};

// For each type, a record its example passes on.
const SAMPLES: { [type: string]: Record } = {
  container: bash("ls -la"),
  filter: bash("sudo systemctl restart nginx"),
  redact: bash("ls -la"),
  tags: bash("ls -la"),
  ephemeral_port: flow,
  dns_domain: flow,
  command_activity: { ...bash("ls -la"), fields: { ...bash("ls -la").fields, cmd_id: "4242-1" } },
};

/** Transforms that join their inputs into records of their own, out when complete (or flushed). */
const JOINS: { [type: string]: string } = { command_activity: "bash_activity" };

Deno.test("every registered transform has a sample record here", () => {
  for (const type of TRANSFORMS.keys()) assert.ok(SAMPLES[type], `add a sample record for ${type}`);
});

const cases: [StageDef, Record][] = [...TRANSFORMS.values()]
  .filter((def) => SAMPLES[def.type])
  .map((def) => [def, SAMPLES[def.type]]);

for (const [def, record] of cases) {
  Deno.test(`${def.type}: describes itself and documents every key in one line`, () => {
    assert.equal(def.kind, "transform");
    assert.match(def.type, /^[a-z][a-z0-9_]*$/);
    assert.match(def.describe, /^[A-Z][^\n]*\.$/);
    assert.ok(Object.keys(def.schema).length > 0);
    for (const [key, spec] of Object.entries(def.schema)) {
      assert.match(key, /^[a-z][a-z0-9_]*$/, key);
      assert.ok(spec.doc.length > 0 && !spec.doc.includes("\n"), `${key}: one-line doc`);
    }
  });

  Deno.test(`${def.type}: the example validates and explains itself`, () => {
    const { config, errors } = configureStage(def, def.example);
    assert.deepEqual(errors.map((e) => e.message), []);
    const details = def.explain?.(config).details ?? [];
    assert.ok(details.length > 0);
    for (const line of details) assert.ok(line.length > 0 && !line.includes("\n"), line);
  });

  Deno.test(`${def.type}: an unknown key is rejected at its position`, () => {
    const { errors } = configureStage(def, { ...def.example, filtr: 1 });
    const unknown = errors.find((e) => e.message.includes("unknown key"));
    assert.ok(unknown, errors.map((e) => e.message).join("\n"));
    assert.equal(unknown.path, `test.${def.type}.filtr`);
    assert.ok(unknown.line > 0 && unknown.column > 0, unknown.message);
    assert.match(unknown.message, /^test\.yaml:\d+:\d+: /);
  });

  Deno.test(`${def.type}: passes a record on without changing the input`, async () => {
    const { stage, emitted } = await buildStage(def, def.example);
    const before = structuredClone(record);
    await stage.push(record);
    const joins = JOINS[def.type];
    if (joins) await stage.flush("shutdown"); // what it holds goes out at shutdown
    assert.equal(emitted.length, 1);
    assert.deepEqual(record, before);
    assert.equal(emitted[0].measurement, joins ?? record.measurement);
    if (!joins) assert.equal(emitted[0].time, record.time);
    if (!joins) await stage.flush("shutdown");
    await stage.close();
  });
}

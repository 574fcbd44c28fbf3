/**
 * Reads a pipeline file's `tests:` section (its form: tests.ts, which runs them) into checked
 * {@linkcode PipelineTest}s, reporting every problem at its position. The loader calls it.
 */
import type { Record } from "../record.ts";
import { parseCondition } from "../transforms/condition/mod.ts";
import type { PartialRecord, PipelineTest, StageNode } from "./pipeline.ts";
import { type At, describeValue, isTable, suggestion, type Table } from "./schema.ts";

/** Where test records are stamped from when they give no time: 2026-01-01T00:00:00Z. */
export const T0 = BigInt(Date.UTC(2026, 0, 1)) * 1_000_000n;
const TEST_KEYS = ["name", "input", "expect"];
const INPUT_KEYS = ["stage", "records"];
const EXPECT_KEYS = ["stage", "records", "count", "all", "none"];
const RECORD_KEYS = ["measurement", "tags", "fields", "time"];

function unknownKeys(value: Table, known: string[], at: At): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      at.child(key).reportKey(
        `unknown key "${key}"${suggestion(key, known)}; known: ${known.join(", ")}`,
      );
    }
  }
}

/** Reads the `tests:` section; problems are reported through `at`. */
export function parseTests(value: unknown, at: At, stages: StageNode[]): PipelineTest[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    at.report(`expected a list of tests, got ${describeValue(value)}`);
    return [];
  }
  const byName = new Map(stages.map((s) => [s.name, s]));
  const tests: PipelineTest[] = [];
  value.forEach((t, i) => {
    const here = at.child(i);
    const before = here.reported;
    if (!isTable(t)) {
      return here.report(`expected a test: {name, input, expect}, got ${describeValue(t)}`);
    }
    unknownKeys(t, TEST_KEYS, here);
    const name = typeof t.name === "string" && t.name ? t.name : undefined;
    if (!name) here.child("name").report("needs a name: one line saying what the test shows");

    const stageAt = (v: unknown, where: At, what: string): string | undefined => {
      if (typeof v !== "string" || !v) {
        where.report(`needs the name of the stage ${what}`);
        return undefined;
      }
      const stage = byName.get(v);
      if (!stage) where.report(`no stage named "${v}"${suggestion(v, byName.keys())}`);
      else if (stage.kind === "output") {
        where.report(`"${v}" is an output: test the stage that feeds it`);
      } else return v;
      return undefined;
    };

    const input = t.input, expect = t.expect;
    let inputStage: string | undefined, records: Record[] = [];
    if (!isTable(input)) here.child("input").report("needs input: {stage, records}");
    else {
      unknownKeys(input, INPUT_KEYS, here.child("input"));
      inputStage = stageAt(input.stage, here.child("input").child("stage"), "the records go into");
      records = parseRecords(input.records, here.child("input").child("records"));
    }
    let expectStage = inputStage;
    const test: Partial<PipelineTest> = {};
    if (!isTable(expect)) {
      here.child("expect").report("needs expect: {records, count, all or none}");
    } else {
      const e = here.child("expect");
      unknownKeys(expect, EXPECT_KEYS, e);
      if (expect.stage !== undefined) {
        expectStage = stageAt(expect.stage, e.child("stage"), "to check");
      } else if (inputStage && byName.get(inputStage)?.kind === "probe") {
        // A probe passes injected records on unchanged: checking it would test nothing.
        e.reportKey(
          `needs stage: the stage to check (the input is probe "${inputStage}", which changes nothing)`,
        );
      }
      if (expect.records !== undefined) {
        test.expected = parseRecords(expect.records, e.child("records"), true);
      }
      if (expect.count !== undefined) {
        if (
          typeof expect.count !== "number" || !Number.isInteger(expect.count) || expect.count < 0
        ) {
          e.child("count").report(
            `expected a whole number of records, got ${describeValue(expect.count)}`,
          );
        } else test.count = expect.count;
      }
      for (const key of ["all", "none"] as const) {
        if (expect[key] !== undefined) test[key] = parseCondition(expect[key], e.child(key));
      }
      if (!["records", "count", "all", "none"].some((k) => k in expect)) {
        e.report("needs something to check: records, count, all or none");
      }
    }
    if (inputStage && expectStage && !downstreamOf(inputStage, byName).has(expectStage)) {
      here.child("expect").child("stage").report(
        `"${expectStage}" does not read (directly or not) from "${inputStage}": its records never get there`,
      );
    }
    if (here.reported === before) {
      tests.push(
        {
          ...test,
          name: name!,
          inputStage: inputStage!,
          records,
          expectStage: expectStage!,
        } as PipelineTest,
      );
    }
  });
  return tests;
}

/** `stage` and every stage that reads from it, directly or through others. */
export function downstreamOf(stage: string, byName: Map<string, StageNode>): Set<string> {
  const found = new Set([stage]);
  for (let grew = true; grew;) {
    grew = false;
    for (const s of byName.values()) {
      if (!found.has(s.name) && s.inputs.some((i) => found.has(i))) {
        found.add(s.name);
        grew = true;
      }
    }
  }
  return found;
}

function parseRecords(value: unknown, at: At, partial = false): Record[] {
  if (!Array.isArray(value)) {
    at.report(
      `expected a list of records, e.g. [{fields: {cmd: "ls"}}], got ${describeValue(value)}`,
    );
    return [];
  }
  return value.flatMap((r, i) => {
    const here = at.child(i);
    if (!isTable(r)) {
      here.report(`expected a record {measurement, tags, fields, time}, got ${describeValue(r)}`);
      return [];
    }
    unknownKeys(r, RECORD_KEYS, here);
    const out: PartialRecord = {};
    if (r.measurement !== undefined) {
      if (typeof r.measurement === "string" && r.measurement) out.measurement = r.measurement;
      else here.child("measurement").report(`expected a name, got ${describeValue(r.measurement)}`);
    }
    if (r.tags !== undefined) {
      if (isTable(r.tags) && Object.values(r.tags).every((v) => typeof v === "string")) {
        out.tags = r.tags as { [key: string]: string };
      } else here.child("tags").report(`expected tag names mapped to strings (quote numbers)`);
    }
    if (r.fields !== undefined) {
      if (!isTable(r.fields)) here.child("fields").report(`expected field names mapped to values`);
      else {
        out.fields = {};
        for (const [k, v] of Object.entries(r.fields)) {
          const where = here.child("fields").child(k);
          const typed = typeof v === "number" ? at.source.numberAt(where.path) : v;
          if (
            typeof typed === "string" || typeof typed === "boolean" || typeof typed === "bigint" ||
            typeof typed === "number"
          ) {
            out.fields[k] = typed;
          } else where.report(`expected a string, number or boolean, got ${describeValue(v)}`);
        }
      }
    }
    if (r.time !== undefined) {
      const t = typeof r.time === "number" ? at.source.numberAt(here.child("time").path) : r.time;
      if (typeof t === "bigint") out.time = t;
      else if (typeof t === "string" && !Number.isNaN(Date.parse(t))) {
        out.time = BigInt(Date.parse(t)) * 1_000_000n;
      } else {here.child("time").report(
          `expected integer nanoseconds or an RFC 3339 time, got ${describeValue(r.time)}`,
        );}
    }
    if (partial) return [out as Record];
    return [{
      measurement: out.measurement ?? "test",
      tags: out.tags ?? { host: "test-host", source: "test" },
      fields: out.fields ?? {},
      time: out.time ?? T0 + BigInt(i) * 1_000_000_000n,
    }];
  });
}

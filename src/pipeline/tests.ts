/**
 * Pipeline tests: a `tests:` section runs records through part of the pipeline and checks what
 * comes out, like Vector's unit tests. `deno task run --test` runs them; no kernel, no root.
 *
 * ```yaml
 * tests:
 *   - name: mysql passwords are masked
 *     input:
 *       stage: redact_secrets        # records go into this stage (a probe: as if it emitted them)
 *       records:
 *         - fields: { cmd: "mysql -u root -psecret" }
 *     expect:
 *       stage: redact_secrets        # records out of this stage (default: the input stage)
 *       records:                     # in order; only the keys written are compared
 *         - fields: { cmd: "mysql -u root -p***" }
 *       # count: 1                   # how many records come out
 *       # all: { field: cmd, contains: "***" }       # every record out meets it
 *       # none: { field: cmd, contains: "secret" }   # no record out meets it
 * ```
 *
 * Input records default to measurement `test`, tags `{host: test-host, source: test}` and
 * times one second apart from 2026-01-01T00:00:00Z; `time` may be integer ns or an RFC 3339
 * string. A number written without a point (`5`) is an integer field, with one (`5.0`) a
 * float. The clock follows record time; at the end every stage is flushed, so windows emit.
 */
import { Counters } from "../counters.ts";
import type { Logger } from "../log.ts";
import type { FieldValue, Record } from "../record.ts";
import { type Condition, parseCondition } from "../transforms/condition/mod.ts";
import { ManualClock } from "./clock.ts";
import type { Pipeline, StageNode } from "./load.ts";
import { injectAtRecordTime, startPipeline } from "./run.ts";
import { type At, describeValue, isTable, suggestion, type Table } from "./schema.ts";
import type { StageDef } from "./stage.ts";

/** One test, checked and ready to run. */
export interface PipelineTest {
  name: string;
  inputStage: string;
  records: Record[];
  expectStage: string;
  /** Partial records to match, in order; undefined when not given. */
  expected?: PartialRecord[];
  count?: number;
  all?: Condition;
  none?: Condition;
}

/** The parts of a record an expectation names. */
export interface PartialRecord {
  measurement?: string;
  tags?: { [key: string]: string };
  fields?: { [key: string]: FieldValue };
  time?: bigint;
}

const T0 = BigInt(Date.UTC(2026, 0, 1)) * 1_000_000n;
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
function downstreamOf(stage: string, byName: Map<string, StageNode>): Set<string> {
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

/** The result of one test. */
export interface TestResult {
  name: string;
  passed: boolean;
  /** Readable lines saying what differed (empty when passed). */
  diff: string[];
}

/** Runs one test on the part of the pipeline between its input and expect stages. */
export async function runTest(pipeline: Pipeline, test: PipelineTest): Promise<TestResult> {
  const byName = new Map(pipeline.stages.map((s) => [s.name, s]));
  const below = downstreamOf(test.inputStage, byName);
  const above = upstreamOf(test.expectStage, byName);
  const input = byName.get(test.inputStage)!;
  const feedName = input.kind === "probe" ? input.name : "(test input)";
  const feed: StageNode = input.kind === "probe" ? input : {
    ...input,
    name: feedName,
    section: "probes",
    kind: "probe",
    inputs: [],
    sideInputs: [],
    raw: {},
  };
  const got: Record[] = [];
  const sinkDef: StageDef = {
    type: "test_capture",
    kind: "output",
    describe: "Keeps what the stage under test emits.",
    schema: {},
    example: {},
    build: () => ({ push: (r) => void got.push(r), flush() {}, close() {} }),
  };
  // The stages between input and expect; the input stage reads the test's records.
  const part = pipeline.stages
    .filter((s) => below.has(s.name) && above.has(s.name) && s.kind !== "probe")
    .map((s) => ({
      ...s,
      inputs: s.name === test.inputStage
        ? [feedName]
        : s.inputs.filter((i) => below.has(i) && above.has(i)),
    }));
  const stages: StageNode[] = [
    feed,
    ...part,
    {
      ...feed,
      name: "(test capture)",
      section: "outputs",
      kind: "output",
      def: sinkDef,
      inputs: [test.expectStage],
      config: {},
    },
  ];
  const log: Logger = { info() {}, warn() {}, debug() {} };
  const clock = new ManualClock(test.records[0]?.time ?? T0);
  const running = await startPipeline({ ...pipeline, stages }, {
    host: "test-host",
    counters: new Counters(),
    log,
    clock,
  }, {
    probes: "injected",
  });
  for (const r of test.records) {
    await injectAtRecordTime(running, clock, feedName, r);
  }
  await running.stop();
  return { name: test.name, ...compare(test, got) };
}

/** `stage` and every stage it reads from, directly or through others. */
function upstreamOf(stage: string, byName: Map<string, StageNode>): Set<string> {
  const found = new Set<string>();
  const stack = [stage];
  while (stack.length) {
    const name = stack.pop()!;
    if (found.has(name)) continue;
    found.add(name);
    stack.push(...(byName.get(name)?.inputs ?? []));
  }
  return found;
}

// JSON.rawJSON (ES2025) is in V8 but not yet in TypeScript's lib.
const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

/** JSON with integers (bigint) as plain digits and whole floats as `3.0`, so types show. */
const show = (v: unknown) =>
  JSON.stringify(v, (_k, x) => {
    if (typeof x === "bigint") return rawJSON(String(x));
    if (typeof x === "number" && Number.isInteger(x)) return rawJSON(`${x}.0`);
    return x;
  });

function compare(test: PipelineTest, got: Record[]): { passed: boolean; diff: string[] } {
  const diff: string[] = [];
  const at = `stage ${test.expectStage}`;
  if (test.count !== undefined && got.length !== test.count) {
    diff.push(`${at}: expected ${test.count} records, got ${got.length}`);
  }
  if (test.expected) {
    if (got.length !== test.expected.length) {
      diff.push(`${at}: expected ${test.expected.length} records, got ${got.length}`);
    }
    test.expected.forEach((want, i) => {
      const have = got[i];
      if (!have) return;
      for (const [path, w, h] of differences(want, have)) {
        diff.push(`${at}: record ${i + 1}: ${path}: expected ${show(w)}, got ${show(h)}`);
      }
    });
  }
  got.forEach((r, i) => {
    if (test.all && !test.all.test(r)) {
      diff.push(`${at}: record ${i + 1} does not meet all: ${test.all.text}`);
    }
    if (test.none && test.none.test(r)) {
      diff.push(`${at}: record ${i + 1} meets none: ${test.none.text}`);
    }
  });
  if (diff.length > 0) { for (const r of got) diff.push(`  got: ${show(r)}`); }
  return { passed: diff.length === 0, diff };
}

/** [path, expected, got] for every key the expectation names that differs. */
function differences(want: PartialRecord, have: Record): [string, unknown, unknown][] {
  const out: [string, unknown, unknown][] = [];
  if (want.measurement !== undefined && want.measurement !== have.measurement) {
    out.push(["measurement", want.measurement, have.measurement]);
  }
  for (const [k, v] of Object.entries(want.tags ?? {})) {
    if (have.tags[k] !== v) out.push([`tags.${k}`, v, have.tags[k]]);
  }
  for (const [k, v] of Object.entries(want.fields ?? {})) {
    const h = have.fields[k];
    if (h !== v || typeof h !== typeof v) out.push([`fields.${k}`, v, h]);
  }
  if (want.time !== undefined && want.time !== have.time) out.push(["time", want.time, have.time]);
  return out;
}

/** `--test`: runs every test of `pipeline`, prints results; resolves to the exit code. */
export async function runPipelineTests(pipeline: Pipeline, log: Logger): Promise<number> {
  if (pipeline.tests.length === 0) {
    log.warn(`${pipeline.file} has no tests: section`);
    return 0;
  }
  let failed = 0;
  const lines: string[] = [];
  for (const test of pipeline.tests) {
    const result = await runTest(pipeline, test);
    if (result.passed) lines.push(`ok   ${test.name}`);
    else {
      failed++;
      lines.push(`FAIL ${test.name}`, ...result.diff.map((d) => `     ${d}`));
    }
  }
  const passed = pipeline.tests.length - failed;
  lines.push(`${pipeline.file}: ${passed} passed, ${failed} failed`);
  console.log(lines.join("\n"));
  return failed === 0 ? 0 : 1;
}

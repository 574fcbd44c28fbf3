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
 * Stages see the facts of no host (host_facts.ts `OFFLINE_HOST_FACTS`): `ephemeral_port`
 * without `range` collapses 32768-60999, and no record is in a container.
 */
import { Counters } from "../counters.ts";
import type { Logger } from "../log.ts";
import type { Record } from "../record.ts";
import { ManualClock } from "./clock.ts";
import { OFFLINE_HOST_FACTS } from "./host_facts.ts";
import type { PartialRecord, Pipeline, PipelineTest, StageNode } from "./pipeline.ts";
import { injectAtRecordTime, startPipeline } from "./run.ts";
import type { StageDef } from "./stage.ts";
import { downstreamOf, T0 } from "./tests_section.ts";

export type { PartialRecord, PipelineTest };

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
    // Of no host, so a test gives the same result on every machine (no container, 32768-60999).
    hostFacts: OFFLINE_HOST_FACTS,
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

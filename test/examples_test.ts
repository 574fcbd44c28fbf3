/**
 * The example pipelines in `examples/`: each one loads without errors or warnings (with no
 * environment, so every `${VAR:-default}` takes its default), has a `tests:` section of at least
 * three tests, and every test passes. One more test breaks an expectation on purpose, to show the
 * examples' tests can fail and say where.
 */
import assert from "node:assert/strict";
import { parsePipeline, type Pipeline } from "../src/pipeline/load.ts";
import { type PipelineTest, runTest } from "../src/pipeline/tests.ts";

const EXAMPLES = new URL("../examples/", import.meta.url);

/** The examples, by file name, sorted. */
const files = [...Deno.readDirSync(EXAMPLES)]
  .filter((e) => e.isFile && e.name.endsWith(".yaml"))
  .map((e) => e.name)
  .sort();

/** Loads `examples/<name>` with no environment variables set. */
function load(name: string): Pipeline {
  const text = Deno.readTextFileSync(new URL(name, EXAMPLES));
  return parsePipeline(`examples/${name}`, text, () => undefined);
}

/** The test called `name` in `pipeline`. */
function testNamed(pipeline: Pipeline, name: string): PipelineTest {
  const test = pipeline.tests.find((t) => t.name === name);
  assert.ok(test, `${pipeline.file} has no test named "${name}"`);
  return test;
}

Deno.test("examples/ holds the eight documented example pipelines", () => {
  for (
    const name of [
      "audit_root.yaml",
      "bash_only.yaml",
      "commands_per_minute.yaml",
      "redact_everything.yaml",
      "to_datakit.yaml",
      "to_influxdb.yaml",
      "to_otlp.yaml",
      "to_prometheus.yaml",
    ]
  ) {
    assert.ok(files.includes(name), `examples/${name} is missing; found ${files.join(", ")}`);
  }
});

for (const name of files) {
  Deno.test(`examples/${name}: loads cleanly and every one of its tests passes`, async (t) => {
    const pipeline = load(name); // throws ConfigErrors, one line per problem, on any error
    assert.deepEqual(pipeline.warnings.map((w) => w.message), [], "no warnings");
    assert.ok(
      pipeline.tests.length >= 3,
      `${pipeline.file} has ${pipeline.tests.length} tests; an example needs at least 3`,
    );
    for (const test of pipeline.tests) {
      await t.step(test.name, async () => {
        const result = await runTest(pipeline, test);
        assert.ok(result.passed, `${test.name}:\n${result.diff.join("\n")}`);
        assert.deepEqual(result.diff, []);
      });
    }
  });
}

Deno.test("a wrong expectation in an example's test fails and says where", async () => {
  const pipeline = load("commands_per_minute.yaml");
  const test = testNamed(
    pipeline,
    "the window closes on the minute and its record carries the minute as its time",
  );
  assert.ok(test.expected, "the test lists expected records");
  assert.equal(test.expected[0].fields?.commands, 3n);
  assert.ok((await runTest(pipeline, test)).passed, "the test as written passes");

  // Off by one in the count of the first window.
  const wrongCount: PipelineTest = {
    ...test,
    expected: test.expected.map((r, i) =>
      i === 0 ? { ...r, fields: { ...r.fields, commands: 4n } } : r
    ),
  };
  const counted = await runTest(pipeline, wrongCount);
  assert.equal(counted.passed, false);
  assert.equal(
    counted.diff[0],
    "stage commands_per_minute: record 1: fields.commands: expected 4, got 3",
  );
  // The diff ends with every record the stage emitted, so the reader sees what came out.
  assert.equal(counted.diff.filter((d) => d.startsWith("  got: ")).length, 2);

  // The same count as a float: a window's count is an integer, and types are compared too.
  const wrongType: PipelineTest = {
    ...test,
    expected: test.expected.map((r, i) =>
      i === 0 ? { ...r, fields: { ...r.fields, commands: 3 } } : r
    ),
  };
  const typed = await runTest(pipeline, wrongType);
  assert.equal(typed.passed, false);
  assert.match(typed.diff[0], /^stage commands_per_minute: record 1: fields\.commands: /);

  // A window closing at the wrong time.
  const wrongTime: PipelineTest = {
    ...test,
    expected: test.expected.map((r, i) => i === 0 ? { ...r, time: r.time! + 1n } : r),
  };
  const timed = await runTest(pipeline, wrongTime);
  assert.equal(timed.passed, false);
  assert.match(timed.diff[0], /^stage commands_per_minute: record 1: time: expected \d+, got \d+$/);
});

Deno.test("a redaction the pipeline no longer does fails the example's test", async () => {
  // What a reviewer would see if the user rules were deleted from redact_everything.yaml:
  // the same test run on the pipeline without its `rules:`.
  const text = Deno.readTextFileSync(new URL("redact_everything.yaml", EXAMPLES));
  const start = text.indexOf("    rules:\n");
  const end = text.indexOf("\noutputs:");
  assert.ok(start > 0 && end > start, "redact_everything.yaml has a rules: list before outputs:");
  const withoutRules = parsePipeline(
    "examples/redact_everything.yaml (without rules)",
    text.slice(0, start) + text.slice(end),
    () => undefined,
  );
  const test = testNamed(withoutRules, "message is masked as well as cmd");
  const result = await runTest(withoutRules, test);
  assert.equal(result.passed, false);
  const masked = "acme-vault get db/prod -p ***", clear = "acme-vault get db/prod -p hunter2";
  const message = (cmd: string) =>
    `2026-01-01T00:00:00.000Z pid:\`4801\` user:\`alice\` cmd:\`${cmd}\``;
  assert.deepEqual(result.diff.slice(0, 3), [
    `stage scrub: record 1: fields.cmd: expected "${masked}", got "${clear}"`,
    `stage scrub: record 1: fields.message: expected "${message(masked)}", got "${message(clear)}"`,
    "stage scrub: record 1 meets none: " +
    'field cmd contains "hunter2" or field message contains "hunter2"',
  ]);
});

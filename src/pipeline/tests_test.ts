import assert from "node:assert/strict";
import { parsePipeline } from "./load.ts";
import { runTest } from "./tests.ts";

const PIPELINE = `version: 1
probes:
  bash: { type: bash }
windows:
  per_minute:
    inputs: [bash]
    every: 60s
    fields: { n: { agg: count }, longest: { from: len, agg: max }, avg: { from: ratio, agg: mean } }
outputs:
  out: { type: stdout, inputs: [per_minute] }
tests:
  - name: counts per minute, integers stay integers, floats stay floats
    input:
      stage: bash
      records:
        - { fields: { len: 3, ratio: 1.0 }, time: "2026-01-01T00:00:10Z" }
        - { fields: { len: 7, ratio: 2.0 }, time: "2026-01-01T00:00:20Z" }
        - { fields: { len: 5, ratio: 4.0 }, time: "2026-01-01T00:01:05Z" }
    expect:
      stage: per_minute
      records:
        - { fields: { n: 2, longest: 7, avg: 1.5 }, time: "2026-01-01T00:01:00Z" }
        - { fields: { n: 1, longest: 5, avg: 4.0 } }
`;

Deno.test("runTest() drives windows by record time and compares field types exactly", async () => {
  const pipeline = parsePipeline("p.yaml", PIPELINE);
  const result = await runTest(pipeline, pipeline.tests[0]);
  assert.deepEqual(result.diff, []);
  assert.ok(result.passed);
});

Deno.test("runTest() shows an integer expected where a float came as 3 against 3.0", async () => {
  const pipeline = parsePipeline("p.yaml", PIPELINE.replace("avg: 4.0 }", "avg: 4 }"));
  const result = await runTest(pipeline, pipeline.tests[0]);
  assert.equal(result.passed, false);
  assert.equal(result.diff[0], "stage per_minute: record 2: fields.avg: expected 4, got 4.0");
});

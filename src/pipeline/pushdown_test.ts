import assert from "node:assert/strict";
import { parsePipeline } from "./load.ts";
import { inputSpanMs, pushdownFor } from "./pushdown.ts";

/** The pushdown of probe `probe` in a pipeline of `transforms` (YAML) reading probes dns, flows. */
function pushdown(transforms: string, outputs = "[tail]", probe = "dns") {
  const text = `version: 1
probes:
  dns: { type: dns }
  flows: { type: netflow }
transforms:
${transforms}
outputs:
  out: { type: stdout, inputs: ${outputs} }
`;
  const pipeline = parsePipeline("p.yaml", text, () => undefined);
  const node = pipeline.stages.find((s) => s.name === probe)!;
  return pushdownFor(node, pipeline.stages);
}

Deno.test("pushdownFor() lets the kernel fold client ports when every path reaches ephemeral_port first", () => {
  assert.deepEqual(
    pushdown(`
  boxes: { type: container, inputs: [dns] }
  tail: { type: ephemeral_port, inputs: [boxes], range: "40000-50000" }`),
    { clientPorts: { low: 40000, high: 50000 } },
  );
  // Without a range: the host's, read by the probe.
  assert.deepEqual(pushdown(`  tail: { type: ephemeral_port, inputs: [dns] }`), {
    clientPorts: "kernel",
  });
});

Deno.test("pushdownFor() folds nothing when a path may read ports first or the ranges differ", () => {
  const cases = [
    // A stage that does not say which tags it reads (a filter) comes first.
    `  keep: { type: filter, inputs: [dns], drop: { tag: src_port, equals: "53" } }
  tail: { type: ephemeral_port, inputs: [keep] }`,
    // One path reaches the output with the ports as they are.
    `  tail: { type: ephemeral_port, inputs: [dns] }
  raw: { type: container, inputs: [dns] }`,
    // Two folds, two ranges.
    `  a: { type: ephemeral_port, inputs: [dns], range: "1-2" }
  tail: { type: ephemeral_port, inputs: [dns], range: "3-4" }`,
  ];
  const outputs = ["[tail]", "[tail, raw]", "[a, tail]"];
  cases.forEach((t, i) => assert.deepEqual(pushdown(t, outputs[i]), {}, t));
});

Deno.test("pushdownFor() gives the tightest TTL clamp of the stages reading the probe's answers", () => {
  const got = pushdown(
    `
  a: { type: dns_domain, inputs: [flows], answers_from: dns, min_ttl: 5s, max_ttl: 10m }
  tail: { type: dns_domain, inputs: [a], answers_from: dns, min_ttl: 30s, max_ttl: 1h }`,
  );
  assert.deepEqual(got, { answerTtl: { minMs: 5_000, maxMs: 600_000 } });
  // netflow reads no answers; its path goes through dns_domain, which touches no port.
  assert.deepEqual(
    pushdown(`  tail: { type: dns_domain, inputs: [flows], answers_from: dns }`, "[tail]", "flows"),
    {},
  );
});

Deno.test("inputSpanMs() is the longest poll of the probes upstream, through any stages", () => {
  const text = `version: 1
probes:
  dns: { type: dns, poll: 5s }
  flows: { type: netflow, poll: 30s }
  sh: { type: bash }
transforms:
  named: { type: dns_domain, inputs: [flows], answers_from: dns }
  both: { type: container, inputs: [named, dns] }
  typed: { type: container, inputs: [sh] }
outputs:
  out: { type: stdout, inputs: [both, typed] }
`;
  const pipeline = parsePipeline("p.yaml", text, () => undefined);
  const span = (name: string) =>
    inputSpanMs(pipeline.stages.find((s) => s.name === name)!, pipeline.stages);
  assert.equal(span("named"), 30_000); // the side input (answers) is not a record it sums
  assert.equal(span("both"), 30_000);
  assert.equal(span("typed"), 0); // bash: one command, one record
  assert.equal(span("out"), 30_000);
});

Deno.test("pushdownFor() still folds when a path ends at a stage that passes no input record on", () => {
  // command_activity reads the flows, touches no port and emits bash_activity records only:
  // what reaches the output through it is the same whether ports were folded or not.
  const transforms = `
  tail: { type: ephemeral_port, inputs: [flows] }
  activity: { type: command_activity, inputs: [flows], events_from: dns }`;
  assert.deepEqual(pushdown(transforms, "[tail, activity]", "flows"), { clientPorts: "kernel" });
  // It reads dns's side records, but keeps no names: no answer TTL for it.
  assert.deepEqual(pushdown(transforms, "[tail, activity]", "dns"), {});
});

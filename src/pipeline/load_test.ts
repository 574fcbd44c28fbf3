import assert from "node:assert/strict";
import { ConfigError, ConfigErrors, UserError } from "../errors.ts";
import { loadPipeline, parsePipeline } from "./load.ts";
import { REGISTRY } from "./registry.ts";
import type { StageDef } from "./stage.ts";

/** The ConfigErrors that parsing `text` (as `p.yaml`) throws. */
function errorsOf(text: string): ConfigErrors {
  try {
    parsePipeline("p.yaml", text);
  } catch (e) {
    assert.ok(e instanceof ConfigErrors, `expected ConfigErrors, got ${e}`);
    assert.equal(e.exitCode, 2);
    return e;
  }
  assert.fail("the pipeline parsed without errors");
}

/** The one error that parsing `text` reports. */
function onlyError(text: string): ConfigError {
  const { errors } = errorsOf(text);
  assert.equal(errors.length, 1, errors.map((e) => e.message).join("\n"));
  return errors[0];
}

/** `file:line:column path` of an error, the part a user jumps to. */
const where = (e: ConfigError) => `${e.file}:${e.line}:${e.column} ${e.path}`;

// Line numbers in the tests below count from the opening line of these texts.
const VALID = `version: 1
probes:
  bash:
    type: bash
outputs:
  console:
    type: stdout
    inputs: [bash]
    format: json
`;

Deno.test("parsePipeline() reads the default pipeline.yaml: bash redacted, netflow and dnsflow per minute", () => {
  const text = Deno.readTextFileSync(new URL("../../pipeline.yaml", import.meta.url));

  const pipeline = parsePipeline("pipeline.yaml", text);

  assert.equal(pipeline.file, "pipeline.yaml");
  assert.deepEqual(pipeline.warnings, []);
  const stages = pipeline.stages.map((st) => [st.section, st.name, st.def.type, st.inputs]);
  assert.deepEqual(stages, [
    ["probes", "bash", "bash", []],
    ["probes", "netflow", "netflow", []],
    ["probes", "dns", "dns", []],
    ["probes", "netdrop", "netdrop", []],
    ["probes", "self", "collector", []],
    ["transforms", "bash_containers", "container", ["bash"]],
    ["transforms", "netflow_containers", "container", ["netflow"]],
    ["transforms", "dns_containers", "container", ["dns"]],
    ["transforms", "netdrop_containers", "container", ["netdrop"]],
    ["transforms", "name_destinations", "dns_domain", ["netflow_containers"]],
    ["transforms", "command_activity", "command_activity", [
      "bash_containers",
      "name_destinations",
      "dns_containers",
    ]],
    ["transforms", "redact_secrets", "redact", ["bash_containers", "command_activity"]],
    ["transforms", "merge_client_ports", "ephemeral_port", ["name_destinations"]],
    ["transforms", "merge_dns_client_ports", "ephemeral_port", ["dns_containers"]],
    ["transforms", "merge_drop_client_ports", "ephemeral_port", ["netdrop_containers"]],
    ["windows", "netflow_per_minute", "window", ["merge_client_ports"]],
    ["windows", "dnsflow_per_minute", "window", ["merge_dns_client_ports"]],
    ["windows", "netdrop_per_minute", "window", ["merge_drop_client_ports"]],
    ["outputs", "console", "stdout", [
      "redact_secrets",
      "netflow_per_minute",
      "dnsflow_per_minute",
      "netdrop_per_minute",
      "self",
    ]],
  ]);
  assert.deepEqual(
    pipeline.stages.find((st) => st.name === "name_destinations")!.sideInputs,
    [{ key: "answers_from", stage: "dns" }],
  );
  assert.deepEqual(
    pipeline.stages.find((st) => st.name === "command_activity")!.sideInputs,
    [{ key: "events_from", stage: "bash" }],
    "bash_activity: what each command did, redacted as bash is",
  );
  const byName = new Map(pipeline.stages.map((st) => [st.name, st]));
  const [bash, redact, console] = ["bash", "redact_secrets", "console"].map((n) => byName.get(n)!);
  assert.deepEqual(bash.config, { binary: "/bin/bash", max_cmd_bytes: 16384 });
  assert.equal(byName.get("netflow")!.config.poll, 10_000);
  assert.equal(byName.get("netflow_per_minute")!.config.every, 60_000);
  assert.equal(redact.config.defaults, true, "secrets are redacted by default");
  assert.deepEqual(redact.config.fields, ["cmd", "message"]);
  assert.deepEqual(console.config, { format: "json" });
});

Deno.test("parsePipeline() reads probe and output options given in the file", () => {
  const pipeline = parsePipeline(
    "p.yaml",
    VALID.replace(
      "    type: bash\n",
      "    type: bash\n    binary: /usr/bin/bash\n    max_cmd_bytes: 4096\n",
    )
      .replace("format: json", "format: line_protocol"),
  );

  assert.deepEqual(pipeline.stages[0].config, { binary: "/usr/bin/bash", max_cmd_bytes: 4096 });
  assert.deepEqual(pipeline.stages[1].config, { format: "line_protocol" });
});

Deno.test("parsePipeline() reports a YAML syntax error at its line and column", () => {
  const error = onlyError(`version: 1
probes:
  bash:
    type: bash: x
`);

  assert.equal(where(error), "p.yaml:4:11 ");
  assert.match(error.message, /^p\.yaml:4:11: Nested mappings are not allowed/);
  assert.equal(error.message.includes("\n"), false);
});

Deno.test("parsePipeline() reports a duplicate key at the second occurrence", () => {
  const error = onlyError(VALID.replace("outputs:", "  bash:\n    type: bash\noutputs:"));

  assert.equal(where(error), "p.yaml:5:3 ");
  assert.match(error.reason, /unique/);
});

Deno.test("parsePipeline() rejects version 2 at the version's value", () => {
  const error = onlyError(VALID.replace("version: 1", "version: 2"));

  assert.equal(where(error), "p.yaml:1:10 version");
  assert.equal(error.message, "p.yaml:1:10: version: must be 1, got 2");
});

Deno.test("parsePipeline() rejects an unknown section at its key, listing the known ones", () => {
  const error = onlyError(VALID + "transform: {}\n");

  assert.equal(where(error), "p.yaml:10:1 transform");
  assert.equal(
    error.reason,
    'unknown section "transform" (did you mean "transforms"?); known: version, probes, transforms, windows, outputs, tests',
  );
});

Deno.test("parsePipeline() rejects an unknown probe type at the type's value", () => {
  const error = onlyError(VALID.replace("type: bash", "type: zsh"));

  assert.equal(where(error), "p.yaml:4:11 probes.bash.type");
  const known = [...REGISTRY.probes.keys()].join(", ");
  assert.equal(error.reason, `unknown probe type "zsh"; known: ${known}`);
});

Deno.test("parsePipeline() rejects an unknown probe option at its key, listing the known ones", () => {
  const error = onlyError(VALID.replace("    type: bash\n", "    type: bash\n    colour: red\n"));

  assert.equal(where(error), "p.yaml:5:5 probes.bash.colour");
  assert.equal(error.reason, 'unknown key "colour"; known: binary, max_cmd_bytes, type, required');
});

Deno.test("parsePipeline() rejects max_cmd_bytes: 0 at the value, giving the range", () => {
  const error = onlyError(
    VALID.replace("    type: bash\n", "    type: bash\n    max_cmd_bytes: 0\n"),
  );

  assert.equal(where(error), "p.yaml:5:20 probes.bash.max_cmd_bytes");
  assert.equal(error.reason, "expected an integer from 1 to 16384, got 0");
});

Deno.test("parsePipeline() rejects an output reading a missing probe at its inputs", () => {
  const error = onlyError(VALID.replace("inputs: [bash]", "inputs: [bash, fish]"));

  assert.equal(where(error), "p.yaml:8:20 outputs.console.inputs[1]");
  assert.equal(error.reason, 'no stage named "fish"');
});

Deno.test("parsePipeline() warns, at its name, about a probe nothing reads", () => {
  const { warnings } = parsePipeline(
    "p.yaml",
    VALID.replace("outputs:", "  spare:\n    type: bash\noutputs:"),
  );

  assert.equal(warnings.length, 1);
  assert.equal(where(warnings[0]), "p.yaml:5:3 probes.spare");
  assert.match(warnings[0].reason, /^nothing reads this stage's records/);
});

Deno.test("parsePipeline() warns, at the key, about a deprecated key it ignores", () => {
  const { warnings } = parsePipeline(
    "p.yaml",
    `version: 1
probes:
  flows: { type: netflow, max_sockets: 100 }
outputs:
  out: { type: stdout, inputs: [flows] }
`,
  );

  assert.equal(warnings.length, 1);
  assert.equal(where(warnings[0]), "p.yaml:3:40 probes.flows.max_sockets");
  assert.match(warnings[0].reason, /^is deprecated and ignored: TCP sockets/);
});

Deno.test("parsePipeline() rejects a bad output format at the value, listing the formats", () => {
  const error = onlyError(VALID.replace("format: json", "format: xml"));

  assert.equal(where(error), "p.yaml:9:13 outputs.console.format");
  assert.equal(error.reason, 'expected one of json, line_protocol, got "xml"');
});

Deno.test("parsePipeline() reports a probe with a bad type once, not again at the output reading it", () => {
  const error = onlyError(VALID.replace("type: bash", "type: zsh"));

  assert.equal(error.path, "probes.bash.type");
});

Deno.test("parsePipeline() reports three mistakes at once, in file order, with exit code 2", () => {
  const text = VALID.replace("version: 1", "version: 2")
    .replace("    type: bash\n", "    type: bash\n    max_cmd_bytes: 0\n")
    .replace("format: json", "format: xml");

  const e = errorsOf(text);

  assert.equal(e.errors.length, 3);
  assert.equal(e.exitCode, 2);
  assert.deepEqual(e.errors.map(where), [
    "p.yaml:1:10 version",
    "p.yaml:5:20 probes.bash.max_cmd_bytes",
    "p.yaml:10:13 outputs.console.format",
  ]);
  // The message a user sees: one line per mistake.
  assert.deepEqual(e.message.split("\n"), e.errors.map((x) => x.message));
});

Deno.test("parsePipeline() rejects a file that is not a mapping at line 1, column 1", () => {
  for (const text of ["", "- bash\n"]) {
    const error = onlyError(text);
    assert.equal(where(error), "p.yaml:1:1 ");
    assert.match(error.reason, /a pipeline is a mapping/);
  }
});

/** Registers a test-only transform with a side input (`answers_from`) while `fn` runs. */
function withSideInputStage(fn: () => void): void {
  const def: StageDef = {
    type: "lookup_test",
    kind: "transform",
    describe: "Test-only: a transform with a side input.",
    schema: {
      answers_from: {
        type: "stage",
        required: true,
        doc: "the stage whose records answer lookups",
      },
    },
    example: {},
    build: () => ({ push() {}, flush() {}, close() {} }),
  };
  const transforms = REGISTRY.transforms as Map<string, StageDef>;
  transforms.set(def.type, def);
  try {
    fn();
  } finally {
    transforms.delete(def.type);
  }
}

const SIDE = `version: 1
probes:
  bash: { type: bash }
  dns: { type: bash }
transforms:
  lookup: { type: lookup_test, inputs: [bash], answers_from: dns }
outputs:
  out: { type: stdout, inputs: [lookup] }
`;

Deno.test("parsePipeline() takes a side input as a graph edge: it orders stages and counts as a reader", () => {
  withSideInputStage(() => {
    const pipeline = parsePipeline("p.yaml", SIDE);
    const lookup = pipeline.stages.find((s) => s.name === "lookup")!;
    assert.deepEqual(lookup.sideInputs, [{ key: "answers_from", stage: "dns" }]);
    assert.deepEqual(pipeline.warnings, [], "dns is read (as a side input), so no warning");
    const order = pipeline.stages.map((s) => s.name);
    assert.ok(order.indexOf("dns") < order.indexOf("lookup"));
  });
});

Deno.test("parsePipeline() checks a side input like inputs: unknown names and cycles", () => {
  withSideInputStage(() => {
    const unknown = onlyError(SIDE.replace("answers_from: dns", "answers_from: dsn"));
    assert.equal(where(unknown), "p.yaml:6:62 transforms.lookup.answers_from");
    assert.equal(unknown.reason, 'no stage named "dsn" (did you mean "dns"?)');
    const cyclic = SIDE.replace("answers_from: dns", "answers_from: again") +
      "  again2: { type: stdout, inputs: [again] }\n";
    const withCycle = cyclic.replace(
      "outputs:",
      "  again: { type: lookup_test, inputs: [bash], answers_from: lookup }\noutputs:",
    );
    const error = onlyError(withCycle);
    assert.match(error.reason, /^inputs form a cycle through lookup, again/);
  });
});

/** A pipeline of bash, `transforms` (YAML lines, each `  name: {...}`) and one stdout output. */
function withTransforms(lines: string[], last: string): string {
  return `version: 1\nprobes:\n  bash: { type: bash }\ntransforms:\n${lines.join("\n")}\n` +
    `outputs:\n  out: { type: stdout, inputs: [${last}] }\n`;
}

const PASS = "drop: { field: x, exists: true }";

Deno.test("parsePipeline() checks a 998-transform chain written backwards and a 998-way fan-in in linear time", () => {
  const chain = Array.from(
    { length: 998 },
    (_, i) => `  t${i}: { type: filter, inputs: [${i ? `t${i - 1}` : "bash"}], ${PASS} }`,
  );
  const fan = Array.from(
    { length: 998 },
    (_, i) => `  t${i}: { type: filter, inputs: [bash], ${PASS} }`,
  );
  const texts = [
    withTransforms(chain.toReversed(), "t997"),
    withTransforms(fan, Array.from({ length: 998 }, (_, i) => `t${i}`).join(", ")),
  ];
  for (const text of texts) {
    const started = performance.now();
    const pipeline = parsePipeline("p.yaml", text);
    const ms = performance.now() - started;
    assert.equal(pipeline.stages.length, 1000);
    assert.equal(pipeline.stages[0].name, "bash");
    assert.equal(pipeline.stages.at(-1)!.name, "out");
    // YAML parsing takes most of it; the graph checks were quadratic (10k stages: 6 to 27 s).
    assert.ok(ms < 5000, `${ms.toFixed(0)} ms`);
  }
  const order = parsePipeline("p.yaml", texts[0]).stages.map((s) => s.name);
  assert.deepEqual(order.slice(0, 3), ["bash", "t0", "t1"]);
});

Deno.test("parsePipeline() refuses more than 1000 stages at the first one past the bound", () => {
  const lines = Array.from(
    { length: 1005 },
    (_, i) => `  t${i}: { type: filter, inputs: [bash], ${PASS} }`,
  );
  const e = onlyError(withTransforms(lines, "t0"));
  assert.equal(where(e), "p.yaml:1004:3 transforms.t999");
  assert.equal(e.reason, "more than 1000 stages: split the pipeline across collectors");
});

Deno.test("parsePipeline() refuses a list of more than 10000 items at the list", () => {
  const e = onlyError(withTransforms(
    [`  t: { type: filter, inputs: [bash], drop: { field: x, in: [${"1,".repeat(10_001)}1] } }`],
    "t",
  ));
  assert.equal(where(e), "p.yaml:5:60 transforms.t.drop.in");
  assert.equal(e.reason, "a list of at most 10000 items, got 10002");
});

Deno.test("parsePipeline() refuses a stage that names the same input twice", () => {
  const e = onlyError(
    withTransforms([`  t: { type: filter, inputs: [bash, bash], ${PASS} }`], "t"),
  );
  assert.equal(where(e), "p.yaml:5:37 transforms.t.inputs[1]");
  assert.equal(e.reason, '"bash" is already an input: each record would arrive twice');
});

Deno.test("parsePipeline() refuses a text over 1 MiB before parsing it", () => {
  const e = onlyError(`version: 1\n# ${"x".repeat(1024 * 1024)}\n`);
  assert.equal(where(e), "p.yaml:1:1 ");
  assert.equal(e.reason, "the file is larger than 1MiB");
});

Deno.test("loadPipeline() reads at most 1 MiB: /dev/zero is refused at once", async () => {
  const started = performance.now();
  await assert.rejects(
    () => loadPipeline("/dev/zero"),
    (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.equal(e.exitCode, 2);
      assert.equal(e.message, "cannot read pipeline /dev/zero: larger than 1MiB");
      return true;
    },
  );
  assert.ok(performance.now() - started < 1000);
});

Deno.test("parsePipeline() refuses a path with a comma, which would grant a second path", () => {
  const e = onlyError(
    VALID + '  f: { type: file, inputs: [bash], path: "/x,/etc/cron.d/evil" }\n',
  );
  assert.equal(where(e), "p.yaml:10:42 outputs.f.path");
  assert.equal(
    e.reason,
    'path "/x,/etc/cron.d/evil" has a comma, which Deno\'s --allow-read and --allow-write ' +
      "lists cannot hold: choose another path",
  );
});

/**
 * Every registered stage type, whatever it is, keeps the contract: its example validates, every
 * schema key has a doc, an unknown key is rejected at its position, `explain` works on the
 * example, and (for transforms and windows) records pushed through the real runtime move its
 * counters and reach the next stage.
 */
import assert from "node:assert/strict";
import { Counters } from "../counters.ts";
import type { Record } from "../record.ts";
import { ManualClock } from "./clock.ts";
import type { Pipeline, StageNode } from "./load.ts";
import { REGISTRY, SECTIONS } from "./registry.ts";
import { startPipeline } from "./run.ts";
import type { StageContext, StageDef } from "./stage.ts";
import { configureStage } from "./testing.ts";
import type { YamlSource } from "./yaml_source.ts";

const all = SECTIONS.flatMap((section) =>
  [...REGISTRY[section].values()].map((def) => ({ section, def }))
);

Deno.test("the registries hold at least the stage types the language documents", () => {
  const types = all.map(({ def }) => def.type).sort();
  for (const t of ["bash", "stdout"]) assert.ok(types.includes(t), `${t} is registered`);
  assert.equal(new Set(types).size, types.length, "type names are unique across sections");
});

for (const { section, def } of all) {
  Deno.test(`${section}.${def.type}: the example validates and every key is documented`, () => {
    const { errors } = configureStage(def, def.example);
    assert.deepEqual(errors.map((e) => e.message), []);
    assert.ok(def.describe.length > 10, "describe is a sentence");
    for (const [key, spec] of Object.entries(def.schema)) {
      assert.ok(spec.doc.length > 5, `${key} has a one-line doc`);
      assert.ok(!spec.doc.includes("\n"), `${key}'s doc is one line`);
    }
  });

  Deno.test(`${section}.${def.type}: an unknown key is rejected at its position, with a hint`, () => {
    const [first] = Object.keys(def.schema);
    const typo = first ? first.slice(0, -1) + "x" : "colour";
    const { errors } = configureStage(def, { ...def.example, [typo]: 1 });
    const e = errors.find((e) => e.path.endsWith(`.${typo}`));
    assert.ok(e, `an error names ${typo}: ${errors.map((e) => e.message).join("; ")}`);
    assert.match(e.reason, /^unknown key/);
    assert.ok(e.line > 1 && e.column > 1, `positioned: ${e.message}`);
    if (first && first.length > 3) assert.match(e.reason, new RegExp(`did you mean "${first}"`));
  });

  Deno.test(`${section}.${def.type}: explain describes the example`, () => {
    const { config } = configureStage(def, def.example);
    const explained = def.explain?.(config);
    assert.ok(explained === undefined || Array.isArray(explained.details ?? []));
  });
}

/** A probe that emits what the test hands it, to drive other stages through the runtime. */
function feeder(): { def: StageDef; emit: (r: Record) => void } {
  let ctx: StageContext | undefined;
  const def: StageDef = {
    type: "feeder",
    kind: "probe",
    describe: "Test-only: emits the records the test gives it.",
    schema: {},
    example: {},
    build(_config, c) {
      ctx = c;
      return { push() {}, flush() {}, close() {} };
    },
  };
  return { def, emit: (r) => ctx!.emit(r) };
}

const RECORD: Record = {
  measurement: "bash",
  tags: { host: "h", source: "bash", user: "root" },
  fields: { cmd: "echo hi", message: "m", pid: "1", user: "root" },
  time: 1_764_000_000_000_000_000n,
};

for (const { def } of all.filter(({ def }) => def.kind === "transform" || def.kind === "window")) {
  Deno.test(`${def.kind}s.${def.type}: records pushed through the runtime move its counters`, async () => {
    const { config } = configureStage(def, def.example);
    const feed = feeder();
    const seen: Record[] = [];
    const sink: StageDef = {
      type: "sink",
      kind: "output",
      describe: "Test-only: keeps what it gets.",
      schema: {},
      example: {},
      build: () => ({ push: (r) => void seen.push(r), flush() {}, close() {} }),
    };
    const node = (name: string, d: StageDef, inputs: string[], cfg: unknown = {}): StageNode => ({
      name,
      section: d.kind === "probe"
        ? "probes"
        : d.kind === "output"
        ? "outputs"
        : `${d.kind}s` as StageNode["section"],
      kind: d.kind,
      def: d,
      config: cfg as StageNode["config"],
      raw: {},
      inputs,
      sideInputs: [],
      required: true,
    });
    const pipeline: Pipeline = {
      file: "test.yaml",
      source: undefined as unknown as YamlSource,
      stages: [
        node("in", feed.def, []),
        node("it", def, ["in"], config),
        node("out", sink, ["it"]),
      ],
      warnings: [],
      tests: [],
    };
    const counters = new Counters();
    const log = { info() {}, warn() {}, debug() {} };
    const running = await startPipeline(pipeline, {
      host: "h",
      counters,
      log,
      clock: new ManualClock(RECORD.time),
    });
    for (let i = 0; i < 3; i++) feed.emit(RECORD);
    await running.stop();
    assert.equal(counters.get("records_out", { stage: "in" }), 3n);
    assert.equal(counters.get("records_in", { stage: "it" }), 3n);
    assert.equal(counters.get("records_out", { stage: "it" }), BigInt(seen.length));
  });
}

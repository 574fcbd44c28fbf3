/**
 * Side inputs through the real runtime: a stage that names another in a `type: "stage"` key
 * (`answers_from: dns`) gets, in its `side(key, record)`, what that stage sends with
 * `ctx.emitSide`, and nothing of it reaches `inputs` readers. Probes are injected stand-ins,
 * which can only `emit`; a test-only transform turns what it is given into side records.
 */
import assert from "node:assert/strict";
import { Counters } from "../counters.ts";
import type { Record } from "../record.ts";
import { ManualClock } from "./clock.ts";
import { parsePipeline } from "./load.ts";
import { REGISTRY } from "./registry.ts";
import { startPipeline } from "./run.ts";
import type { StageDef } from "./stage.ts";

/** Calls of each side_echo's sideReadersRebuilt(), by stage name. */
const rebuiltReaders = new Map<string, number>();

/** Sends every record it is given on as a side record only; `at_build` also sends one then. */
const sideEcho: StageDef = {
  type: "side_echo",
  kind: "transform",
  describe: "Test-only: sends what it gets to its side readers, and nothing downstream.",
  schema: {
    label: { type: "string", default: "a", doc: "changes the settings, to force a rebuild" },
    at_build: { type: "boolean", default: false, doc: "emit and emitSide one record in build" },
  },
  example: {},
  build(config, ctx) {
    if (config.at_build) {
      const r = rec("built", { label: config.label });
      ctx.emit(r);
      ctx.emitSide(r);
    }
    return {
      push: (r) => ctx.emitSide(r),
      flush() {},
      close() {},
      sideReadersRebuilt: () =>
        void rebuiltReaders.set(ctx.name, (rebuiltReaders.get(ctx.name) ?? 0) + 1),
    };
  },
};

/** Keeps what comes to `side` (with the key) by stage name, and passes its inputs on. */
const sides = new Map<string, [string, Record][]>();
const sideCapture: StageDef = {
  type: "side_capture",
  kind: "transform",
  describe: "Test-only: keeps its side records and passes its inputs on.",
  schema: {
    from: { type: "stage", required: true, doc: "the stage whose side records it keeps" },
    label: { type: "string", default: "a", doc: "changes the settings, to force a rebuild" },
  },
  example: { from: "x" },
  build(_config, ctx) {
    const got: [string, Record][] = [];
    sides.set(ctx.name, got);
    return {
      push: (r) => ctx.emit(r),
      side: (key, r) => void got.push([key, r]),
      flush() {},
      close() {},
    };
  },
};

/** Keeps every record it gets, by output name. */
const captured = new Map<string, Record[]>();
const captureOutput: StageDef = {
  type: "capture",
  kind: "output",
  describe: "Test-only: keeps every record it gets.",
  schema: {},
  example: {},
  build(_config, ctx) {
    const got: Record[] = [];
    captured.set(ctx.name, got);
    return { push: (r) => void got.push(r), flush() {}, close() {} };
  },
};
// Each test file runs in its own isolate: these registrations stay in this file.
(REGISTRY.transforms as Map<string, StageDef>).set("side_echo", sideEcho);
(REGISTRY.transforms as Map<string, StageDef>).set("side_capture", sideCapture);
(REGISTRY.outputs as Map<string, StageDef>).set("capture", captureOutput);

const T = 1_767_225_600_000_000_000n; // 2026-01-01T00:00:00Z
const S = 1_000_000_000n;
const quiet = { info() {}, warn() {}, debug() {} };

function rec(what: string, tags: { [key: string]: string } = {}): Record {
  return {
    measurement: "test",
    tags: { host: "h", source: "test", ...tags },
    fields: { what },
    time: T,
  };
}

async function start(text: string, clock = new ManualClock(T)) {
  const counters = new Counters();
  const running = await startPipeline(
    parsePipeline("p.yaml", text),
    { host: "h", counters, log: quiet, clock },
    { probes: "injected" },
  );
  return { running, counters, clock };
}

const GENERIC = `version: 1
probes:
  raw: { type: bash }
transforms:
  answers: { type: side_echo, inputs: [raw] }
  reader: { type: side_capture, inputs: [raw], from: answers }
outputs:
  out: { type: capture, inputs: [answers, reader] }
`;

Deno.test("a stage naming another in a stage-typed key gets its emitSide records, with the key", async () => {
  const { running, counters } = await start(GENERIC);
  const r = rec("one");
  running.inject("raw", r);
  running.inject("raw", rec("two"));
  await running.stop();
  const got = sides.get("reader")!;
  assert.deepEqual(got.map(([key]) => key), ["from", "from"]);
  assert.equal(got[0][1], r, "the record itself, not a copy");
  assert.deepEqual(got.map(([, x]) => x.fields.what), ["one", "two"]);
  const c = (name: string, stage: string) => counters.get(name, { stage });
  assert.equal(c("side_records_out", "answers"), 2n);
  assert.equal(c("records_out", "answers"), 0n, "side records are not emitted records");
  assert.equal(c("records_in", "reader"), 2n, "only its inputs count as records_in");
  // `out` reads answers and reader: only reader's two pass-through records arrive.
  assert.deepEqual(captured.get("out")!.map((x) => x.fields.what), ["one", "two"]);
});

Deno.test("emitSide with no side reader delivers nothing and counts nothing", async () => {
  const { running, counters } = await start(
    GENERIC.replace("from: answers", "from: raw"),
  );
  running.inject("raw", rec("one"));
  await running.stop();
  assert.deepEqual(sides.get("reader"), [], "raw only emits; it sends no side records");
  assert.equal(counters.get("side_records_out", { stage: "answers" }), 0n);
});

Deno.test("a reload that builds a new side reader tells the stage it reads (sideReadersRebuilt)", async () => {
  rebuiltReaders.clear();
  const { running } = await start(GENERIC);
  await running.reload(parsePipeline("p.yaml", GENERIC)); // nothing changed
  assert.equal(rebuiltReaders.get("answers"), undefined);
  // The reader rebuilt with other settings: what answers spared it must go out again.
  await running.reload(
    parsePipeline("p.yaml", GENERIC.replace("from: answers", "from: answers, label: b")),
  );
  assert.equal(rebuiltReaders.get("answers"), 1);
  await running.stop();
});

const DNS = `version: 1
probes:
  dns_raw: { type: bash }   # stands in for the dns probe's input
  netflow: { type: netflow }
transforms:
  dns: { type: side_echo, inputs: [dns_raw] }   # sends its input as side records, as dns will
  domains: { type: dns_domain, inputs: [netflow], answers_from: dns, max_ttl: 1h }
outputs:
  out: { type: capture, inputs: [domains] }
`;

function answer(name: string, address: string, ttl: bigint): Record {
  return {
    measurement: "dns_answer",
    tags: { host: "h" },
    fields: { name, address, ttl },
    time: T,
  };
}

function flow(dstIp: string): Record {
  return {
    measurement: "netflow",
    tags: { host: "h", source: "netflow", dst_domain: "", dst_ip: dstIp },
    fields: { bytes_written: 1n },
    time: T,
  };
}

Deno.test("dns_domain fills dst_domain from answers that reach it as side records", async () => {
  const { running, counters, clock } = await start(DNS);
  running.inject("dns_raw", answer("example.com", "93.184.216.34", 60n));
  running.inject("netflow", flow("93.184.216.34"));
  running.inject("netflow", flow("198.51.100.1"));
  // The 60 s TTL, and the 10 s a netflow record may sum (its poll), have passed.
  clock.advance(T + 70n * S);
  running.inject("netflow", flow("93.184.216.34"));
  await running.stop();
  assert.deepEqual(captured.get("out")!.map((r) => r.tags.dst_domain), ["example.com", "", ""]);
  const c = (name: string) => counters.get(name, { stage: "domains" });
  assert.deepEqual(
    [c("domain_hits"), c("domain_misses"), c("domain_expirations"), c("records_in")],
    [1n, 2n, 1n, 3n],
  );
});

Deno.test("after a reload that rebuilds the reader, side records reach the new one", async () => {
  const { running } = await start(DNS);
  running.inject("dns_raw", answer("before.example", "10.0.0.1", 300n));
  const report = await running.reload(parsePipeline("p.yaml", DNS.replace("1h", "2h")));
  assert.deepEqual(report.started, ["domains"]);
  running.inject("netflow", flow("10.0.0.1"));
  running.inject("dns_raw", answer("after.example", "10.0.0.2", 300n));
  running.inject("netflow", flow("10.0.0.2"));
  await running.stop();
  // A rebuilt dns_domain starts empty: what it knew went with the old one.
  assert.deepEqual(captured.get("out")!.map((r) => r.tags.dst_domain), ["", "after.example"]);
});

Deno.test("after a reload that rebuilds the sender, a kept reader gets the new one's records", async () => {
  const { running } = await start(GENERIC);
  running.inject("raw", rec("one"));
  const next = GENERIC.replace("inputs: [raw] }", "inputs: [raw], label: b }");
  const report = await running.reload(parsePipeline("p.yaml", next));
  assert.deepEqual(report.started, ["answers"]);
  assert.ok(report.kept.includes("reader"));
  running.inject("raw", rec("two"));
  await running.stop();
  assert.deepEqual(sides.get("reader")!.map(([, r]) => r.fields.what), ["one", "two"]);
});

Deno.test("records a stage emits while it is built reach its inputs readers", async () => {
  const { running } = await start(
    GENERIC.replace("inputs: [raw] }", "inputs: [raw], at_build: true }"),
  );
  await running.stop();
  assert.deepEqual(captured.get("out")!.map((r) => r.fields.what), ["built"]);
});

Deno.test({
  name: "side records a stage sends while it is built reach its side readers",
  async fn() {
    const { running, counters } = await start(
      GENERIC.replace("inputs: [raw] }", "inputs: [raw], at_build: true }"),
    );
    await running.stop();
    assert.equal(counters.get("side_records_out", { stage: "answers" }), 1n);
    assert.deepEqual(sides.get("reader")!.map(([, r]) => r.fields.what), ["built"]);
  },
});

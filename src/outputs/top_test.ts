/**
 * The `top` output as a stage: plain frames when standard output is not a terminal, the
 * terminal taken and given back, quitting through ctx.requestStop, the `--check` rule on
 * standard output, and the permissions `deno task top` runs with. (The view on a real pty,
 * with real traffic: test/kernel/top_test.ts.)
 */
import assert from "node:assert/strict";
import type { Record } from "../record.ts";
import { parsePipeline } from "../pipeline/load.ts";
import { permissionFlags } from "../pipeline/permissions.ts";
import { buildStage } from "../pipeline/testing.ts";
import { ConfigErrors } from "../errors.ts";
import { topOutput } from "./top.ts";
import { startTop, type Terminal } from "./top/view.ts";

const T0 = 1_764_000_000_000_000_000n;

/** A stand-in for the terminal: this test runs without a pty (test/kernel/top_test.ts has one). */
function fakeTerminal(interactive: boolean, cols = 100, rows = 30) {
  const frames: string[] = [], direct: string[] = [], raw: boolean[] = [];
  let keys: ((text: string) => void) | undefined;
  const terminal: Terminal = {
    interactive,
    color: false,
    size: () => ({ cols, rows }),
    write: (text) => {
      frames.push(text);
      return Promise.resolve();
    },
    writeSync: (text) => void direct.push(text),
    setRaw: (on) => void raw.push(on),
    readKeys: (fn) => keys = fn,
    onResize: () => {},
  };
  return { terminal, frames, direct, raw, press: (text: string) => keys!(text) };
}

function flow(port: number, time: bigint): Record {
  return {
    measurement: "netflow",
    tags: {
      direction: "incoming",
      dst_ip: "127.0.0.1",
      dst_port: "*",
      src_port: String(port),
      pid: "4242",
      process_name: "server",
      transport: "tcp",
      dst_domain: "",
    },
    fields: { bytes_read: 1000n, bytes_written: BigInt(port) },
    time,
  };
}

async function started(interactive: boolean, options = {}) {
  const fake = fakeTerminal(interactive);
  const def = { ...topOutput, build: (c: never, ctx: never) => startTop(c, ctx, fake.terminal) };
  const s = await buildStage(def, options, undefined, { inputSpanMs: 1000 });
  return { ...s, ...fake };
}

Deno.test("top: not on a terminal, a plain frame every `every`, with no escape codes", async () => {
  const t = await started(false, { every: "1s" });
  t.stage.push(flow(5201, T0));
  for (let s = 1n; s <= 3n; s++) {
    t.clock.advance(T0 + s * 1_000_000_000n);
    await new Promise((r) => setTimeout(r, 0)); // the frame written
  }
  await t.stage.flush("shutdown");
  await t.stage.close();
  assert.equal(t.frames.length, 3);
  const last = t.frames.at(-1)!;
  assert.ok(!last.includes("\x1b"), JSON.stringify(last));
  assert.match(last, /^ top \d\d:\d\d:\d\d │ probes: /);
  assert.match(last, /server +4242 +tcp +5201 +in +127\.0\.0\.1:\*/);
  for (const line of last.split("\n")) assert.ok(line.length <= 100);
  assert.deepEqual(t.direct, [], "no alternate screen, no raw mode");
  assert.deepEqual(t.raw, []);
});

Deno.test("top: 10,000 flows keep being drawn, and the frame time is a self-metric", async () => {
  const t = await started(false);
  // Distinct server ports, as the bench has them: ephemeral_port would not fold them.
  for (let s = 1; s <= 3; s++) {
    const time = T0 + BigInt(s) * 1_000_000_000n;
    for (let port = 10_000; port < 20_000; port++) t.stage.push(flow(port, time));
    t.clock.advance(time);
    await new Promise((r) => setTimeout(r, 0));
  }
  await t.stage.close();
  assert.equal(t.counters.get("frames_drawn", { stage: "top" }), 3n);
  assert.equal(t.counters.get("rows_kept", { stage: "top" }), 10_000n);
  assert.ok(t.counters.get("frame_time_max_us", { stage: "top" }) > 0n);
  assert.match(t.frames.at(-1)!, /Flows \(10000\)/);
  // Sorted by rate: the flow writing most comes first.
  assert.match(t.frames.at(-1)!.split("\n")[3], /19999/);
});

Deno.test("top: rows past max_rows are counted as records_dropped{reason=rows_full}", async () => {
  const t = await started(false, { max_rows: 10 });
  for (let port = 1; port <= 15; port++) t.stage.push(flow(port, T0));
  await t.stage.close();
  assert.equal(t.counters.get("records_dropped", { stage: "top", reason: "rows_full" }), 5n);
});

Deno.test("top: on a terminal it takes the screen, quits through ctx.requestStop, gives it back", async () => {
  const t = await started(true);
  assert.ok(t.direct.join("").includes("\x1b[?1049h"), "alternate screen");
  assert.deepEqual(t.raw, [true]);
  t.press("\t");
  assert.match(t.frames.at(-1)!, /▶ DNS/, "a key redraws at once");
  assert.ok(t.frames.at(-1)!.includes("\x1b[1;1H"), "lines drawn in place");
  t.press("\x03"); // Ctrl-C in raw mode
  assert.deepEqual(t.stopRequests, ["Ctrl-C"]);
  await t.stage.flush("shutdown");
  await t.stage.close();
  assert.deepEqual(t.raw, [true, false]);
  assert.ok(t.direct.at(-1)!.endsWith("\x1b[?25h\x1b[?1049l"), "cursor shown, screen given back");
});

const TOP_AND = (other: string) => `
version: 1
probes: { self: { type: collector } }
outputs:
  screen: { type: top, inputs: [self] }
  other: ${other}
`;

Deno.test("--check: top draws standard output alone: not with stdout, nor with another top", () => {
  for (
    const [other, line] of [["{ type: stdout, inputs: [self] }", 6], [
      "{ type: top, inputs: [self] }",
      6,
    ]]
  ) {
    assert.throws(() => parsePipeline("p.yaml", TOP_AND(other as string)), (e: ConfigErrors) => {
      assert.ok(e instanceof ConfigErrors);
      assert.equal(e.errors.length, 1);
      assert.equal(e.errors[0].path, "outputs.other.type");
      assert.equal(e.errors[0].line, line);
      assert.match(e.errors[0].reason, /outputs\.screen \(type top\) draws the terminal/);
      return true;
    });
  }
  parsePipeline("p.yaml", TOP_AND("{ type: file, inputs: [self], path: /tmp/x.jsonl }"));
});

Deno.test("deno task top: -P grants what examples/top.yaml needs, the terminal's variables too", async () => {
  const pipeline = parsePipeline("examples/top.yaml", await Deno.readTextFile("examples/top.yaml"));
  const flags = permissionFlags(pipeline);
  const env = flags.find((f) => f.startsWith("--allow-env="))!.slice("--allow-env=".length).split(
    ",",
  );
  for (const v of ["TERM", "NO_COLOR", "COLUMNS", "LINES"]) {
    assert.ok(env.includes(v), flags.join(" "));
  }
  const deno = JSON.parse(await Deno.readTextFile("deno.json"));
  const granted: string[] = deno.permissions.default.env;
  for (const v of env) assert.ok(granted.includes(v), `-P grants ${v}`);
  assert.match(deno.tasks.top, / -P .*src\/main\.ts --pipeline examples\/top\.yaml$/);
});

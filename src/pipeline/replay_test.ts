import assert from "node:assert/strict";
import { Counters } from "../counters.ts";
import type { Logger } from "../log.ts";
import { parsePipeline } from "./load.ts";
import { replayFile } from "./replay.ts";

const T0 = 1_767_225_600_000_000_000n; // 2026-01-01T00:00:00Z
const SECOND = 1_000_000_000n;
const YEAR = 365n * 86_400n * SECOND;

function line(time: bigint, cmd = "ls"): string {
  return `{"probe":"bash","measurement":"bash","tags":{"host":"h","source":"bash"},` +
    `"fields":{"cmd":"${cmd}","pid":"1"},"time":${time}}`;
}

/** Replays `lines` through `yaml` (whose outputs write to `${OUT}`); the output's lines. */
async function replay(yaml: string, lines: string[]) {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/out.jsonl`;
    const recording = `${dir}/recording.ndjson`;
    await Deno.writeTextFile(recording, lines.join("\n") + "\n");
    const pipeline = parsePipeline("test.yaml", yaml.replaceAll("${OUT}", out));
    const counters = new Counters();
    const warnings: string[] = [];
    const log: Logger = { info() {}, warn: (m) => warnings.push(m), debug() {} };
    const started = performance.now();
    const injected = await replayFile(pipeline, recording, { host: "h", counters, log });
    const ms = performance.now() - started;
    const written = (await Deno.readTextFile(out)).split("\n").filter(Boolean)
      .map((l) => JSON.parse(l));
    return { injected, ms, written, counters, warnings };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** bash -> per_minute (a count) -> `windows` after it -> a file output reading `last`. */
function perMinute(windows = "", last = "per_minute"): string {
  return `version: 1
probes:
  bash: { type: bash }
windows:
  per_minute:
    inputs: [bash]
    every: 60s
    fields: { n: { agg: count } }
${windows}outputs:
  out: { type: file, inputs: [${last}], path: "\${OUT}", format: json }
`;
}

Deno.test("replay jumps a one-year gap in milliseconds; windows close at their own boundaries", async () => {
  const { injected, ms, written } = await replay(perMinute(), [
    line(T0 + 5n * SECOND),
    line(T0 + 30n * SECOND),
    line(T0 + YEAR + 10n * SECOND),
  ]);
  assert.equal(injected, 3);
  // Stepping through each 1 s tick of the loss watch took 7 s for a year.
  assert.ok(ms < 1000, `a one-year gap took ${ms.toFixed(0)} ms`);
  assert.deepEqual(written.map((r) => [r.fields.n, BigInt(r.time)]), [
    [2, T0 + 60n * SECOND], // the window before the gap closes at its boundary, not the gap's end
    [1, T0 + YEAR + 10n * SECOND], // the last one at the end of the replay
  ]);
});

Deno.test("replay: a window that reads a window gets its records at its own tick in the gap", async () => {
  // per_minute emits at T0+60s, inside the gap; per_10s, which reads it and ticked at T0+10s
  // already, must still close at T0+70s rather than at the end of the gap.
  const { written } = await replay(
    perMinute(
      `  per_10s:
    inputs: [per_minute]
    every: 10s
    fields: { total: { from: n, agg: sum } }
`,
      "per_10s",
    ),
    [line(T0 + 5n * SECOND), line(T0 + 6n * SECOND), line(T0 + YEAR)],
  );
  assert.deepEqual(written.map((r) => [r.fields.total, BigInt(r.time)]), [
    [2, T0 + 70n * SECOND],
    [1, T0 + YEAR], // what per_minute held at the end, flushed through per_10s
  ]);
});

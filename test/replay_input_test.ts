/**
 * `--replay` on recordings that are not what `--record` writes, through the real collector
 * (`deno task run`'s command line): a bad line stops the replay with one line naming the file
 * and the line and exit code 2, after what came before it went out; `--replay-skip-bad` skips
 * and counts such lines instead. No kernel: a replay loads no probe.
 */
import assert from "node:assert/strict";
import { explainedCommand, output, ROOT, runTaskArgs, tempPipeline } from "./_run_command.ts";
import { blockingPipeline, startStandin } from "./_http_standin.ts";
import { Collector } from "./kernel/_collector.ts";

const T0 = 1_795_622_018_000_000_000n;

function record(i: number): string {
  return `{"probe":"bash","measurement":"bash","tags":{"host":"h","source":"bash"},` +
    `"fields":{"cmd":"cmd ${i}","pid":"${i}"},"time":${T0 + BigInt(i)}}`;
}

const PIPELINE = `version: 1
probes:
  bash: { type: bash }
outputs:
  console: { type: stdout, inputs: [bash], format: json }
`;

/** Writes `text` as a recording under build/tmp/ (which `deno task run` may read). */
function recording(text: string | Uint8Array): string {
  const path = tempPipeline(""); // a temp file the test process removes at its end
  if (typeof text === "string") Deno.writeTextFileSync(path, text);
  else Deno.writeFileSync(path, text);
  return path;
}

async function replay(file: string, ...flags: string[]) {
  const result = await output(Deno.execPath(), [
    ...runTaskArgs(),
    "--pipeline",
    tempPipeline(PIPELINE),
    "--replay",
    file,
    ...flags,
  ]);
  const cmds = result.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l).fields.cmd);
  return { ...result, cmds };
}

/** The stderr lines that say something went wrong, without the replay's own info lines. */
function problems(stderr: string): string[] {
  return stderr.split("\n").filter((l) => /^(error|warning):/.test(l));
}

const BAD_SHAPES = [
  ['"fields":5', '"fields" must map names to values'],
  ['"fields":"abc"', '"fields" must map names to values'],
  ['"tags":["a","b"]', '"tags" must map names to strings'],
] as const;

for (const [shape, why] of BAD_SHAPES) {
  Deno.test(`--replay stops at a line with ${shape}: FILE: line N:, exit 2, earlier records out`, async () => {
    const key = shape.startsWith('"tags"') ? "tags" : "fields";
    const bad = record(2).replace(new RegExp(`"${key}":\\{[^}]*\\}`), shape);
    assert.ok(bad.includes(shape), bad);
    const file = recording(`${record(1)}\n${bad}\n${record(3)}\n`);
    const run = await replay(file);
    assert.equal(run.code, 2, run.stderr);
    assert.deepEqual(problems(run.stderr), [`error: ${file}: line 2: ${why}`]);
    assert.ok(!run.stderr.includes("    at "), "no stack trace");
    assert.deepEqual(run.cmds, ["cmd 1"], "what came before the bad line went out");
  });
}

Deno.test("--replay-skip-bad skips lines that are not records, counts them, and goes on", async () => {
  const file = recording(
    [record(1), '{"probe":"bash","fields":5}', record(2), "not json", record(3)].join("\n") + "\n",
  );
  const run = await replay(file, "--replay-skip-bad");
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(run.cmds, ["cmd 1", "cmd 2", "cmd 3"]);
  const [first, count] = problems(run.stderr);
  assert.match(first, new RegExp(`^warning: ${file}: skipping line 2: "measurement" must be`));
  assert.match(count, /^warning: collector: 2 recording lines skipped \(not a recorded record/);
  assert.match(run.stderr, /summary: .*replay_skipped_lines=2/);
});

Deno.test("--replay refuses a line longer than 1 MiB without reading it whole; --replay-skip-bad skips it", async () => {
  const long = new TextEncoder().encode(
    `${record(1)}\n${record(9).replace("cmd 9", "x".repeat(4 << 20))}\n${record(2)}\n`,
  );
  const file = recording(long);
  const stopped = await replay(file);
  assert.equal(stopped.code, 2, stopped.stderr);
  assert.deepEqual(problems(stopped.stderr), [
    `error: ${file}: line 2: longer than 1MiB: not a record`,
  ]);
  assert.deepEqual(stopped.cmds, ["cmd 1"]);
  const skipped = await replay(file, "--replay-skip-bad");
  assert.equal(skipped.code, 0, skipped.stderr);
  assert.deepEqual(skipped.cmds, ["cmd 1", "cmd 2"]);
});

Deno.test("--replay of a directory says so in one line naming it, exit 2", async () => {
  const dir = `${ROOT}build/tmp`;
  const run = await replay(dir);
  assert.equal(run.code, 2, run.stderr);
  assert.deepEqual(problems(run.stderr), [
    `error: cannot read recording ${dir}: it is a directory; give the recording file in it`,
  ]);
});

/**
 * The collector replaying 200 records, with the command `--explain` prints for it, into an http
 * output with `when_full: block` and room for 2 records ({@linkcode blockingPipeline}) whose
 * receiver (at `url`) answers 503: as `block` says, the replay waits for it, until a stop.
 */
async function heldUpReplay(url: string, ...flags: string[]): Promise<Collector> {
  const pipeline = tempPipeline(blockingPipeline(url));
  const file = recording(Array.from({ length: 200 }, (_, i) => record(i)).join("\n") + "\n");
  const words = await explainedCommand(pipeline, ["--replay", file]);
  const at = words.indexOf("--pipeline");
  return new Collector([...words.slice(at), ...flags], [], [
    "run",
    "--quiet",
    "--no-prompt",
    ...words.slice(2, at),
  ]);
}

/** The collector's exit status, or undefined if it still runs after `ms`. */
async function exitWithin(collector: Collector, ms: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const status = await Promise.race([
    collector.exited(),
    new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), ms)),
  ]);
  clearTimeout(timer);
  return status;
}

Deno.test("--replay --duration ends a replay held up by a receiver that refuses (when_full: block), counting what was not sent", async () => {
  await using standin = startStandin(() => new Response("busy", { status: 503 }));
  await using collector = await heldUpReplay(standin.url, "--duration", "1s");
  const status = await exitWithin(collector, 10_000);
  assert.ok(status, `still running after 10 s:\n${collector.stderr}`);
  assert.equal(status.code, 0, collector.stderr);
  assert.match(collector.stderr, /stopping \(duration\): the rest of .* is not read; flushing/);
  assert.match(collector.stderr, /replayed \d+ records from .* \(stopped: duration\)/);
  const lost = /records_dropped\{reason=shutdown,stage=influx\}=(\d+)/.exec(collector.stderr);
  assert.ok(lost && Number(lost[1]) > 0, collector.stderr);
  assert.ok(standin.requests.length > 1, "it was sending until the stop");
});

Deno.test("--replay: SIGTERM ends a replay held up by a receiver that refuses, flushed and summarised", async () => {
  await using standin = startStandin(() => new Response("busy", { status: 503 }));
  await using collector = await heldUpReplay(standin.url);
  await standin.waitFor(3, 30_000); // replaying, and waiting on the receiver
  collector.signal("SIGTERM");
  const status = await exitWithin(collector, 5000);
  assert.ok(status, `still running 5 s after SIGTERM:\n${collector.stderr}`);
  assert.equal(status.code, 0, collector.stderr);
  assert.match(collector.stderr, /stopping \(SIGTERM\)/);
  assert.match(collector.stderr, /summary: .*records_dropped\{reason=shutdown,stage=influx\}=\d+/);
});

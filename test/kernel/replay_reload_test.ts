/**
 * Record, replay and reload with the real `bash` probe: a recorded session replays to the same
 * output twice, byte for byte; a reload that adds a filter applies exactly between two
 * commands, a broken file changes nothing, and a window open across reloads keeps its sums.
 */
import assert from "node:assert/strict";
import { decodeLine } from "../../src/pipeline/recording.ts";
import { ROOT } from "../_run_command.ts";
import { Collector, tempPipeline } from "./_collector.ts";
import { kernelTest } from "./_kernel.ts";
import { rootShell, Tmux } from "./_tmux.ts";

const NEEDS = { objects: ["bash"], tools: ["tmux"] };

const WITH_WINDOW = `version: 1
probes:
  bash: { type: bash }
windows:
  per_hour: { inputs: [bash], every: 1h, fields: { commands: { agg: count } } }
outputs:
  out: { type: stdout, inputs: [bash, per_hour] }
`;

kernelTest("a recorded bash session replays to byte-identical output, twice", NEEDS, async () => {
  const nonce = crypto.randomUUID().slice(0, 8);
  const recording = `${ROOT}build/tmp/recording-${nonce}.ndjson`;
  const pipeline = tempPipeline(WITH_WINDOW);
  await using tmux = new Tmux();
  await rootShell(tmux);
  {
    await using live = new Collector(["--pipeline", pipeline, "--record", recording], [
      `--allow-write=${recording}`,
    ]);
    await live.attached();
    for (const c of ["one", "two", "three"]) await tmux.type("root", `echo ${c} ${nonce}`);
    await live.waitFor("three commands", () => live.stdout.includes(`echo three ${nonce}`));
    assert.equal((await live.stop()).code, 0);
  }
  const recordingLines = Deno.readTextFileSync(recording).trim().split("\n").map((l, i) =>
    decodeLine(l, i + 1)
  );
  // The first line keeps this host's facts (its port range), so a replay elsewhere uses them.
  assert.equal(recordingLines[0].kind, "header");
  const recorded = recordingLines.flatMap((l) => l.kind === "record" ? [l.recorded] : []);
  const ours = recorded.filter((r) => String(r.record.fields.cmd).includes(nonce));
  assert.deepEqual(ours.map((r) => [r.probe, r.record.fields.cmd]), [
    ["bash", `echo one ${nonce}`],
    ["bash", `echo two ${nonce}`],
    ["bash", `echo three ${nonce}`],
  ]);

  const replay = async () => {
    const c = new Collector(["--pipeline", pipeline, "--replay", recording]);
    const status = await c.exited();
    assert.equal(status.code, 0, c.stderr);
    assert.match(c.stderr, new RegExp(`replayed ${recorded.length} records`));
    return c.stdout;
  };
  const first = await replay(), second = await replay();
  assert.equal(first, second, "the same recording gives byte-identical output");
  const lines = first.trim().split("\n").map((l) => JSON.parse(l));
  const commands = lines.filter((l) => l.measurement === "bash" && "commands" in l.fields);
  const total = commands.reduce((sum, l) => sum + l.fields.commands, 0);
  // Side records (the bash probe's process events, for command_activity) reach no window.
  const downstream = recorded.filter((r) => !r.side);
  assert.ok(recorded.some((r) => r.side && r.record.measurement === "bash_process"));
  assert.equal(total, downstream.length, "the window counted every replayed record");
  for (const c of ["one", "two", "three"]) {
    assert.equal(lines.filter((l) => l.fields.cmd === `echo ${c} ${nonce}`).length, 1);
  }
});

kernelTest(
  "reload under a live bash probe: exactly once, filtered only after, a bad file changes nothing",
  NEEDS,
  async () => {
    const nonce = crypto.randomUUID().slice(0, 8);
    const file = tempPipeline(WITH_WINDOW);
    await using tmux = new Tmux();
    await rootShell(tmux);
    await using c = new Collector(["--pipeline", file]);
    await c.attached();
    const type = (s: string) => tmux.type("root", `echo ${s} ${nonce}`);
    const arrived = (s: string) => c.stdout.includes(`"echo ${s} ${nonce}"`);

    await type("drop-me-before");
    await c.waitFor("the first command", () => arrived("drop-me-before"));
    Deno.writeTextFileSync(
      file,
      WITH_WINDOW.replace(
        "outputs:",
        "transforms:\n  no_drop: { type: filter, inputs: [bash], drop: { field: cmd, contains: drop-me } }\noutputs:",
      ).replace("inputs: [bash, per_hour]", "inputs: [no_drop, per_hour]"),
    );
    c.signal("SIGHUP");
    await type("during"); // typed while the reload runs: it arrives once, either way
    await c.waitFor("the reload", () => c.stderr.includes("reloaded"));
    assert.match(c.stderr, /reloaded .*: kept 3, started 1 \(no_drop\), stopped 0/);
    await type("drop-me-after");
    await type("after");
    await c.waitFor("the command after the reload", () => arrived("after"));

    Deno.writeTextFileSync(file, "version: 1\nprobes: [this is not a pipeline\n");
    c.signal("SIGHUP");
    await c.waitFor("the refused reload", () => c.stderr.includes("refused"));
    await type("drop-me-broken");
    await type("after-broken");
    await c.waitFor("the last command", () => arrived("after-broken"));
    assert.equal((await c.stop()).code, 0);

    const records = c.records();
    const count = (s: string) =>
      records.filter((r) => r.fields.cmd === `echo ${s} ${nonce}`).length;
    for (const s of ["drop-me-before", "during", "after", "after-broken"]) {
      assert.equal(
        count(s),
        1,
        `${s} once`,
      );
    }
    for (const s of ["drop-me-after", "drop-me-broken"]) assert.equal(count(s), 0, `${s} filtered`);
    assert.match(
      c.stderr,
      /warning: reload \(SIGHUP\) refused, the running pipeline is unchanged: \S+\.yaml:\d+:\d+: /,
    );
    const windowed = records.filter((r) => "commands" in r.fields);
    const total = windowed.reduce((sum, r) => sum + Number(r.fields.commands), 0);
    assert.equal(total, 6, "the window, kept across both reloads, counted all six commands");
  },
);

kernelTest(
  "--watch reloads on a file change; a reload needing a missing permission is refused, naming the flag",
  NEEDS,
  async () => {
    const file = tempPipeline(WITH_WINDOW);
    await using c = new Collector(["--pipeline", file, "--watch"]);
    await c.attached();
    const out = `${ROOT}build/tmp/watch-${crypto.randomUUID().slice(0, 8)}.jsonl`;
    // A file output needs --allow-write, which deno task run does not grant.
    Deno.writeTextFileSync(
      file,
      WITH_WINDOW + `  log: { type: file, inputs: [bash], path: ${out} }\n`,
    );
    await c.waitFor("the refused reload", () => c.stderr.includes("refused"));
    assert.match(
      c.stderr,
      new RegExp(
        `warning: reload \\(file changed\\) refused, the running pipeline is unchanged: it needs --allow-write=${out}, which this process does not hold\n`,
      ),
    );
    Deno.writeTextFileSync(file, WITH_WINDOW.replace("every: 1h", "every: 30m"));
    await c.waitFor("the reload", () => c.stderr.includes("reloaded"));
    assert.match(
      c.stderr,
      /reloaded .* \(file changed\): kept 2, started 1 \(per_hour\), stopped 1 \(per_hour\)/,
    );
    assert.equal((await c.stop()).code, 0);
  },
);

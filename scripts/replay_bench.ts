/**
 * How fast `--replay` runs: writes a recording of N bash records (default 1,000,000) to
 * build/tmp/, then times `deno task run --replay` on the default pipeline (redact + stdout,
 * written to /dev/null) and on a window pipeline. Usage: deno run -A scripts/replay_bench.ts [N]
 */
import { encodeRecorded } from "../src/pipeline/recording.ts";

const N = Number(Deno.args[0] ?? 1_000_000);
const ROOT = new URL("../", import.meta.url).pathname;
const file = `${ROOT}build/tmp/bench-${N}.ndjson`;
Deno.mkdirSync(`${ROOT}build/tmp`, { recursive: true });

const COMMANDS = [
  "ls -la",
  "git status",
  "mysql -u root -psecret -e 'select 1'",
  "make test",
  "export API_TOKEN=abc123",
];
const out = await Deno.open(file, { write: true, create: true, truncate: true });
const enc = new TextEncoder();
const t0 = 1_767_225_600_000_000_000n;
for (let i = 0; i < N; i += 10_000) {
  let chunk = "";
  for (let j = i; j < Math.min(N, i + 10_000); j++) {
    const cmd = COMMANDS[j % COMMANDS.length];
    chunk += encodeRecorded("bash", {
      measurement: "bash",
      tags: { host: "bench", source: "bash" },
      fields: {
        cmd,
        message: `2026-01-01T00:00:00.000Z pid:\`${j % 500}\` user:\`root\` cmd:\`${cmd}\``,
        pid: String(j % 500),
        user: "root",
      },
      time: t0 + BigInt(j) * 1_000_000n, // 1000 commands a second
    }) + "\n";
  }
  await out.write(enc.encode(chunk));
}
out.close();
console.log(`wrote ${N} records to ${file} (${(Deno.statSync(file).size / 1e6).toFixed(0)} MB)`);

const WINDOW = `${ROOT}build/tmp/bench-window.yaml`;
Deno.writeTextFileSync(
  WINDOW,
  `version: 1
probes:
  bash: { type: bash }
windows:
  per_minute: { inputs: [bash], every: 60s, group_by: [], fields: { n: { agg: count } } }
outputs:
  out: { type: stdout, inputs: [per_minute] }
`,
);
for (
  const [name, pipeline] of [["default pipeline (redact + stdout)", "pipeline.yaml"], [
    "window only",
    WINDOW,
  ]]
) {
  const started = performance.now();
  const result = await new Deno.Command("deno", {
    args: ["task", "--quiet", "run", "--pipeline", pipeline, "--replay", file],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - started) / 1000;
  const ok = result.success ? "" : ` FAILED: ${new TextDecoder().decode(result.stderr)}`;
  console.log(
    `${name}: ${seconds.toFixed(1)} s, ${(N / seconds / 1000).toFixed(0)}k records/s${ok}`,
  );
}

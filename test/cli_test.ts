/**
 * The real entry point, spawned with `deno task run`'s flags. Only runs that stop before the
 * kernel is touched (help, version, bad flags, bad pipelines), so no root is needed.
 */
import assert from "node:assert/strict";
import { USAGE } from "../src/cli.ts";
import { VERSION } from "../src/version.ts";
import { explainedCommand, output, runTaskArgs, shellWords, tempPipeline } from "./_run_command.ts";
import { freePort } from "./_server_process.ts";
import { Collector } from "./kernel/_collector.ts";

/** Runs `deno task run`'s command with `args` from the repository root. */
function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return output(Deno.execPath(), [...runTaskArgs(), ...args]);
}

/** Asserts a failed run: `code`, nothing on stdout, and one `error:` line without a stack. */
function assertOneLineError(
  result: { code: number; stdout: string; stderr: string },
  code: number,
): string {
  assert.equal(result.code, code, result.stderr);
  assert.equal(result.stdout, "");
  const lines = result.stderr.split("\n");
  assert.equal(lines.pop(), "", "stderr ends with a newline");
  assert.equal(lines.length, 1, `expected one line, got:\n${result.stderr}`);
  assert.match(lines[0], /^error: /);
  assert.equal(lines[0].includes("    at "), false);
  return lines[0];
}

Deno.test("the collector's --help prints the usage on stdout and exits 0", async () => {
  const { code, stdout, stderr } = await run("--help");

  assert.equal(code, 0, stderr);
  assert.equal(stdout, USAGE);
  assert.match(stdout, /^Usage: deno task run \[options\]/);
  assert.equal(stderr, "");
});

Deno.test("the collector's -h is --help", async () => {
  const { code, stdout } = await run("-h");

  assert.equal(code, 0);
  assert.equal(stdout, USAGE);
});

Deno.test("the collector's --version prints its version and Deno's and exits 0", async () => {
  const { code, stdout, stderr } = await run("--version");

  assert.equal(code, 0, stderr);
  assert.equal(stdout, `ebpf-collector ${VERSION} (deno ${Deno.version.deno})\n`);
  assert.equal(stderr, "");
});

Deno.test("the collector exits 2 on an unknown flag with one error line and no stack", async () => {
  const line = assertOneLineError(await run("--bogus"), 2);

  assert.equal(line, "error: Unknown option '--bogus' (see --help)");
});

Deno.test("the collector exits 2 on a flag missing its value with one error line", async () => {
  const line = assertOneLineError(await run("--pipeline", "--debug"), 2);

  assert.match(line, /'--pipeline'/);
});

Deno.test("the collector exits 2 on a bad --duration with one error line quoting it", async () => {
  const line = assertOneLineError(await run("--duration", "forever"), 2);

  assert.match(line, /^error: --duration: invalid duration "forever"/);
});

Deno.test("the collector exits 2 on a --duration a timer cannot hold instead of stopping at once", async () => {
  const line = assertOneLineError(await run("--duration", "1000h"), 2);

  assert.equal(
    line,
    'error: --duration: invalid duration "1000h": ' +
      "longer than 596h31m23.647s, the longest a timer can wait",
  );
});

Deno.test("the collector exits 2 on a missing pipeline file with one line naming it", async () => {
  const line = assertOneLineError(await run("--pipeline", "no-such-pipeline.yaml"), 2);

  assert.equal(line, "error: cannot read pipeline no-such-pipeline.yaml: no such file");
});

Deno.test("the collector exits 2 on a pipeline error, naming file:line:column", async () => {
  const file = tempPipeline(
    "version: 1\nprobes:\n  bash:\n    type: bash\n    max_cmd_bytes: 0\n" +
      "outputs:\n  console: { type: stdout, inputs: [bash] }\n",
  );
  try {
    const line = assertOneLineError(await run("--pipeline", file), 2);

    assert.equal(
      line,
      `error: ${file}:5:20: probes.bash.max_cmd_bytes: expected an integer from 1 to 16384, got 0`,
    );
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("the collector reports every pipeline error, one per line, and exits 2", async () => {
  const file = tempPipeline(
    "version: 2\nprobes:\n  bash: { type: bash }\n" +
      "outputs:\n  console: { type: stdout, inputs: [bash], format: xml }\n",
  );
  try {
    const { code, stdout, stderr } = await run("--pipeline", file);

    assert.equal(code, 2);
    assert.equal(stdout, "");
    assert.deepEqual(stderr.trimEnd().split("\n"), [
      `error: ${file}:1:10: version: must be 1, got 2`,
      `error: ${file}:5:52: outputs.console.format: expected one of json, line_protocol, got "xml"`,
    ]);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("a ${VAR} expansion too large for a string exits 2 with one positioned line", async () => {
  // 6,000 copies of 100 KB: 600 MB, past V8's longest string (a bare RangeError before).
  const file = tempPipeline(
    `version: 1\nprobes:\n  self: { type: collector }\noutputs:\n  out:\n` +
      `    type: file\n    inputs: [self]\n    path: "${"${EBPF_BIG}".repeat(6000)}"\n`,
  );
  const result = await output(Deno.execPath(), [...runTaskArgs(), "--pipeline", file, "--check"], {
    env: { EBPF_BIG: "x".repeat(100_000) },
  });
  const line = assertOneLineError(result, 2);

  assert.equal(
    line,
    `error: ${file}:8:11: outputs.out.path: \${...} in this file expand to more than 4MiB; ` +
      "pass large values as files",
  );
});

Deno.test("--explain's command, pasted into bash, runs the collector and nothing else", async () => {
  const file = tempPipeline(`version: 1
probes:
  self: { type: collector }
outputs:
  a: { type: file, inputs: [self], path: "build/tmp/a b;touch PWNED;x" }
  b: { type: file, inputs: [self], path: "\${EBPF_D:-$(touch PWNED2)}/\`touch PWNED3\`.jsonl" }
`);
  assert.equal((await run("--pipeline", file, "--check")).code, 0);
  const explained = await run("--pipeline", file, "--explain");
  assert.equal(explained.code, 0, explained.stderr);
  const line = explained.stdout.trimEnd().split("\n").at(-1)!.trim();
  const dir = await Deno.makeTempDir({ prefix: "explain_paste_" });
  try {
    const unset = await shellWords(line, {}, dir);
    const set = await shellWords(line, { EBPF_D: "/var/d" }, dir);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), [], "pasting it ran something");
    const writes = (words: string[]) => words.find((w) => w.startsWith("--allow-write="));
    assert.equal(
      writes(unset),
      "--allow-write=build/tmp/a b;touch PWNED;x,$(touch PWNED2)/`touch PWNED3`.jsonl",
    );
    assert.equal(
      writes(set),
      "--allow-write=build/tmp/a b;touch PWNED;x,/var/d/`touch PWNED3`.jsonl",
    );
    assert.deepEqual(set.slice(-2), ["--pipeline", file]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a file output path with a comma is refused: it would grant a second path", async () => {
  const file = tempPipeline(
    "version: 1\nprobes:\n  self: { type: collector }\noutputs:\n" +
      '  a: { type: file, inputs: [self], path: "/tmp/x,/etc/cron.d/evil" }\n',
  );
  const line = assertOneLineError(await run("--pipeline", file, "--check"), 2);
  assert.match(line, /:5:42: outputs\.a\.path: path "\/tmp\/x,\/etc\/cron\.d\/evil" has a comma/);
});

Deno.test("a receiver that is down is named in warnings without the ${VAR} password in its URL", async () => {
  const port = freePort(); // nothing listens there
  const file = tempPipeline(`version: 1
probes:
  self: { type: collector, every: 1s }
outputs:
  a: { type: http, inputs: [self], preset: influxdb, database: x, max_backoff: 1s, url: "http://admin:\${EBPF_PW:-none}@127.0.0.1:${port}" }
`);
  const words = await explainedCommand(file);
  const result = await output(Deno.execPath(), [...words.slice(1), "--duration", "3s"], {
    env: { EBPF_PW: "s3cr3t-pw" },
  });
  assert.equal(result.code, 0, result.stderr);
  assert.ok(!result.stderr.includes("s3cr3t"), result.stderr);
  assert.match(
    result.stderr,
    new RegExp(`a: cannot send to http://admin:\\$\\{EBPF_PW:-none\\}@127\\.0\\.0\\.1:${port}: `),
  );
});

Deno.test("a start-up error shows a ${VAR} password of the pipeline as its template, never its value", async () => {
  // EBPF_PW is a URL's password, and also names the file output's file: the error naming the
  // --allow-write this process lacks would carry it.
  const file = tempPipeline(`version: 1
probes:
  bash: { type: bash }
outputs:
  a: { type: http, inputs: [bash], preset: influxdb, database: x, url: "http://admin:\${EBPF_PW}@127.0.0.1:8086" }
  f: { type: file, inputs: [bash], path: "build/tmp/\${EBPF_PW}.jsonl" }
`);
  const result = await output(
    Deno.execPath(),
    [...runTaskArgs(), "--pipeline", file, "--replay", tempPipeline("")],
    { env: { EBPF_PW: "s3cr3t-pw" } },
  );
  const line = assertOneLineError(result, 2);
  assert.ok(!line.includes("s3cr3t"), line);
  assert.match(line, /needs --allow-write=build\/tmp\/\$\{EBPF_PW\}\.jsonl, which this process/);
});

Deno.test("a user regex without V8's linear-time engine is refused at load, naming the flag", async () => {
  const file = tempPipeline(`version: 1
probes:
  self: { type: collector }
transforms:
  f: { type: filter, inputs: [self], drop: { tag: stage, regex: "^(a+)+$" } }
outputs:
  out: { type: stdout, inputs: [f] }
`);
  const without = runTaskArgs().filter((a) => !a.startsWith("--v8-flags="));
  const line = assertOneLineError(
    await output(Deno.execPath(), [...without, "--pipeline", file, "--check"]),
    2,
  );
  assert.match(
    line,
    /:5:65: transforms\.f\.drop\.regex: user regexes run on V8's linear-time engine/,
  );
  assert.match(line, /add --v8-flags=--enable-experimental-regexp-engine/);
  assert.equal((await run("--pipeline", file, "--check")).code, 0, "deno task run has it");
});

Deno.test("a pipeline outside what --allow-read grants is refused in one line naming the flag", async () => {
  const file = await Deno.makeTempFile({ suffix: ".yaml" }); // in /tmp: outside the grant
  try {
    await Deno.writeTextFile(file, "version: 1\n");
    const line = assertOneLineError(await run("--pipeline", file), 2);
    assert.match(
      line,
      new RegExp(`^error: cannot read pipeline ${file}: .*does not hold --allow-read=${file}`),
    );
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("--test on a pipeline whose expectation is wrong exits 1 with a diff naming the stage", async () => {
  const file = tempPipeline(`version: 1
probes:
  bash: { type: bash }
transforms:
  redact_secrets: { type: redact, inputs: [bash] }
outputs:
  console: { type: stdout, inputs: [redact_secrets] }
tests:
  - name: passwords are masked
    input: { stage: redact_secrets, records: [{ fields: { cmd: "mysql -psecret" } }] }
    expect: { records: [{ fields: { cmd: "mysql -p***" } }] }
  - name: a wrong expectation
    input: { stage: redact_secrets, records: [{ fields: { cmd: "mysql -psecret" } }] }
    expect: { records: [{ fields: { cmd: "mysql -psecret" } }] }
`);
  const { code, stdout } = await run("--pipeline", file, "--test");
  assert.equal(code, 1);
  assert.equal(
    stdout,
    `ok   passwords are masked
FAIL a wrong expectation
     stage redact_secrets: record 1: fields.cmd: expected "mysql -psecret", got "mysql -p***"
       got: {"measurement":"test","tags":{"host":"test-host","source":"test"},"fields":{"cmd":"mysql -p***"},"time":1767225600000000000}
${file}: 1 passed, 1 failed
`,
  );
  // Fix the wrong expectation: the same command now passes.
  const wrong = 'expect: { records: [{ fields: { cmd: "mysql -psecret" } }] }';
  const right = 'expect: { records: [{ fields: { cmd: "mysql -p***" } }] }';
  Deno.writeTextFileSync(file, Deno.readTextFileSync(file).replace(wrong, right));
  assert.equal((await run("--pipeline", file, "--test")).code, 0);
});

Deno.test("--replay hands recorded DNS answers to dns_domain, so replayed flows get dst_domain", async () => {
  const recording = tempPipeline(
    [
      '{"probe":"dns","side":true,"measurement":"dns_answer","tags":{"host":"h"},"fields":{"name":"svc.test","address":"127.0.0.9","ttl":30},"time":1795622018000000000}',
      '{"probe":"flows","measurement":"netflow","tags":{"host":"h","source":"netflow","dst_ip":"127.0.0.9","dst_port":"80","dst_domain":""},"fields":{"bytes_written":10},"time":1795622019000000000}',
      '{"probe":"flows","measurement":"netflow","tags":{"host":"h","source":"netflow","dst_ip":"127.0.0.10","dst_port":"80","dst_domain":""},"fields":{"bytes_written":20},"time":1795622019500000000}',
    ].join("\n") + "\n",
  );
  const pipeline = tempPipeline(`version: 1
probes:
  dns: { type: dns }
  flows: { type: netflow }
transforms:
  named: { type: dns_domain, inputs: [flows], answers_from: dns }
outputs:
  out: { type: stdout, inputs: [named], format: json }
`);
  const { code, stdout, stderr } = await run("--pipeline", pipeline, "--replay", recording);
  assert.equal(code, 0, stderr);
  const lines = stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => [l.tags.dst_ip, l.tags.dst_domain]), [
    ["127.0.0.9", "svc.test"],
    ["127.0.0.10", ""],
  ]);
});

Deno.test("a second SIGINT exits at once when the flush waits on a receiver that is down", async () => {
  // Nothing is collected from the kernel: the collector probe reports on itself, and the http
  // output blocks on a loopback port where nothing listens (a receiver that is down).
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const pipeline = tempPipeline(`version: 1
probes:
  self: { type: collector, every: 100ms }
outputs:
  down:
    type: http
    inputs: [self]
    preset: influxdb
    url: http://127.0.0.1:${port}
    database: x
    batch_size: 1
    buffer_records: 1
    max_backoff: 100ms
`);
  await using collector = new Collector(["--pipeline", pipeline], [
    `--allow-net=127.0.0.1:${port}`,
  ]);
  await collector.attached();
  await new Promise((r) => setTimeout(r, 700)); // reports pile up behind the blocked output
  collector.signal("SIGINT");
  await collector.waitFor(
    "the stop to begin",
    () => collector.stderr.includes("stopping (SIGINT)"),
  );
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(!collector.stderr.includes("summary:"), "still flushing: the receiver never answers");
  const status = await collector.stop("SIGINT");
  assert.equal(status.code, 130);
  assert.match(collector.stderr, /SIGINT again: exiting now, without finishing the flush/);
  assert.match(collector.stderr, /summary: .*records_in\{stage=down\}=\d+/);
});

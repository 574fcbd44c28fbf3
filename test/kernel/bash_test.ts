/**
 * The `bash` set end to end, as a user sees it: interactive shells on real ptys, started
 * *before* the collector attaches, then commands typed into them; the collector's stdout must
 * hold each command exactly once with the right user, pid and text.
 */
import assert from "node:assert/strict";
import { Collector, tempPipeline } from "./_collector.ts";
import { ROOT } from "../_run_command.ts";
import { kernelTest } from "./_kernel.ts";
import { BASH, createUser, PROMPT, rootShell, Tmux } from "./_tmux.ts";

const NEEDS = { objects: ["bash"], tools: ["tmux", "useradd", "setpriv"] };

const PIPELINE = `version: 1
probes:
  shell:
    type: bash
outputs:
  out:
    type: stdout
    inputs: [shell]
    format: json
`;

kernelTest(
  "bash probe captures each typed command once, with user, pid and full text",
  NEEDS,
  async () => {
    const nonce = crypto.randomUUID().slice(0, 8);
    await using user = await createUser();
    await using tmux = new Tmux();
    // Both shells wait at their prompt, inside readline, before the probe exists.
    const rootPid = await tmux.start("root", BASH);
    const userPid = await tmux.start("user", [
      "setpriv",
      `--reuid=${user.uid}`,
      `--regid=${user.gid}`,
      "--init-groups",
      "--",
      ...BASH,
    ]);
    await tmux.waitForScreen("root", PROMPT);
    await tmux.waitForScreen("user", PROMPT);

    await using collector = new Collector(["--pipeline", tempPipeline(PIPELINE)]);
    await collector.attached();
    const first = `echo first-${nonce}`;
    const long = `echo long-${nonce}-${"0123456789abcdef".repeat(96)}`; // 1.5 KiB
    const unicode = `echo héllo-世界-🎉-${nonce}`;
    const byUser = `echo by-user-${nonce}`;
    await tmux.type("root", first);
    await tmux.type("root", long);
    await tmux.type("root", unicode);
    await tmux.type("user", byUser);
    const expected = [
      { cmd: first, user: "root", pid: rootPid },
      { cmd: long, user: "root", pid: rootPid },
      { cmd: unicode, user: "root", pid: rootPid },
      { cmd: byUser, user: user.name, pid: userPid },
    ];
    await collector.waitFor(
      "all four commands",
      () =>
        expected.every((e) =>
          collector.stdout.includes(`-${nonce}`) &&
          collector.records().some((r) => r.fields.cmd === e.cmd)
        ),
    );
    const status = await collector.stop("SIGINT");
    assert.equal(status.code, 0, `collector exit code; stderr:\n${collector.stderr}`);

    const ours = collector.records().filter((r) => String(r.fields.cmd).includes(nonce));
    for (const e of expected) {
      const matches = ours.filter((r) => r.fields.cmd === e.cmd);
      assert.equal(
        matches.length,
        1,
        `${JSON.stringify(e.cmd.slice(0, 40))} should appear exactly once`,
      );
      const [r] = matches;
      assert.equal(r.measurement, "bash");
      assert.equal(r.tags.source, "bash");
      assert.equal(r.tags.host, Deno.hostname());
      assert.equal(r.fields.user, e.user);
      assert.equal(r.fields.pid, String(e.pid));
      assert.equal(r.fields.truncated, undefined);
      assert.match(
        String(r.fields.message),
        new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z pid:\`${e.pid}\` user:\`${e.user}\` cmd:\``),
      );
      assert.ok(Math.abs(r.time / 1e6 - Date.now()) < 60_000, "time is wall-clock ns, near now");
    }
    assert.equal(ours.length, expected.length, "no other records carry the nonce");
    assert.match(
      collector.stderr,
      /summary: .*records_out\{stage=shell\}=\d+ records_written\{stage=out\}=\d+/,
    );
  },
);

kernelTest(
  "bash probe cuts a command beyond max_cmd_bytes at a character boundary and says so",
  NEEDS,
  async () => {
    const nonce = crypto.randomUUID().slice(0, 8);
    await using tmux = new Tmux();
    const pid = await rootShell(tmux);
    await using collector = new Collector([
      "--pipeline",
      tempPipeline(PIPELINE.replace("type: bash", "type: bash\n    max_cmd_bytes: 40")),
    ]);
    await collector.attached();
    // "echo <8-char nonce> x" is 15 bytes; each 'é' is 2, so byte 40 falls inside the 13th.
    const cmd = `echo ${nonce} x${"é".repeat(30)}`;
    await tmux.type("root", cmd);
    await collector.waitFor("the cut command", () => collector.stdout.includes(nonce));
    assert.equal((await collector.stop()).code, 0);
    const [r] = collector.records().filter((r) => String(r.fields.cmd).includes(nonce));
    const bytes = new TextEncoder().encode(cmd);
    assert.equal(r.fields.truncated, true);
    assert.equal(r.fields.cmd_length, bytes.length);
    assert.equal(r.fields.cmd, `echo ${nonce} x${"é".repeat(12)}`); // 39 bytes
    assert.ok(new TextEncoder().encode(String(r.fields.cmd)).length <= 40);
    assert.equal(r.fields.pid, String(pid));
  },
);

kernelTest(
  "bash probe keeps 16 KiB of a longer command and reports its full length",
  NEEDS,
  async () => {
    const nonce = crypto.randomUUID().slice(0, 8);
    await using tmux = new Tmux();
    await rootShell(tmux);
    await using collector = new Collector(["--pipeline", tempPipeline(PIPELINE)]);
    await collector.attached();
    const cmd = `: ${nonce} ${"x".repeat(20_000)}`; // past the kernel's 16384-byte capture
    await tmux.type("root", cmd);
    await collector.waitFor("the long command", () => collector.stdout.includes(nonce));
    assert.equal((await collector.stop("SIGTERM")).code, 0, "SIGTERM stops cleanly too");
    const [r] = collector.records().filter((r) => String(r.fields.cmd).includes(nonce));
    assert.equal(r.fields.truncated, true);
    assert.equal(
      r.fields.cmd_length,
      cmd.length,
      "the BPF side scans past its capture for the length",
    );
    assert.equal(r.fields.cmd, cmd.slice(0, 16384));
  },
);

kernelTest(
  "--duration stops the collector by itself; line_protocol output is one line per command",
  NEEDS,
  async () => {
    const nonce = crypto.randomUUID().slice(0, 8);
    await using tmux = new Tmux();
    const pid = await rootShell(tmux);
    await using collector = new Collector([
      "--duration",
      "3s",
      "--pipeline",
      tempPipeline(PIPELINE.replace("format: json", "format: line_protocol")),
    ]);
    await collector.attached();
    await tmux.type("root", `echo "lp ${nonce}"`);
    await collector.waitFor("the command", () => collector.stdout.includes(nonce));
    await collector.waitFor("its own exit", () => collector.stderr.includes("summary:"), 10_000);
    assert.equal((await collector.exited()).code, 0);
    assert.match(collector.stderr, /stopping \(duration\)/);
    const line = collector.stdout.split("\n").find((l) => l.includes(nonce));
    // cgroup_id: the shell's cgroup v2 id, an integer field (the container transform reads it).
    const fields =
      `cmd="echo \\\\"lp ${nonce}\\\\"",message="[^\n]*",pid="${pid}",user="root",cmd_id="${pid}-\\d+",cgroup_id=\\d+i`;
    assert.match(line!, new RegExp(`^bash,host=\\S+,source=bash ${fields} \\d{19}$`));
  },
);

kernelTest(
  "bash through filter and redact: filtered commands never appear, secrets never appear",
  NEEDS,
  async () => {
    const nonce = crypto.randomUUID().slice(0, 8);
    const pipeline = `version: 1
probes:
  shell: { type: bash }
transforms:
  no_skip:
    type: filter
    inputs: [shell]
    drop: { field: cmd, prefix: "echo skip-me" }
  secrets:
    type: redact
    inputs: [no_skip]
    rules:
      - pattern: "card=[0-9]+"
        replacement: "card=****"
outputs:
  out: { type: stdout, inputs: [secrets] }
`;
    await using tmux = new Tmux();
    await rootShell(tmux);
    await using collector = new Collector(["--pipeline", tempPipeline(pipeline)]);
    await collector.attached();
    // Each line ends with a shell comment carrying the nonce, outside any secret.
    const tag = ` # ${nonce}`;
    const typed = [
      `echo skip-me${tag}`,
      `mysql -u root -pS3cr3t${nonce} -e 'select 1'${tag}`,
      `export API_TOKEN=tok${nonce}${tag}`,
      `curl -H "Authorization: Bearer bear${nonce}" http://127.0.0.1:9/${tag}`,
      `echo card=4111000011112222${tag}`,
      `echo keep${tag}`,
    ];
    for (const cmd of typed) await tmux.type("root", cmd);
    await collector.waitFor(
      "the last command",
      () => collector.stdout.includes(`echo keep${tag}`),
    );
    assert.equal((await collector.stop()).code, 0);
    const out = collector.stdout;
    for (
      const secret of [
        `S3cr3t${nonce}`,
        `tok${nonce}`,
        `bear${nonce}`,
        "4111000011112222",
        "skip-me",
      ]
    ) {
      assert.ok(!out.includes(secret), `${secret} must not reach the output`);
    }
    const cmds = collector.records().map((r) => String(r.fields.cmd)).filter((c) =>
      c.endsWith(tag)
    );
    assert.deepEqual(cmds, [
      `mysql -u root -p*** -e 'select 1'${tag}`,
      `export API_TOKEN=***${tag}`,
      `curl -H "Authorization: Bearer ***" http://127.0.0.1:9/${tag}`,
      `echo card=****${tag}`,
      `echo keep${tag}`,
    ]);
    assert.match(collector.stderr, /records_filtered\{stage=no_skip\}=1\b/);
  },
);

// A binary that is not bash, inside the project folder that `deno task run` may read.
const NOT_BASH = `${ROOT}build/tmp/ls`;
Deno.mkdirSync(`${ROOT}build/tmp`, { recursive: true });
Deno.copyFileSync("/bin/ls", NOT_BASH);

const TWO_PROBES = (required: boolean) =>
  `version: 1
probes:
  good: { type: bash }
  broken: { type: bash, binary: ${NOT_BASH}, required: ${required} }
outputs:
  out: { type: stdout, inputs: [good, broken] }
`;

kernelTest(
  "a probe that cannot attach is disabled with one warning; the others keep collecting",
  NEEDS,
  async () => {
    const nonce = crypto.randomUUID().slice(0, 8);
    await using tmux = new Tmux();
    await rootShell(tmux);
    await using collector = new Collector(["--pipeline", tempPipeline(TWO_PROBES(false))]);
    await collector.attached();
    await tmux.type("root", `echo still-${nonce}`);
    await collector.waitFor("the command", () => collector.stdout.includes(`still-${nonce}`));
    assert.equal((await collector.stop()).code, 0);
    const warnings = collector.stderr.split("\n").filter((l) => l.startsWith("warning:"));
    assert.deepEqual(warnings, [
      `warning: probe broken disabled: bash probe: ${NOT_BASH} neither defines readline nor links a ` +
      "libreadline.so that does (set probes.<name>.binary to an interactive bash)",
    ]);
    assert.match(collector.stderr, /probes_disabled\{stage=broken\}=1/);
  },
);

kernelTest(
  "a required probe that cannot attach stops the collector with exit code 2",
  NEEDS,
  async () => {
    const collector = new Collector(["--pipeline", tempPipeline(TWO_PROBES(true))]);
    const status = await collector.exited();
    assert.equal(status.code, 2);
    assert.ok(
      collector.stderr.startsWith(`error: bash probe: ${NOT_BASH} neither defines readline`),
      collector.stderr,
    );
    assert.ok(!collector.stderr.includes("    at "), "no stack trace");
  },
);

kernelTest(
  "bash commands still arrive after the collector was stopped and continued (SIGSTOP, SIGCONT)",
  NEEDS,
  async () => {
    const nonce = crypto.randomUUID().slice(0, 8);
    await using tmux = new Tmux();
    await rootShell(tmux);
    // netflow's map walks end in ENOENT on the main thread, the errno the old reader misread.
    const pipeline = tempPipeline(`version: 1
probes:
  shell: { type: bash }
  flows: { type: netflow, poll: 100ms }
  self: { type: collector, every: 100ms }
outputs:
  out: { type: stdout, inputs: [shell] }
`);
    await using collector = new Collector(["--pipeline", pipeline]);
    await collector.attached();
    // The ring reader waits in epoll_wait on a worker thread; the stop and continue interrupt
    // it with EINTR, which must be a retry, not the end of reading.
    for (let i = 0; i < 5; i++) {
      collector.signal("SIGSTOP");
      await new Promise((r) => setTimeout(r, 200));
      collector.signal("SIGCONT");
      await new Promise((r) => setTimeout(r, 300));
    }
    await new Promise((r) => setTimeout(r, 1200)); // beyond the reader's 1 s wait
    await tmux.type("root", `echo after-continue-${nonce}`);
    await collector.waitFor(
      "the command typed after SIGCONT",
      () => collector.records().some((r) => r.fields.cmd === `echo after-continue-${nonce}`),
    );
    assert.doesNotMatch(collector.stderr, /ring buffer reader stopped/);
  },
);

/**
 * What each typed command did, as a user reads it in `bash_activity`: real interactive bash on
 * ptys (tmux), real programs, real traffic to servers the test starts on loopback.
 */
import assert from "node:assert/strict";
import { Collector, tempPipeline } from "./_collector.ts";
import { startDnsmasq } from "./_dnsmasq.ts";
import { kernelTest } from "./_kernel.ts";
import { freePort } from "./_netflow.ts";
import { PROMPT, rootShell, Tmux } from "./_tmux.ts";

const NEEDS = { objects: ["bash"], tools: ["tmux"] };

type Row = ReturnType<Collector["records"]>[number];

/**
 * A pipeline: a bash probe `shell` and `probes` (YAML, each `  name: {...}`), command_activity
 * over them (but a collector probe) with `settings` (`grace: 1s` and more), and stdout writing `outputs`.
 */
function pipeline(probes: string[], settings: string, outputs: string[]): string {
  const read = probes.filter((p) => !p.includes("type: collector")); // its own records only
  const names = ["shell", ...read.map((p) => p.trim().split(":")[0])];
  return tempPipeline(`version: 1
probes:
  shell: { type: bash }
${probes.join("\n")}
transforms:
  activity: { type: command_activity, inputs: [${
    names.join(", ")
  }], events_from: shell, ${settings} }
outputs:
  out: { type: stdout, inputs: [${outputs.join(", ")}], format: json }
`);
}

/** The bash_activity record of the command typed as `cmd`, once it is out. */
async function activityOf(collector: Collector, cmd: string): Promise<Row> {
  const find = () =>
    collector.records().find((r) => r.measurement === "bash_activity" && r.fields.cmd === cmd);
  await collector.waitFor(`bash_activity of ${JSON.stringify(cmd)}`, () => find() !== undefined);
  return find()!;
}

kernelTest(
  "bash_activity: bash's own $? for builtins, subshells, programs and Ctrl-C; duration; processes",
  NEEDS,
  async () => {
    const nonce = crypto.randomUUID().slice(0, 8);
    await using tmux = new Tmux();
    const shellPid = await rootShell(tmux);
    await using collector = new Collector([
      "--pipeline",
      pipeline([], "grace: 1s", ["shell", "activity"]),
    ]);
    await collector.attached();

    // Each command is tagged with the nonce in a comment-free way: `: nonce;` is a builtin.
    const cases: { cmd: string; exit: number; processes: number; programs?: string[] }[] = [
      { cmd: `: ${nonce}; true`, exit: 0, processes: 0 },
      { cmd: `: ${nonce}; false`, exit: 1, processes: 0 },
      { cmd: `: ${nonce}; (exit 3)`, exit: 3, processes: 1 },
      { cmd: `: ${nonce}; sleep 1`, exit: 0, processes: 1, programs: ["sleep"] },
      {
        cmd: `: ${nonce}; ls / | wc -l | cat`,
        exit: 0,
        processes: 3,
        programs: ["cat", "ls", "wc"],
      },
    ];
    for (const c of cases) {
      await tmux.type("root", c.cmd);
      await activityOf(collector, c.cmd); // one at a time: the next starts after this ended
    }
    const interrupted = `: ${nonce}; sleep 30`;
    await tmux.type("root", interrupted);
    await collector.waitFor("sleep 30 to run", () => collector.stdout.includes("sleep 30"));
    await new Promise((r) => setTimeout(r, 300));
    await tmux.press("root", "C-c");
    const ctrlC = await activityOf(collector, interrupted);
    await tmux.waitForScreen("root", PROMPT);

    for (const c of cases) {
      const r = await activityOf(collector, c.cmd);
      assert.equal(r.fields.exit_code, c.exit, `${c.cmd}: exit code`);
      assert.equal(r.fields.processes, c.processes, `${c.cmd}: processes`);
      if (c.programs) {
        assert.deepEqual(String(r.fields.programs).split(",").sort(), c.programs, c.cmd);
      }
      assert.equal(r.fields.final, true);
      assert.equal(r.fields.pid, String(shellPid));
      assert.equal(r.tags.user, "root");
      assert.equal(r.tags.source, "bash");
      // Joined to its bash record by cmd_id.
      const line = collector.records().filter((b) =>
        b.measurement === "bash" && b.fields.cmd === c.cmd
      );
      assert.equal(line.length, 1);
      assert.equal(line[0].fields.cmd_id, r.fields.cmd_id);
      assert.match(String(r.fields.cmd_id), new RegExp(`^${shellPid}-\\d+$`));
    }
    const sleep1 = await activityOf(collector, cases[3].cmd);
    assert.ok(Number(sleep1.fields.duration) >= 1e9, `sleep 1 took ${sleep1.fields.duration} ns`);
    assert.ok(Number(sleep1.fields.duration) < 5e9);
    assert.equal(ctrlC.fields.exit_code, 130, "Ctrl-C: 128 + SIGINT");
    const ids = new Set(
      // This test's commands only: a shell elsewhere on the host may type its own meanwhile.
      collector.records().filter((r) =>
        r.measurement === "bash_activity" && String(r.fields.cmd).includes(nonce)
      ).map((r) => r.fields.cmd_id),
    );
    assert.equal(ids.size, cases.length + 1, "one cmd_id a command");
    assert.equal((await collector.stop()).code, 0);
  },
);

/** A TCP server on loopback that reads every connection to its end; how many bytes it read. */
function sink(): { port: number; bytes: () => number } & AsyncDisposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let total = 0;
  const serving = (async () => {
    for await (const conn of listener) {
      (async () => {
        const buf = new Uint8Array(65536);
        for (;;) {
          const n = await conn.read(buf).catch(() => null);
          if (n === null) break;
          total += n;
        }
        conn.close();
      })();
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    bytes: () => total,
    async [Symbol.asyncDispose]() {
      listener.close();
      await serving;
    },
  };
}

/** A python3 one-liner that connects to `port` and sends `n` bytes. */
function sendCommand(port: number, n: number, tag: string): string {
  return `: ${tag}; /usr/bin/python3 -c 'import socket; s = socket.create_connection(("127.0.0.1", ${port})); s.sendall(b"x" * ${n}); s.close()'`;
}

kernelTest(
  "bash_activity: a command's bytes, connection and DNS query, none of another shell's or a PROMPT_COMMAND's",
  { objects: ["bash", "netflow", "dns"], tools: ["tmux", "dnsmasq", "dig", "curl"] },
  async () => {
    const nonce = crypto.randomUUID().slice(0, 8);
    await using server = sink();
    const dnsPort = freePort();
    await using _dnsmasq = await startDnsmasq(dnsPort);
    await using tmux = new Tmux();
    await rootShell(tmux);
    await tmux.start("other", ["bash", "--norc", "--noprofile"]);
    await tmux.start("prompt", ["bash", "--norc", "--noprofile"]);
    for (const s of ["other", "prompt"]) await tmux.waitForScreen(s, PROMPT);

    await using collector = new Collector([
      "--pipeline",
      pipeline(
        [
          "  flows: { type: netflow, poll: 1s }",
          `  dns: { type: dns, ports: [${dnsPort}], poll: 1s }`,
        ],
        "grace: 2s",
        ["shell", "flows", "dns", "activity"],
      ),
    ]);
    await collector.attached();

    // A PROMPT_COMMAND that connects each time bash prompts: in no command.
    const setPrompt =
      `: ${nonce}-p; PROMPT_COMMAND='curl -s -m 2 http://127.0.0.1:${server.port}/${nonce} >/dev/null; :'`;
    await tmux.type("prompt", setPrompt);
    const quiet = `: ${nonce}-p; true`;
    await tmux.type("prompt", quiet);

    // Two shells at once: each command gets its own bytes only.
    const mine = sendCommand(server.port, 54_321, `${nonce}-a; sleep 0.5`);
    const theirs = sendCommand(server.port, 777, `${nonce}-b`);
    await Promise.all([tmux.type("root", mine), tmux.type("other", theirs)]);
    const lookup = `: ${nonce}-d; dig @127.0.0.1 -p ${dnsPort} a.test +short +tries=1`;
    await tmux.type("root", lookup);

    const [a, b, d, p, q] = await Promise.all(
      [mine, theirs, lookup, setPrompt, quiet].map((c) => activityOf(collector, c)),
    );
    assert.equal(a.fields.bytes_written, 54_321, "the python client's bytes, to the byte");
    assert.equal(a.fields.connections, 1);
    assert.equal(a.fields.connect_failures, 0);
    assert.equal(a.fields.programs, "sleep,python3");
    assert.equal(a.fields.dns_queries, 0);
    assert.equal(b.fields.bytes_written, 777, "the other shell's command: its own bytes only");
    assert.equal(b.fields.connections, 1);
    assert.notEqual(a.fields.cmd_id, b.fields.cmd_id);
    assert.equal(d.fields.dns_queries, 1);
    assert.equal(d.fields.domains, "a.test");
    assert.equal(d.fields.connections, 0, "DNS over UDP: no connection");
    assert.equal(d.fields.programs, "dig");
    for (const r of [p, q]) {
      assert.equal(
        r.fields.connections,
        0,
        `${r.fields.cmd}: PROMPT_COMMAND's curl is no command's`,
      );
      assert.equal(r.fields.bytes_written, 0);
      assert.equal(r.fields.processes, 0);
    }
    // The kernel stamped cmd_id on the flows and the DNS rows themselves.
    const records = collector.records();
    const stamped = (m: string, id: unknown) =>
      records.filter((r) => r.measurement === m && r.fields.cmd_id === id);
    assert.ok(stamped("netflow", a.fields.cmd_id).length > 0);
    assert.equal(stamped("dnsflow", d.fields.cmd_id).length, 1);
    const curls = records.filter((r) =>
      r.measurement === "netflow" && r.tags.process_name === "curl"
    );
    assert.ok(curls.length > 0, "curl ran from PROMPT_COMMAND");
    assert.ok(curls.every((r) => r.fields.cmd_id === undefined), "and is in no command");
    assert.equal(server.bytes() >= 54_321 + 777, true);
    assert.equal((await collector.stop()).code, 0);
  },
);

kernelTest(
  "bash_activity: a background job and a daemon report deltas until they exit or max_age; 1,000 commands, 1,000 records, the map back to its size",
  { objects: ["bash", "netflow"], tools: ["tmux", "setsid"] },
  async () => {
    const nonce = crypto.randomUUID().slice(0, 8);
    await using server = sink();
    await using tmux = new Tmux();
    await rootShell(tmux);
    // The collector probe: its reports give the commands map's size (map_entries_commands).
    await using collector = new Collector([
      "--pipeline",
      pipeline(
        ["  flows: { type: netflow, poll: 1s }", "  self: { type: collector, every: 1s }"],
        "grace: 1s, every: 1s, max_age: 4s",
        ["shell", "activity", "self"],
      ),
    ]);
    await collector.attached();
    const of = (cmd: string) =>
      collector.records().filter((r) => r.measurement === "bash_activity" && r.fields.cmd === cmd);
    const commandsMap = () =>
      collector.records().filter((r) =>
        r.measurement === "ebpf_collector" && r.tags.stage === "shell" &&
        r.fields.map_entries_commands !== undefined
      ).map((r) => Number(r.fields.map_entries_commands));

    // A background job outliving the prompt: reported at once (final: false), then final.
    const job = `: ${nonce}-j; sleep 3 &`;
    await tmux.type("root", job);
    // A double-forking daemon: its bytes at 1 s count to its command; at 6 s, past max_age,
    // no more (the command was reported final at 4 s).
    const daemon = `: ${nonce}-d; (setsid /usr/bin/python3 -c 'import socket, time
time.sleep(1); s = socket.create_connection(("127.0.0.1", ${server.port})); s.sendall(b"x" * 1000)
time.sleep(5); s.sendall(b"y" * 500); s.close()' &)`;
    await tmux.type("root", daemon);
    await collector.waitFor("the job's final report", () => of(job).some((r) => r.fields.final));
    const jobs = of(job);
    assert.equal(jobs[0].fields.final, false, "first reported while sleep still ran");
    assert.equal(jobs[0].fields.processes, 1);
    assert.equal(jobs[0].fields.exit_code, 0);
    assert.equal(jobs.at(-1)!.fields.final, true);
    assert.equal(jobs.filter((r) => r.fields.final).length, 1);
    assert.equal(jobs.filter((r) => r.fields.exit_code !== undefined).length, 1, "once");

    await collector.waitFor(
      "the daemon's command at max_age",
      () => of(daemon).some((r) => r.fields.final),
      20_000,
    );
    const daemons = of(daemon);
    const sum = (field: string) => daemons.reduce((n, r) => n + Number(r.fields[field]), 0);
    assert.equal(sum("bytes_written"), 1000, "its traffic until max_age, counted once");
    assert.equal(sum("connections"), 1);
    assert.equal(daemons.filter((r) => r.fields.final).length, 1);

    // 1,000 commands typed in one go, each a process of its own.
    // Once the daemon is gone (its last bytes in, then exit), the map's size before the loop.
    await collector.waitFor("the daemon's last bytes", () => server.bytes() >= 1000 + 500);
    await new Promise((r) => setTimeout(r, 500));
    const earlier = commandsMap().length;
    await collector.waitFor("a map reading", () => commandsMap().length > earlier);
    const before = commandsMap().at(-1)!;
    const loop = Array.from({ length: 1000 }, (_, i) => `/bin/true ${nonce}-${i}`);
    await tmux.type("root", loop.join("\n"));
    const ours = () =>
      collector.records().filter((r) =>
        r.measurement === "bash_activity" && String(r.fields.cmd).startsWith("/bin/true")
      );
    await collector.waitFor("1,000 bash_activity records", () => ours().length >= 1000, 60_000);
    const lines = new Map(
      collector.records().filter((r) => r.measurement === "bash").map((r) => [r.fields.cmd_id, r]),
    );
    const activity = ours();
    assert.equal(activity.length, 1000);
    assert.equal(new Set(activity.map((r) => r.fields.cmd_id)).size, 1000);
    for (const r of activity) {
      assert.equal(lines.get(r.fields.cmd_id)?.fields.cmd, r.fields.cmd, "joined by cmd_id");
      assert.equal(r.fields.processes, 1);
      assert.equal(r.fields.exit_code, 0);
    }
    const reading = commandsMap().length;
    await collector.waitFor("a later map reading", () => commandsMap().length > reading + 1);
    assert.equal(commandsMap().at(-1), before, "the commands map back to its size");
    assert.equal((await collector.stop()).code, 0);
  },
);

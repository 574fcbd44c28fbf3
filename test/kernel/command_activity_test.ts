/**
 * What each typed command did, as a user reads it in `bash_activity`: real interactive bash on
 * ptys (tmux), real programs, real traffic to servers the test starts on loopback.
 */
import assert from "node:assert/strict";
import { Collector, tempPipeline } from "./_collector.ts";
import { kernelTest } from "./_kernel.ts";
import { PROMPT, rootShell, Tmux } from "./_tmux.ts";

const NEEDS = { objects: ["bash"], tools: ["tmux"] };

type Row = ReturnType<Collector["records"]>[number];

const BASH_ONLY = `version: 1
probes:
  shell:
    type: bash
transforms:
  activity:
    type: command_activity
    inputs: [shell]
    events_from: shell
    grace: 1s
outputs:
  out:
    type: stdout
    inputs: [shell, activity]
    format: json
`;

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
    await using collector = new Collector(["--pipeline", tempPipeline(BASH_ONLY)]);
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
    await tmux.keys("root", "C-c");
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
      collector.records().filter((r) => r.measurement === "bash_activity").map((r) =>
        r.fields.cmd_id
      ),
    );
    assert.equal(ids.size, cases.length + 1, "one cmd_id a command");
    assert.equal((await collector.stop()).code, 0);
  },
);

/**
 * Least privilege, end to end: the collector runs on the default pipeline with exactly the
 * `deno run` command `--explain` prints, and with any one of its flags removed it refuses to
 * start with one line naming that flag (exit 2) instead of failing halfway through attaching.
 */
import assert from "node:assert/strict";
import { kernelTest } from "./_kernel.ts";
import { explainedCommand, output } from "../_run_command.ts";
import { defaultKernelProbes, defaultObjects } from "../_default_probes.ts";

async function run(args: string[]) {
  // --no-prompt: a missing permission must fail, never wait on a terminal.
  return await output(Deno.execPath(), [args[0], "--quiet", "--no-prompt", ...args.slice(1)]);
}

kernelTest(
  "the collector runs the default pipeline with exactly the flags --explain prints",
  { objects: defaultObjects() },
  async () => {
    const command = (await explainedCommand("pipeline.yaml")).slice(1);
    assert.ok(!command.includes("--allow-all") && !command.includes("-A"));
    assert.ok(command.includes("--deny-run"));
    const { code, stdout, stderr } = await run([...command, "--duration", "2s"]);
    assert.equal(code, 0, stderr);
    assert.match(stderr, /collecting with pipeline\.yaml/);
    for (const probe of defaultKernelProbes()) {
      assert.match(stderr, new RegExp(`^attached ${probe.name}: `, "m"));
    }
    // The `self` probe's last report at shutdown: one record per probe, every output reached.
    const stages = stdout.trim().split("\n").map((l) => JSON.parse(l))
      .filter((r) => r.measurement === "ebpf_collector").map((r) => r.tags.stage);
    for (const probe of defaultKernelProbes()) assert.ok(stages.includes(probe.name), stdout);
  },
);

Deno.test("with any one flag --explain prints removed, the collector names it and exits 2", async () => {
  const command = (await explainedCommand("pipeline.yaml")).slice(1);
  const grants = command.filter((w) => w.startsWith("--allow-"));
  assert.ok(grants.length >= 4, `${command}`);
  for (const flag of grants) {
    const { code, stderr } = await run([...command.filter((w) => w !== flag), "--duration", "1s"]);
    assert.equal(code, 2, `without ${flag}: ${stderr}`);
    const lines = stderr.trim().split("\n");
    assert.equal(lines.length, 1, `without ${flag}, one line: ${stderr}`);
    // The error names the flag (for a list, its first entry).
    const first = flag.split(",")[0];
    assert.ok(lines[0].startsWith("error: "), lines[0]);
    assert.ok(lines[0].includes(first), `without ${flag}: ${lines[0]}`);
  }
});

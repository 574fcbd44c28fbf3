/**
 * Least privilege, end to end: the collector runs on the default pipeline with exactly the
 * `deno run` command `--explain` prints, and with any one of its flags removed it refuses to
 * start with one line naming that flag (exit 2) instead of failing halfway through attaching.
 */
import assert from "node:assert/strict";
import { kernelTest } from "./_kernel.ts";
import { ROOT } from "../_run_command.ts";

/** The command `--explain` prints for the default pipeline, as argv words after `deno`. */
async function explainedCommand(): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--no-prompt", "-P", "src/main.ts", "--explain"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.equal(out.code, 0);
  const text = new TextDecoder().decode(out.stdout);
  const line = text.trimEnd().split("\n").at(-1)!.trim();
  assert.match(line, /^deno run .* src\/main\.ts --pipeline pipeline\.yaml$/);
  return line.split(" ").slice(1);
}

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    // --no-prompt: a missing permission must fail, never wait on a terminal.
    args: [args[0], "--quiet", "--no-prompt", ...args.slice(1)],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

kernelTest(
  "the collector runs the default pipeline with exactly the flags --explain prints",
  { objects: ["bash", "netflow", "dns"] },
  async () => {
    const command = await explainedCommand();
    assert.ok(!command.includes("--allow-all") && !command.includes("-A"));
    assert.ok(command.includes("--deny-run"));
    const { code, stdout, stderr } = await run([...command, "--duration", "2s"]);
    assert.equal(code, 0, stderr);
    assert.match(stderr, /collecting with pipeline\.yaml/);
    for (const probe of ["bash", "netflow", "dns"]) {
      assert.match(stderr, new RegExp(`^attached ${probe}: `, "m"));
    }
    // The `self` probe's last report at shutdown: one record per probe, every output reached.
    const stages = stdout.trim().split("\n").map((l) => JSON.parse(l))
      .filter((r) => r.measurement === "ebpf_collector").map((r) => r.tags.stage);
    for (const probe of ["bash", "netflow", "dns"]) assert.ok(stages.includes(probe), stdout);
  },
);

Deno.test("with any one flag --explain prints removed, the collector names it and exits 2", async () => {
  const command = await explainedCommand();
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

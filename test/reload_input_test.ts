/**
 * What a reload meets in the pipeline file's place, with the real collector process (`deno task
 * run`'s command line): a FIFO (or a hung mount) must not freeze collection or signal handling,
 * and a file too large is refused; the running pipeline goes on either way. No kernel: the only
 * probe is `collector`, which reports on the process itself every 100 ms.
 */
import assert from "node:assert/strict";
import { ROOT } from "./_run_command.ts";
import { Collector, tempPipeline } from "./kernel/_collector.ts";

const PIPELINE = `version: 1
probes:
  self: { type: collector, every: 100ms }
outputs:
  console: { type: stdout, inputs: [self], format: json }
`;

/** Reports written so far (one per stage and one for the process, every 100 ms). */
function reports(collector: Collector): number {
  return collector.stdout.split("\n").filter((l) => l.includes('"stage":"_process"')).length;
}

async function started(): Promise<{ collector: Collector; pipeline: string }> {
  const pipeline = tempPipeline(PIPELINE);
  const collector = new Collector(["--pipeline", pipeline]);
  await collector.attached();
  return { collector, pipeline };
}

/** Sends SIGHUP and waits for the reload to be refused with the warning `why` matches. */
async function assertReloadRefused(collector: Collector, why: RegExp): Promise<void> {
  collector.signal("SIGHUP");
  await collector.waitFor(
    "the reload to be refused",
    () => collector.stderr.includes("reload (SIGHUP) refused"),
    5000,
  );
  const [warning] = collector.stderr.split("\n").filter((l) => l.includes("refused"));
  assert.match(warning, why);
}

/** Asserts it keeps collecting, then stops on SIGINT within a few seconds with exit code 0. */
async function assertStillCollectsAndStops(collector: Collector): Promise<void> {
  const before = reports(collector);
  await collector.waitFor("more reports", () => reports(collector) >= before + 3, 5000);
  collector.signal("SIGINT");
  const status = await Promise.race([
    collector.exited(),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`SIGINT not handled:\n${collector.stderr}`)), 10_000)
    ),
  ]);
  assert.equal(status.code, 0, collector.stderr);
}

Deno.test("a reload finding a FIFO in the pipeline's place refuses it and keeps collecting and handling signals", async () => {
  const { collector, pipeline } = await started();
  await using _ = collector;
  await Deno.remove(pipeline);
  const made = await new Deno.Command("mkfifo", { args: [pipeline] }).output();
  assert.equal(made.code, 0);
  try {
    await assertReloadRefused(
      collector,
      new RegExp(
        `^warning: reload \\(SIGHUP\\) refused, the running pipeline is unchanged: ` +
          `cannot read pipeline ${pipeline}: not a regular file`,
      ),
    );
    await assertStillCollectsAndStops(collector);
  } finally {
    await Deno.remove(pipeline);
  }
});

Deno.test("a reload of a pipeline file larger than 1 MiB is refused in one line; collecting goes on", async () => {
  const { collector, pipeline } = await started();
  await using _ = collector;
  await Deno.writeTextFile(pipeline, PIPELINE + `# ${"x".repeat(1 << 20)}\n`);
  await assertReloadRefused(
    collector,
    /^warning: reload \(SIGHUP\) refused, the running pipeline is unchanged: cannot read pipeline .*: larger than 1MiB$/,
  );
  await assertStillCollectsAndStops(collector);
});

Deno.test("--pipeline /dev/stdin from a pipe starts; a reload then refuses the pipe and collecting goes on", async () => {
  // Deno 2.9 opens /dev/stdin only with --allow-all ("Requires all access to /dev/stdin").
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--no-prompt", "-A", `${ROOT}src/main.ts`, "--pipeline", "/dev/stdin"],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stdout = "", stderr = "", exited = false;
  const status = child.status.finally(() => exited = true);
  const pumps = [
    child.stdout.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (t) => void (stdout += t) }),
    ),
    child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (t) => void (stderr += t) }),
    ),
  ];
  try {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(PIPELINE));
    await writer.close();
    const until = async (what: string, predicate: () => boolean) => {
      for (const deadline = Date.now() + 30_000; !predicate();) {
        if (exited || Date.now() > deadline) {
          throw new Error(`${exited ? "exited" : "timed out"} waiting for ${what}:\n${stderr}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await until("it to collect", () => stderr.includes("collecting with /dev/stdin"));
    child.kill("SIGHUP");
    await until("the reload", () => stderr.includes("reload (SIGHUP) refused"));
    assert.match(
      stderr,
      /refused, the running pipeline is unchanged: cannot read pipeline \/dev\/stdin: not a regular/,
    );
    const before = stdout.length;
    await until("more records", () => stdout.length > before);
    child.kill("SIGINT");
    assert.equal((await status).code, 0, stderr);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await status;
    await Promise.all(pumps);
  }
});

/**
 * What a reload meets in the pipeline file's place, with the real collector process (`deno task
 * run`'s command line): a FIFO (or a hung mount) must not freeze collection or signal handling,
 * and a file too large is refused; the running pipeline goes on either way. No kernel: the only
 * probe is `collector`, which reports on the process itself every 100 ms.
 */
import assert from "node:assert/strict";
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
          `${pipeline} is not a regular file`,
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
    /^warning: reload \(SIGHUP\) refused, the running pipeline is unchanged: .* is larger than 1MiB$/,
  );
  await assertStillCollectsAndStops(collector);
});

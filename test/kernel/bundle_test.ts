/**
 * The one-file builds: `deno task bundle` makes build/ebpf-collector.js with the BPF objects
 * built in, and it runs the default pipeline from a folder that holds nothing else, with exactly
 * the flags its own `--explain` prints. `deno task compile` cannot get denort here (no download):
 * it must say what to do instead of failing obscurely.
 */
import assert from "node:assert/strict";
import { kernelTest } from "./_kernel.ts";
import { output, ROOT, shellWords } from "../_run_command.ts";
import { defaultKernelProbes, defaultObjects } from "../_default_probes.ts";

kernelTest(
  "the bundle runs the default pipeline outside the source tree with the flags it prints",
  { objects: defaultObjects() },
  async () => {
    const built = await output("bash", ["scripts/package.sh", "bundle"], { cwd: ROOT });
    assert.equal(built.code, 0, built.stderr);
    const dir = Deno.makeTempDirSync({ prefix: "ebpf-bundle-" });
    try {
      Deno.copyFileSync(`${ROOT}build/ebpf-collector.js`, `${dir}/ebpf-collector.js`);
      Deno.copyFileSync(`${ROOT}pipeline.yaml`, `${dir}/pipeline.yaml`);
      const explained = await output(Deno.execPath(), [
        "run",
        "--quiet",
        "--allow-read=pipeline.yaml",
        "--allow-env=LOG_TOKENS,LOG_STREAM",
        "ebpf-collector.js",
        "--explain",
      ], { cwd: dir });
      assert.equal(explained.code, 0, explained.stderr);
      const line = explained.stdout.trimEnd().split("\n").at(-1)!.trim();
      assert.match(line, /^(\w+=\S+ )*deno run .* ebpf-collector\.js --pipeline pipeline\.yaml$/);
      // Nothing of the source tree is readable: BPF objects come from the bundle itself.
      assert.ok(!line.includes(ROOT) && !line.includes("build/bpf"), line);

      const words = await shellWords(line);
      const deno = words.indexOf("deno");
      const run = await output(
        Deno.execPath(),
        [words[deno + 1], "--quiet", "--no-prompt", ...words.slice(deno + 2), "--duration", "2s"],
        { cwd: dir },
      );
      assert.equal(run.code, 0, run.stderr);
      for (const probe of defaultKernelProbes()) {
        assert.match(run.stderr, new RegExp(`^attached ${probe.name}: `, "m"));
      }
      // (Its import.meta.url is in `dir`, where no build/bpf exists: the objects are embedded.)
      const records = run.stdout.trim().split("\n").map((l) => JSON.parse(l));
      for (const probe of defaultKernelProbes()) {
        assert.ok(
          records.some((r) => r.measurement === "ebpf_collector" && r.tags.stage === probe.name),
          probe.name,
        );
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
);

Deno.test("deno task compile says what to do when denort cannot be had", async () => {
  const missing = await output("bash", ["scripts/package.sh", "compile"], {
    cwd: ROOT,
    env: { DENORT_BIN: "/nonexistent/denort" },
  });
  assert.equal(missing.code, 1);
  assert.match(
    missing.stderr,
    /compile: DENORT_BIN=\/nonexistent\/denort is not an executable file/,
  );

  // No DENORT_BIN and nothing cached (an empty DENO_DIR): the way out is named.
  const denoDir = Deno.makeTempDirSync({ prefix: "ebpf-deno-dir-" });
  try {
    const env = { ...Deno.env.toObject(), DENO_DIR: denoDir };
    delete (env as { DENORT_BIN?: string }).DENORT_BIN;
    const uncached = await output("bash", ["scripts/package.sh", "compile"], { cwd: ROOT, env });
    assert.equal(uncached.code, 1);
    assert.match(uncached.stderr, /needs denort .*DENORT_BIN=\/path\/to\/denort deno task compile/);
    assert.match(uncached.stderr, /deno task bundle \(works offline\)/);
  } finally {
    Deno.removeSync(denoDir, { recursive: true });
  }
});

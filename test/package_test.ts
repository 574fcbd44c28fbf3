/**
 * scripts/package.sh compile hands `deno compile` the pipeline's flags as separate arguments:
 * a path with a space (or one that reads "x --allow-all") stays inside its flag. denort cannot
 * be had here, so `deno` on PATH is a stand-in that records a `compile` call's arguments and
 * passes every other call to the real deno.
 */
import assert from "node:assert/strict";
import { output, ROOT, tempPipeline } from "./_run_command.ts";

Deno.test("package.sh compile passes each permission flag as one argument, spaces and all", async () => {
  const pipeline = tempPipeline(`version: 1
probes:
  self: { type: collector }
outputs:
  a: { type: file, inputs: [self], path: "build/tmp/x --allow-all" }
  b: { type: file, inputs: [self], path: "\${EBPF_D}/y;z.jsonl" }
`);
  const dir = await Deno.makeTempDir({ prefix: "package_test_" });
  const binary = `${ROOT}build/ebpf-collector`;
  const hadBinary = await Deno.stat(binary).then(() => true, () => false);
  try {
    const recorded = `${dir}/compile-args`;
    await Deno.writeTextFile(
      `${dir}/deno`,
      `#!/usr/bin/env bash
if [ "$1" = compile ]; then
  printf '%s\\0' "$@" > ${JSON.stringify(recorded)}
  for ((i = 1; i <= $#; i++)); do
    if [ "\${!i}" = -o ]; then j=$((i + 1)); [ -e "\${!j}" ] || : > "\${!j}"; fi
  done
  exit 0
fi
exec ${JSON.stringify(Deno.execPath())} "$@"
`,
      { mode: 0o755 },
    );
    const denort = `${dir}/denort`;
    await Deno.writeTextFile(denort, "#!/bin/sh\n", { mode: 0o755 });
    const built = await output("bash", ["scripts/package.sh", "compile"], {
      cwd: ROOT,
      env: {
        PATH: `${dir}:${Deno.env.get("PATH")}`,
        PIPELINE: pipeline,
        DENORT_BIN: denort,
        EBPF_D: "/var/lib/d d",
      },
    });
    assert.equal(built.code, 0, built.stderr);
    const args = (await Deno.readTextFile(recorded)).split("\0").slice(0, -1);
    assert.equal(args[0], "compile");
    assert.ok(!args.includes("--allow-all"), args.join(" | "));
    const writes = args.find((a) => a.startsWith("--allow-write="));
    assert.equal(writes, "--allow-write=build/tmp/x --allow-all,/var/lib/d d/y;z.jsonl");
    assert.ok(args.includes(`--allow-read=${pipeline}`), args.join(" | "));
    assert.deepEqual(args.slice(-3), ["-o", "build/ebpf-collector", "build/dist/entry.ts"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
    if (!hadBinary) await Deno.remove(binary).catch(() => {}); // the stand-in's empty file
  }
});

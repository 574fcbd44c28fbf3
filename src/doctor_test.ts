/**
 * `--doctor`'s lines that come from the probes' defs, without loading anything: a probe's own
 * check (bash's readline) under its stage's name, a host-wide one (cgroup v2) once however many
 * probes need it. A check that fails blocks the trial loads, so nothing reaches the kernel.
 */
import assert from "node:assert/strict";
import { doctor, formatCheck } from "./doctor.ts";
import { parsePipeline } from "./pipeline/load.ts";

Deno.test("--doctor runs each probe's declared checks: its own per stage, a host one once", async () => {
  const pipeline = parsePipeline(
    "doctor.yaml",
    `version: 1
probes:
  shell: { type: bash, binary: /bin/true }
  flows: { type: netflow }
  dns: { type: dns }
outputs:
  console: { type: stdout, inputs: [shell, flows, dns] }
`,
  );
  const lines = (await doctor(pipeline, () => {})).map(formatCheck);
  const readline = lines.filter((l) => l.includes("readline"));
  assert.equal(readline.length, 1, lines.join("\n"));
  assert.match(
    readline[0],
    /^FAIL {2}probes\.shell readline: bash probe: \/bin\/true neither defines readline/,
  );
  const cgroup = lines.filter((l) => l.includes("cgroup v2"));
  assert.equal(cgroup.length, 1, lines.join("\n"));
  assert.match(cgroup[0], /^ok {4}cgroup v2: mounted at \S+ \(from \/proc\/mounts\)$/);
  // One line per BPF object the pipeline's probes load; the failure above blocks every trial.
  for (const object of ["bash", "netflow", "dns"]) {
    assert.ok(lines.some((l) => l.includes(`BPF object ${object}:`)), lines.join("\n"));
  }
  for (const stage of ["shell", "flows", "dns"]) {
    assert.ok(lines.includes(`warn  probes.${stage}: not tried: fix the failures above first`));
  }
});

import assert from "node:assert/strict";
import { parse } from "yaml";
import { ROOT } from "../../test/_run_command.ts";
import { Tree, withDnsPort } from "./tree.ts";

Deno.test("Tree.open() says what is missing from a directory that is not a built checkout", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    await assert.rejects(Tree.open(dir, "--compare"), /--compare .*: no deno\.json there/);
    for (const file of ["deno.json", "pipeline.yaml"]) {
      Deno.copyFileSync(`${ROOT}${file}`, `${dir}/${file}`);
    }
    Deno.mkdirSync(`${dir}/src`);
    Deno.writeTextFileSync(`${dir}/src/main.ts`, "");
    await assert.rejects(
      Tree.open(dir),
      /no build\/bpf objects; run `deno install && deno task build` there/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("Tree.here() runs this checkout's own task", async () => {
  const tree = await Tree.here();
  assert.ok(tree.isHere);
  assert.equal(tree.runArgs().at(-1), `${ROOT}src/main.ts`);
  assert.match(tree.label, /@[0-9a-f]{7}\+?$/);
});

Deno.test("withDnsPort() adds the port to what dns watches, and leaves a pipeline without dns alone", () => {
  const text = Deno.readTextFileSync(`${ROOT}pipeline.yaml`);
  assert.deepEqual(parse(withDnsPort(text, 5353)).probes.dns.ports, [53, 5353]);
  const noDns = "version: 1\nprobes:\n  bash: { type: bash }\n";
  assert.equal(withDnsPort(noDns, 5353), noDns);
});

Deno.test("Tree.open() of a copy inside another checkout does not take that checkout's commit", async () => {
  const dir = `${ROOT}build/tmp/tree-copy-test`;
  Deno.mkdirSync(`${dir}/src`, { recursive: true });
  Deno.mkdirSync(`${dir}/build/bpf`, { recursive: true });
  try {
    for (const file of ["deno.json", "pipeline.yaml"]) {
      Deno.copyFileSync(`${ROOT}${file}`, `${dir}/${file}`);
    }
    Deno.writeTextFileSync(`${dir}/src/main.ts`, "");
    Deno.writeTextFileSync(`${dir}/build/bpf/netflow.bpf.o`, "");
    const tree = await Tree.open(dir);
    assert.equal(tree.commit, "");
    assert.equal(tree.label, "tree-copy-test");
    assert.equal(tree.runArgs().at(-1), `${dir}/src/main.ts`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

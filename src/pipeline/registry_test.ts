/**
 * What a new stage type needs besides its file and its registry line is read from its def:
 * these hold the def and the rest of the tree to that (see `StageDef` in stage.ts).
 */
import assert from "node:assert/strict";
import { REGISTRY, SECTIONS } from "./registry.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const exists = (path: string) => {
  try {
    return Deno.statSync(`${ROOT}${path}`).isFile;
  } catch {
    return false;
  }
};

Deno.test("each probe's BPF object has its source and event contract in bpf/, and each source a probe", () => {
  const objects = [...REGISTRY.probes.values()].flatMap((d) => d.bpfObject ? [d.bpfObject] : []);
  for (const name of objects) {
    assert.ok(exists(`bpf/${name}.bpf.c`), `bpf/${name}.bpf.c is missing`);
    assert.ok(exists(`bpf/${name}.h`), `bpf/${name}.h is missing`);
  }
  for (const entry of Deno.readDirSync(`${ROOT}bpf`)) {
    const name = entry.name.match(/^(\w+)\.bpf\.c$/)?.[1];
    if (name) assert.ok(objects.includes(name), `bpf/${entry.name}: no probe's bpfObject`);
  }
});

Deno.test("a probe that loads a BPF object declares the capabilities it needs to", () => {
  for (const def of REGISTRY.probes.values()) {
    if (def.bpfObject) assert.ok(def.capabilities?.includes("CAP_BPF"), def.type);
  }
});

Deno.test("--doctor names no stage type: what it checks of a probe comes from the def", () => {
  const source = Deno.readTextFileSync(`${ROOT}src/doctor.ts`);
  assert.doesNotMatch(source, /from "\.\/probes\//, "src/doctor.ts imports a probe");
  for (const section of SECTIONS) {
    for (const type of REGISTRY[section].keys()) {
      assert.doesNotMatch(
        source,
        new RegExp(`["'\`]${type}["'\`]`),
        `src/doctor.ts names "${type}"`,
      );
    }
  }
});

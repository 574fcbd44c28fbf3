/**
 * Bad pipeline files as users write them: each file's first line says the first error the
 * loader must report (`# first error: line:column path: reason`), exactly; `{probe types}`
 * there stands for the registry's probe types, so a new probe changes no file here.
 */
import assert from "node:assert/strict";
import { ConfigErrors } from "../../src/errors.ts";
import { parsePipeline } from "../../src/pipeline/load.ts";
import { REGISTRY } from "../../src/pipeline/registry.ts";

const PROBE_TYPES = [...REGISTRY.probes.keys()].join(", ");

const dir = new URL("./bad/", import.meta.url);
const files = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".yaml"))
  .sort();

Deno.test("the bad-pipeline corpus has at least 30 files", () => {
  assert.ok(files.length >= 30, `${files.length} files`);
});

for (const name of files) {
  Deno.test(`bad pipeline ${name} is rejected with its expected first error`, () => {
    const text = Deno.readTextFileSync(new URL(name, dir));
    const expected = text.match(/^# first error: (.*)\n/)?.[1]?.replace(
      "{probe types}",
      PROBE_TYPES,
    );
    assert.ok(expected, `${name} starts with "# first error: ..."`);
    let errors: ConfigErrors | undefined;
    try {
      parsePipeline(name, text, () => undefined);
    } catch (e) {
      if (!(e instanceof ConfigErrors)) throw e;
      errors = e;
    }
    assert.ok(errors, "the file is rejected");
    const [first] = errors.errors;
    assert.equal(
      `${first.line}:${first.column} ${first.path ? first.path + ": " : ""}${first.reason}`,
      expected,
    );
    assert.equal(errors.exitCode, 2);
    for (const e of errors.errors) assert.ok(!e.message.includes("\n"), `one line: ${e.message}`);
  });
}

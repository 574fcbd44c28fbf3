import assert from "node:assert/strict";
import { generatedDocs, withBlocks } from "./gen_docs.ts";

Deno.test("the docs' generated blocks are what `deno task docs` writes from the registry", async () => {
  for (const { file, now, want } of await generatedDocs()) {
    assert.ok(now === want, `${file} differs from the stage registry: run deno task docs`);
  }
});

Deno.test("a generated block is replaced whole, the text around it kept; a missing marker is named", () => {
  const text =
    "before\n<!-- generated: x (deno task docs) -->\nold\n<!-- end generated: x -->\nafter\n";
  assert.equal(
    withBlocks("f.md", text, { x: () => "new" }),
    "before\n<!-- generated: x (deno task docs) -->\n\nnew\n\n<!-- end generated: x -->\nafter\n",
  );
  assert.throws(
    () => withBlocks("f.md", "no markers", { x: () => "" }),
    /f\.md: no "<!-- generated: x/,
  );
});

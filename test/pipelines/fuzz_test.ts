/**
 * 1,000 mutated versions of the default pipeline: each either loads or is rejected with
 * positioned, one-line errors. Never another exception, never a hang. Seeded, so a failure
 * can be reproduced from its case number.
 */
import assert from "node:assert/strict";
import { ConfigErrors } from "../../src/errors.ts";
import { parsePipeline } from "../../src/pipeline/load.ts";

const BASE = Deno.readTextFileSync(new URL("../../pipeline.yaml", import.meta.url));
const CASES = 1000;

/** mulberry32: a small seeded PRNG. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NOISE = [
  ":",
  "{",
  "}",
  "[",
  "]",
  " ",
  "  ",
  "\t",
  "-",
  '"',
  "'",
  "#",
  "\n",
  "${",
  "${X}",
  "&a",
  "*a",
  "!!int",
  "x",
  "0",
  "~",
  "|",
  ">",
];
const WORDS = [
  "bash",
  "stdout",
  "filter",
  "inputs",
  "type",
  "every",
  "60s",
  "-1",
  "1e999",
  "null",
  "true",
  "[]",
  "{}",
  "~other",
  "🎉",
];

function mutate(text: string, random: () => number): string {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)];
  let out = text;
  const edits = 1 + Math.floor(random() * 3);
  for (let e = 0; e < edits; e++) {
    const lines = out.split("\n");
    const i = Math.floor(random() * lines.length), at = Math.floor(random() * (out.length + 1));
    switch (Math.floor(random() * 7)) {
      case 0: // delete a character
        out = out.slice(0, at) + out.slice(at + 1);
        break;
      case 1: // insert noise
        out = out.slice(0, at) + pick(NOISE) + out.slice(at);
        break;
      case 2: // delete a line
        lines.splice(i, 1);
        out = lines.join("\n");
        break;
      case 3: // duplicate a line
        lines.splice(i, 0, lines[i]);
        out = lines.join("\n");
        break;
      case 4: // swap two lines
        [lines[i], lines[0]] = [lines[0], lines[i]];
        out = lines.join("\n");
        break;
      case 5: // change indentation
        lines[i] = random() < 0.5 ? "  " + lines[i] : lines[i].replace(/^ {1,2}/, "");
        out = lines.join("\n");
        break;
      default: { // replace a word
        const words = out.match(/[A-Za-z_0-9]+/g) ?? [];
        const w = pick(words);
        if (w) out = out.replace(w, pick(WORDS));
      }
    }
  }
  return out;
}

Deno.test(`${CASES} mutated default pipelines load or fail with positioned one-line errors`, () => {
  const random = prng(20261125);
  let loaded = 0, rejected = 0;
  for (let n = 0; n < CASES; n++) {
    const text = mutate(BASE, random);
    try {
      parsePipeline("fuzz.yaml", text, (name) => name === "X" ? "x" : undefined);
      loaded++;
    } catch (e) {
      if (!(e instanceof ConfigErrors)) {
        throw new Error(`case ${n}: ${(e as Error)?.stack ?? e}\n--- input ---\n${text}`);
      }
      rejected++;
      assert.ok(e.errors.length > 0, `case ${n}: at least one error`);
      for (const err of e.errors) {
        assert.ok(err.line >= 1 && err.column >= 1, `case ${n}: positioned: ${err.message}`);
        assert.ok(
          err.message.startsWith("fuzz.yaml:"),
          `case ${n}: names the file: ${err.message}`,
        );
        assert.ok(
          !err.message.includes("\n"),
          `case ${n}: one line: ${JSON.stringify(err.message)}`,
        );
      }
    }
  }
  // Both outcomes occur, or the mutations are not exercising anything.
  assert.ok(loaded > 10 && rejected > 100, `loaded ${loaded}, rejected ${rejected}`);
});

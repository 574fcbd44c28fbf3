import assert from "node:assert/strict";
import { applyKeys, initialView } from "./keys.ts";

Deno.test("applyKeys(): Tab and Shift-Tab cycle the panes", () => {
  assert.equal(applyKeys(initialView(), "\t").view.pane, "dns");
  assert.equal(applyKeys(initialView(), "\t\t").view.pane, "drops");
  assert.equal(applyKeys(initialView(), "\t\t\t\t").view.pane, "flows");
  assert.equal(applyKeys(initialView(), "\x1b[Z").view.pane, "commands");
});

Deno.test("applyKeys(): s cycles the focused pane's sort only", () => {
  const { view } = applyKeys(initialView(), "s\ts");
  assert.equal(view.sort.flows, "in");
  assert.equal(view.sort.dns, "errors");
});

Deno.test("applyKeys(): / types a filter; Enter keeps it, Esc clears it, keys are text meanwhile", () => {
  let { view } = applyKeys(initialView(), "/iq\x7fpe");
  assert.equal(view.editing, "ipe");
  assert.equal(applyKeys(view, "q").quit, undefined, "q is a letter of the filter");
  ({ view } = applyKeys(view, "rf\r"));
  assert.equal(view.filter, "iperf");
  assert.equal(view.editing, undefined);
  ({ view } = applyKeys(view, "/x\x1b"));
  assert.equal(view.filter, "");
});

Deno.test("applyKeys(): q and Ctrl-C (a byte in raw mode) quit; space pauses; arrows do nothing", () => {
  assert.equal(applyKeys(initialView(), "q").quit, "q pressed");
  assert.equal(applyKeys(initialView(), "\x03").quit, "Ctrl-C");
  assert.equal(applyKeys(initialView(), " ").view.paused, true);
  assert.deepEqual(applyKeys(initialView(), "\x1b[A\x1bOB").view, initialView());
});

import assert from "node:assert/strict";
import { Counters } from "./counters.ts";

Deno.test("add counts by one by default and by the given amount", () => {
  const c = new Counters();
  c.add("records_in");
  c.add("records_in");
  c.add("records_in", 3);
  c.add("records_in", 10n);
  assert.equal(c.get("records_in"), 15n);
});

Deno.test("an unknown counter reads as zero", () => {
  const c = new Counters();
  c.add("records_in", 1, { probe: "bash" });
  assert.equal(c.get("records_out"), 0n);
  assert.equal(c.get("records_in"), 0n);
  assert.equal(c.get("records_in", { probe: "netflow" }), 0n);
});

Deno.test("counters with different labels are counted apart", () => {
  const c = new Counters();
  c.add("records_in", 2, { probe: "bash" });
  c.add("records_in", 5, { probe: "netflow" });
  assert.equal(c.get("records_in", { probe: "bash" }), 2n);
  assert.equal(c.get("records_in", { probe: "netflow" }), 5n);
});

Deno.test("label insertion order does not make a different counter", () => {
  const c = new Counters();
  c.add("output_errors", 1, { output: "file", reason: "full" });
  c.add("output_errors", 1, { reason: "full", output: "file" });
  assert.equal(c.get("output_errors", { reason: "full", output: "file" }), 2n);
  assert.equal(c.snapshot().length, 1);
});

Deno.test("values stay exact past 2^53", () => {
  const c = new Counters();
  c.set("bytes", 9007199254740992n);
  c.add("bytes");
  assert.equal(c.get("bytes"), 9007199254740993n);
  assert.equal(c.summary(), "bytes=9007199254740993");
});

Deno.test("set replaces the value with an absolute total", () => {
  const c = new Counters();
  c.set("ring_lost", 7, { probe: "bash" });
  c.set("ring_lost", 4n, { probe: "bash" });
  assert.equal(c.get("ring_lost", { probe: "bash" }), 4n);
  c.set("ring_lost", 0, { probe: "dns" });
  assert.equal(c.summary(), "ring_lost{probe=bash}=4 ring_lost{probe=dns}=0");
});

Deno.test("add rejects negative and fractional amounts", () => {
  const c = new Counters();
  assert.throws(() => c.add("records_in", -1), /cannot go down.*use set\(\)/);
  assert.throws(() => c.add("records_in", 1.5), RangeError);
  assert.throws(() => c.set("ring_lost", NaN), RangeError);
  assert.equal(c.snapshot().length, 0);
});

Deno.test("snapshot lists counters sorted by name then labels", () => {
  const c = new Counters();
  c.add("records_out", 1, { output: "stdout" });
  c.add("records_in", 3, { probe: "netflow" });
  c.add("records_in", 2, { probe: "bash" });
  c.add("decode_errors");
  c.add("records_in", 1, { probe: "bash", cpu: "1" });
  assert.deepEqual(c.snapshot(), [
    { name: "decode_errors", labels: {}, value: 1n },
    { name: "records_in", labels: { cpu: "1", probe: "bash" }, value: 1n },
    { name: "records_in", labels: { probe: "bash" }, value: 2n },
    { name: "records_in", labels: { probe: "netflow" }, value: 3n },
    { name: "records_out", labels: { output: "stdout" }, value: 1n },
  ]);
});

Deno.test("a snapshot is a copy that later counting does not change", () => {
  const c = new Counters();
  c.add("records_in", 1, { probe: "bash" });
  const snap = c.snapshot();
  snap[0].labels.probe = "changed";
  c.add("records_in", 1, { probe: "bash" });
  assert.equal(snap[0].value, 1n);
  assert.equal(c.get("records_in", { probe: "bash" }), 2n);
});

Deno.test("summary prints every counter on one line in sorted order", () => {
  const c = new Counters();
  c.set("ring_lost", 0, { probe: "bash" });
  c.add("records_out", 5, { output: "stdout" });
  c.add("records_in", 5, { probe: "bash" });
  c.add("decode_errors", 0);
  assert.equal(
    c.summary(),
    "decode_errors=0 records_in{probe=bash}=5 records_out{output=stdout}=5 ring_lost{probe=bash}=0",
  );
});

Deno.test("summary of an empty registry is the empty string", () => {
  assert.equal(new Counters().summary(), "");
});

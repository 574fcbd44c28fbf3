import assert from "node:assert/strict";
import { libbpf } from "../../ffi/libbpf.ts";
import { BpfObject } from "../../ffi/object.ts";
import { kernelTest, objectPath } from "../../test/kernel/_kernel.ts";
import { Counters } from "../counters.ts";
import type { Loss, StageContext } from "../pipeline/stage.ts";
import { COMMON_DROPS, sizeDrops, watchDrops } from "./drops.ts";

kernelTest("a probe's own drop reason past bpf/common.h's is counted once sizeDrops() made room", {
  objects: ["bash"],
}, () => {
  const own: Loss = { counter: "keys_overflowed", what: "drops counted without their key" };
  const reasons = [...COMMON_DROPS, own];
  // A per-CPU array takes one value per possible CPU: 3 on CPU 0, 0 on the others.
  const perCpu = new Uint8Array(8 * libbpf().libbpf_num_possible_cpus());
  new DataView(perCpu.buffer).setBigUint64(0, 3n, true);
  const key = new Uint8Array(new Uint32Array([COMMON_DROPS.length]).buffer);

  using plain = BpfObject.open(objectPath("bash"));
  plain.load();
  assert.throws(() => plain.map("drops").update(key, perCpu), "common.h's map has no such index");

  using obj = BpfObject.open(objectPath("bash"));
  sizeDrops(obj, reasons);
  obj.load(); // loaded, not attached
  obj.map("drops").update(key, perCpu);
  const counters = new Counters();
  const ctx = { counters: counters.bound({ stage: "p" }) } as unknown as StageContext;
  watchDrops(obj.map("drops"), ctx, reasons.map((r) => r.counter), 60_000).stop();
  assert.equal(counters.get("keys_overflowed", { stage: "p" }), 3n);
  assert.equal(counters.get("ring_lost", { stage: "p" }), 0n);
});

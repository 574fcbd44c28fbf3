import assert from "node:assert/strict";
import { canLoadTracingBpf } from "./preflight.ts";

// Capability numbers from linux/capability.h, written out so a wrong constant fails here.
const bit = (cap: number) => 1n << BigInt(cap);
const CAP_SYS_ADMIN = bit(21), CAP_PERFMON = bit(38), CAP_BPF = bit(39);

Deno.test("canLoadTracingBpf() allows CAP_SYS_ADMIN alone", () => {
  assert.equal(canLoadTracingBpf(CAP_SYS_ADMIN), true);
});

Deno.test("canLoadTracingBpf() allows CAP_BPF with CAP_PERFMON", () => {
  assert.equal(canLoadTracingBpf(CAP_BPF | CAP_PERFMON), true);
});

Deno.test("canLoadTracingBpf() refuses CAP_BPF without CAP_PERFMON", () => {
  assert.equal(canLoadTracingBpf(CAP_BPF), false);
});

Deno.test("canLoadTracingBpf() refuses CAP_PERFMON without CAP_BPF", () => {
  assert.equal(canLoadTracingBpf(CAP_PERFMON), false);
});

Deno.test("canLoadTracingBpf() refuses no capabilities", () => {
  assert.equal(canLoadTracingBpf(0n), false);
});

Deno.test("canLoadTracingBpf() allows root's full set and refuses every other bit but the needed ones", () => {
  assert.equal(canLoadTracingBpf((1n << 41n) - 1n), true); // CAP_CHOWN..CAP_CHECKPOINT_RESTORE
  const others = ((1n << 64n) - 1n) & ~(CAP_SYS_ADMIN | CAP_BPF | CAP_PERFMON);
  assert.equal(canLoadTracingBpf(others), false);
  assert.equal(canLoadTracingBpf(others | CAP_BPF), false);
});

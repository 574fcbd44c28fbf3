import assert from "node:assert/strict";
import { holds, missingCapabilities } from "./capabilities.ts";

// Capability numbers from linux/capability.h, written out so a wrong constant fails here.
const bit = (cap: number) => 1n << BigInt(cap);
const NET_ADMIN = bit(12), SYS_ADMIN = bit(21), PERFMON = bit(38), BPF = bit(39);

const PROBES = [
  { name: "bash", capabilities: ["CAP_BPF", "CAP_PERFMON"] },
  { name: "netflow", capabilities: ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"] },
  { name: "self", capabilities: [] },
];

Deno.test("holds() reads the capget mask, and CAP_SYS_ADMIN stands in for the BPF ones", () => {
  assert.equal(holds(BPF, "CAP_BPF"), true);
  assert.equal(holds(PERFMON, "CAP_BPF"), false);
  for (const cap of ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"]) {
    assert.equal(holds(SYS_ADMIN, cap), true, cap);
  }
  assert.equal(holds(BPF | PERFMON | NET_ADMIN, "CAP_SYS_ADMIN"), false);
});

Deno.test("missingCapabilities() names each missing one with the probes that need it", () => {
  assert.equal(missingCapabilities(PROBES, BPF | PERFMON | NET_ADMIN), undefined);
  assert.equal(missingCapabilities(PROBES, SYS_ADMIN), undefined);
  const lacking = missingCapabilities(PROBES, BPF | PERFMON);
  assert.equal(lacking?.missing, "CAP_NET_ADMIN (netflow)");
  assert.match(lacking!.fix, /setpriv --inh-caps=\+bpf,\+perfmon,\+net_admin --ambient-caps=/);
  assert.equal(
    missingCapabilities(PROBES, 0n)?.missing,
    "CAP_BPF (bash, netflow), CAP_PERFMON (bash, netflow), CAP_NET_ADMIN (netflow)",
  );
});

Deno.test("missingCapabilities() is undefined for probes that need none", () => {
  assert.equal(missingCapabilities([{ name: "self", capabilities: [] }], 0n), undefined);
});

import assert from "node:assert/strict";
import { kernelFacts } from "./netdrop.ts";
import { ReasonNames } from "./netdrop_event.ts";

let btf = false;
try {
  btf = Deno.statSync("/sys/kernel/btf/vmlinux").isFile;
} catch { /* no kernel BTF here */ }

Deno.test({
  name: "netdrop: the running kernel's drop reasons and kfree_skb arguments, read from its BTF",
  ignore: !btf,
  // libbpf is opened once per process and stays open.
  sanitizeResources: false,
  fn() {
    const facts = kernelFacts();
    const names = new ReasonNames(facts.reasons, facts.subsystems);
    const noSocket = facts.reasons.find((m) => m.name === "SKB_DROP_REASON_NO_SOCKET");
    assert.ok(noSocket, "enum skb_drop_reason has NO_SOCKET");
    assert.equal(names.name(noSocket.value), "NO_SOCKET");
    assert.ok(facts.subsystems.some((m) => m.name === "SKB_DROP_REASON_SUBSYS_CORE"));
    // (skb, location, reason) before 6.13, and rx_sk after.
    assert.ok([3, 4].includes(facts.kfreeSkbArgs), `kfree_skb has ${facts.kfreeSkbArgs} arguments`);
  },
});

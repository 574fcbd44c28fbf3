/**
 * The TypeScript decoders against the compiled objects' BTF: the C structs in bpf/*.h and the
 * offsets in src/probes/*_event.ts must not drift apart.
 */
import assert from "node:assert/strict";
import {
  BASH_CMD_MAX,
  BASH_EVENT_LAYOUT,
  BASH_SETTINGS_LAYOUT,
} from "../../src/probes/bash_event.ts";
import { kernelTest, objectPath } from "./_kernel.ts";

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
}

async function btfTypes(object: string): Promise<BtfType[]> {
  const out = await new Deno.Command("bpftool", {
    args: ["-j", "btf", "dump", "file", objectPath(object)],
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout)).types;
}

/** Member name → byte offset, and the struct's size, as BTF says. */
function structLayout(types: BtfType[], name: string) {
  const t = types.find((t) => t.kind === "STRUCT" && t.name === name);
  assert.ok(t?.members, `struct ${name} is in the BTF`);
  return {
    size: t.size!,
    offsets: Object.fromEntries(t.members.map((m) => [m.name, m.bits_offset / 8])),
    member: (n: string) =>
      types.find((x) => x.id === t.members!.find((m) => m.name === n)!.type_id)!,
  };
}

kernelTest("struct bash_event and bash_settings match their TypeScript layouts", {
  objects: ["bash"],
  tools: ["bpftool"],
}, async () => {
  const types = await btfTypes("bash");
  const event = structLayout(types, "bash_event");
  assert.deepEqual(event.offsets, BASH_EVENT_LAYOUT);
  assert.equal(event.member("cmd").nr_elems, BASH_CMD_MAX + 1);
  const settings = structLayout(types, "bash_settings");
  assert.equal(settings.size, BASH_SETTINGS_LAYOUT.size);
  assert.equal(settings.offsets.require_bash_comm, BASH_SETTINGS_LAYOUT.require_bash_comm);
});

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
import {
  CIDR_KEY_SIZE,
  FLOW_COUNTS_LAYOUT,
  FLOW_COUNTS_SIZE,
  FLOW_DELTA_LAYOUT,
  FLOW_DELTA_SIZE,
  FLOW_ID_LAYOUT,
  FLOW_ID_SIZE,
  FLOW_KEY_LAYOUT,
  FLOW_KEY_SIZE,
  ITER_WALKED_LAYOUT,
  ITER_WALKED_SIZE,
  NETFLOW_SETTINGS_LAYOUT,
  NETFLOW_SETTINGS_SIZE,
  NETFLOW_SWITCHES_LAYOUT,
  NETFLOW_SWITCHES_SIZE,
  UDP_COUNTS_LAYOUT,
  UDP_COUNTS_SIZE,
} from "../../src/probes/netflow_event.ts";
import {
  DNS_EVENT_LAYOUT,
  DNS_FLOW_KEY_LAYOUT,
  DNS_FLOW_KEY_SIZE,
  DNS_FLOW_STATS_LAYOUT,
  DNS_FLOW_STATS_SIZE,
  DNS_NAME_LAYOUT,
  DNS_NAME_SIZE,
  DNS_PAYLOAD_MAX,
  DNS_PENDING_KEY_LAYOUT,
  DNS_PENDING_KEY_SIZE,
  DNS_PENDING_LAYOUT,
  DNS_PENDING_SIZE,
  DNS_ROW_EVENT_LAYOUT,
  DNS_ROW_EVENT_SIZE,
  DNS_SETTINGS_LAYOUT,
  DNS_SWITCHES_LAYOUT,
} from "../../src/probes/dns_event.ts";
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

/** Each named struct's member offsets and size are the TypeScript layout's. */
function assertLayouts(
  types: BtfType[],
  structs: readonly (readonly [string, { [member: string]: number }, number])[],
): void {
  for (const [name, layout, size] of structs) {
    const struct = structLayout(types, name);
    assert.deepEqual(struct.offsets, layout, name);
    assert.equal(struct.size, size, name);
  }
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

kernelTest(
  "the netflow structs (flow key, id, counts, delta, udp_counts, cidr_key, settings, switches, walked) match their TypeScript layouts",
  {
    objects: ["netflow"],
    tools: ["bpftool"],
  },
  async () => {
    const types = await btfTypes("netflow");
    const key = structLayout(types, "flow_key");
    assert.deepEqual(key.offsets, FLOW_KEY_LAYOUT);
    assert.equal(key.size, FLOW_KEY_SIZE);
    assert.equal(key.member("local_addr").nr_elems, 16);
    assert.equal(key.member("remote_addr").nr_elems, 16);

    // Only a type the object's code or maps use is in its BTF: a struct built on the stack and
    // written out needs an anchor (here, a non-inlined function taking it).
    assert.ok(
      types.some((t) => t.kind === "STRUCT" && t.name === "flow_delta"),
      "struct flow_delta is not in build/bpf/netflow.bpf.o's BTF: a function taking it " +
        "must stay out of line (add_closed in bpf/netflow.bpf.c)",
    );
    assertLayouts(types, [
      ["flow_id", FLOW_ID_LAYOUT, FLOW_ID_SIZE],
      ["flow_counts", FLOW_COUNTS_LAYOUT, FLOW_COUNTS_SIZE],
      ["flow_delta", FLOW_DELTA_LAYOUT, FLOW_DELTA_SIZE],
      ["netflow_settings", NETFLOW_SETTINGS_LAYOUT, NETFLOW_SETTINGS_SIZE],
      ["iter_walked", ITER_WALKED_LAYOUT, ITER_WALKED_SIZE],
    ]);

    const udp = structLayout(types, "udp_counts");
    assert.deepEqual(udp.offsets, UDP_COUNTS_LAYOUT);
    assert.equal(udp.size, UDP_COUNTS_SIZE);
    assert.equal(udp.member("comm").nr_elems, 16);

    const cidr = structLayout(types, "cidr_key");
    assert.equal(cidr.size, CIDR_KEY_SIZE);
    assert.deepEqual(cidr.offsets, { prefixlen: 0, addr: 4 });

    // The .bss section the probe writes whole.
    const switches = structLayout(types, "netflow_switches");
    assert.deepEqual(switches.offsets, NETFLOW_SWITCHES_LAYOUT);
    assert.equal(switches.size, NETFLOW_SWITCHES_SIZE);
  },
);

kernelTest(
  "the dns structs (event, row, pending query, name, settings) match their TypeScript layouts",
  {
    objects: ["dns"],
    tools: ["bpftool"],
  },
  async () => {
    const types = await btfTypes("dns");
    const event = structLayout(types, "dns_event");
    assert.deepEqual(event.offsets, DNS_EVENT_LAYOUT);
    assert.equal(event.member("payload").nr_elems, DNS_PAYLOAD_MAX);
    assert.equal(event.member("comm").nr_elems, 16);
    assertLayouts(types, [
      ["dns_flow_key", DNS_FLOW_KEY_LAYOUT, DNS_FLOW_KEY_SIZE],
      ["dns_flow_stats", DNS_FLOW_STATS_LAYOUT, DNS_FLOW_STATS_SIZE],
      ["dns_row_event", DNS_ROW_EVENT_LAYOUT, DNS_ROW_EVENT_SIZE],
      ["dns_pending_key", DNS_PENDING_KEY_LAYOUT, DNS_PENDING_KEY_SIZE],
      ["dns_pending", DNS_PENDING_LAYOUT, DNS_PENDING_SIZE],
      ["dns_name", DNS_NAME_LAYOUT, DNS_NAME_SIZE],
    ]);
    const { size: settingsSize, ...settingsLayout } = DNS_SETTINGS_LAYOUT;
    const settings = structLayout(types, "dns_settings");
    assert.equal(settings.size, settingsSize);
    assert.deepEqual(settings.offsets, settingsLayout);
    const { size: switchesSize, ...switchesLayout } = DNS_SWITCHES_LAYOUT;
    const switches = structLayout(types, "dns_switches");
    assert.equal(switches.size, switchesSize);
    assert.deepEqual(switches.offsets, switchesLayout);
  },
);

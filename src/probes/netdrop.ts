/**
 * The `netdrop` probe: packets the kernel dropped, with its reason (`enum skb_drop_reason`),
 * from the stable `skb:kfree_skb` tracepoint (tp_btf, no kprobes).
 *
 * The kernel counts drops per key (reason, direction, transport, family, addresses and ports,
 * the socket's cgroup and owner) in a bounded map; every `poll` the probe takes the entries
 * and emits one record per key with `packets` and `bytes`. A drop storm costs a map update
 * per packet and nothing per packet in user space. Keys that do not fit fall into their
 * reason's bucket (a record with only the `reason` tag), counted as `keys_overflowed`. How
 * each number is obtained is in bpf/netdrop.bpf.c; the records are made in netdrop_event.ts.
 *
 * Reason names are read from the running kernel's BTF through libbpf at start, so a kernel
 * with new reasons names them without a new collector; a value it does not name is
 * `<subsystem>_<n>` (e.g. `OPENVSWITCH_3`).
 *
 * ```yaml
 * probes:
 *   netdrop:
 *     type: netdrop
 *     poll: 10s
 *     max_keys: 16384
 * ```
 */
import { checkPtr, cString, libbpf } from "../../ffi/libbpf.ts";
import type { BpfMap } from "../../ffi/map.ts";
import type { BpfObject } from "../../ffi/object.ts";
import { describeError } from "../errors.ts";
import type { PortRange, ProbeStage, StageContext, StageDef } from "../pipeline/stage.ts";
import { openBpfObject } from "../system/bpf_objects.ts";
import { cgroupV2Mount } from "../system/cgroup.ts";
import { CGROUP_V2_CHECK } from "./cgroup_v2_check.ts";
import { DECODE_ERRORS, decodeFailures, mirrorCounts } from "./drops.ts";
import { watchMapFill } from "./map_fill.ts";
import { Poller } from "./poller.ts";
import { settingsView, writeBss, writeFold } from "./sections.ts";
import {
  decodeDropCounts,
  decodeDropKey,
  DecodeError,
  dropRecord,
  type EnumMember,
  NETDROP_COUNTS,
  NETDROP_SETTINGS,
  NETDROP_SWITCHES,
  ReasonNames,
} from "./netdrop_event.ts";

/** Options of a `netdrop` probe. */
export interface NetdropConfig {
  /** Milliseconds between reads of the kernel's counts. */
  poll: number;
  /** Keys the kernel counts between polls; beyond, drops go to their reason's bucket. */
  max_keys: number;
  /** The cgroup v2 directory whose sockets' owners are noted; "" the root (every socket). */
  cgroup: string;
}

export const netdropProbe: StageDef<NetdropConfig> = {
  type: "netdrop",
  kind: "probe",
  // CAP_NET_ADMIN: the owner hook is a cgroup program, which the kernel loads only with it.
  capabilities: ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"],
  bpfObject: "netdrop",
  hostPaths: { cgroup: "/host/sys/fs/cgroup" },
  losses: [DECODE_ERRORS, {
    counter: "reasons_full",
    what: "drops not counted",
    why: "the per-reason buckets map (1024) was full",
  }, {
    counter: "keys_overflowed",
    what: "drops counted by reason only",
    why: "more kinds of drop between polls than max_keys: no address or process; raise max_keys",
  }],
  checks: [CGROUP_V2_CHECK],
  describe: "Packets the kernel dropped, with its reason, per address, port and process.",
  schema: {
    poll: {
      type: "duration",
      default: "10s",
      doc: "how often the kernel's counts are read and emitted",
    },
    max_keys: {
      type: "integer",
      default: 16384,
      min: 16,
      max: 1 << 22,
      doc: "kinds of drop (reason, addresses, ports, process) counted between polls; beyond, " +
        "drops are counted per reason only (keys_overflowed)",
    },
    cgroup: {
      type: "string",
      default: "",
      doc: "cgroup v2 directory whose new sockets' owners (pid, process_name) are noted; " +
        "empty: the root",
    },
  },
  example: { poll: "10s", max_keys: 16384 },

  explain(config) {
    return {
      details: [
        "tp_btf/kfree_skb: every dropped packet, counted by reason and key in the kernel " +
        "(the socket a received packet was for from 6.13 on)",
        `cgroup/sock_create on ${config.cgroup || "the cgroup v2 root"}: the owner of each ` +
        "new socket (sockets open before the start have none)",
        `program object: build/bpf/netdrop.bpf.o; maps keys ${config.max_keys} (two ` +
        "generations), reason buckets 1024",
        "reason names: enum skb_drop_reason from the kernel's BTF (/sys/kernel/btf/vmlinux)",
      ],
      reads: [],
    };
  },

  intervalMs: (config) => config.poll,

  build(config, ctx) {
    return attach(config, ctx);
  },
};

const BTF_KIND_PTR = 2, BTF_KIND_ENUM = 6, BTF_KIND_TYPEDEF = 8, BTF_KIND_FUNC_PROTO = 13;

/** What netdrop reads of the running kernel's BTF. */
export interface KernelFacts {
  /** `enum skb_drop_reason` and `enum skb_drop_reason_subsys`. */
  reasons: EnumMember[];
  subsystems: EnumMember[];
  /** Arguments of the kfree_skb tracepoint (3 before 6.13, 4 with rx_sk); 0: not found. */
  kfreeSkbArgs: number;
}

/**
 * Reads {@linkcode KernelFacts} from the running kernel's BTF through libbpf, which opens
 * /sys/kernel/btf/vmlinux itself: no Deno read permission.
 */
export function kernelFacts(): KernelFacts {
  const lib = libbpf();
  const btf = checkPtr(lib.btf__load_vmlinux_btf(), "btf__load_vmlinux_btf");
  // struct btf_type {name_off, info (kind << 24 | vlen), size or type}, then its members.
  const type = (id: number) =>
    new Deno.UnsafePointerView(checkPtr(lib.btf__type_by_id(btf, id), "btf__type_by_id"));
  const kind = (t: Deno.UnsafePointerView) => (t.getUint32(4) >>> 24) & 0x1f;
  const vlen = (t: Deno.UnsafePointerView) => t.getUint32(4) & 0xffff;
  const find = (name: string, kind: number) => lib.btf__find_by_name_kind(btf, cString(name), kind);
  const enumMembers = (name: string) => {
    const id = find(name, BTF_KIND_ENUM);
    if (id < 0) return [];
    const t = type(id), members: EnumMember[] = [];
    for (let i = 0, at = 12; i < vlen(t); i++, at += 8) { // struct btf_enum {name_off, s32 val}
      const text = checkPtr(lib.btf__name_by_offset(btf, t.getUint32(at)), "btf name", name);
      members.push({ name: Deno.UnsafePointerView.getCString(text), value: t.getInt32(at + 4) });
    }
    return members;
  };
  /** typedef btf_trace_<name> → pointer → function prototype (its first argument is the context). */
  const tracepointArgs = (name: string) => {
    const id = find(`btf_trace_${name}`, BTF_KIND_TYPEDEF);
    if (id < 0) return 0;
    const ptr = type(type(id).getUint32(8));
    if (kind(ptr) !== BTF_KIND_PTR) return 0;
    const proto = type(ptr.getUint32(8));
    return kind(proto) === BTF_KIND_FUNC_PROTO ? vlen(proto) - 1 : 0;
  };
  try {
    return {
      reasons: enumMembers("skb_drop_reason"),
      subsystems: enumMembers("skb_drop_reason_subsys"),
      kfreeSkbArgs: tracepointArgs("kfree_skb"),
    };
  } finally {
    lib.btf__free(btf);
  }
}

function writeSettings(obj: BpfObject, fold: PortRange | undefined): void {
  writeFold(settingsView(obj, NETDROP_SETTINGS), NETDROP_SETTINGS, fold);
}

function writeGeneration(obj: BpfObject, gen: number): void {
  writeBss(obj, NETDROP_SWITCHES, (v) => v.setUint32(NETDROP_SWITCHES.offsets.gen, gen, true));
}

/**
 * Opens and loads the object with the drop program this kernel's tracepoint takes: the one
 * reading `rx_sk` (6.13 on) first, since the verifier refuses it on a kernel without that
 * argument, then the one without. Trying costs nothing where it loads; reading the kernel's BTF
 * to choose would cost ~70 ms of start-up on every kernel.
 */
function loadObject(config: NetdropConfig, ctx: StageContext) {
  const programs = ["on_drop", "on_drop_no_rx_sk"];
  for (const onDrop of programs) {
    const obj = openBpfObject("netdrop");
    try {
      writeSettings(obj, ctx.pushdown.clientPorts);
      for (const map of ["keys0", "keys1"]) obj.map(map).setMaxEntries(config.max_keys);
      for (const program of programs) obj.program(program).setAutoload(program === onDrop);
      obj.load();
      return { obj, onDrop };
    } catch (e) {
      obj.close();
      if (onDrop === programs.at(-1)) throw e;
      ctx.log.debug(`${ctx.name}: ${onDrop} did not load (${describeError(e)}); trying without`);
    }
  }
  throw new Error("unreachable");
}

/** Opens, loads and attaches the netdrop object, then polls it. */
function attach(initial: NetdropConfig, ctx: StageContext): ProbeStage {
  let config = initial;
  // The reasons' names are read at the first poll, not before the probe is attached.
  let reasonNames: ReasonNames | undefined;
  const names = () => {
    if (!reasonNames) {
      const kernel = kernelFacts();
      reasonNames = new ReasonNames(kernel.reasons, kernel.subsystems);
    }
    return reasonNames;
  };
  const stack = new DisposableStack(); // closes the links, then the object
  try {
    const { obj, onDrop } = loadObject(config, ctx);
    stack.use(obj);
    let gen = 0;
    writeGeneration(obj, gen);

    const attached: string[] = [];
    // Owners first: a socket made after the drop hook but before this one would have none.
    try {
      const cgroup = config.cgroup || cgroupV2Mount();
      attached.push(stack.use(obj.program("note_owner").attachCgroup(cgroup)).description);
    } catch (e) {
      ctx.log.warn(`${ctx.name}: drops will have no pid or process_name: ${describeError(e)}`);
    }
    attached.push(stack.use(obj.program(onDrop).attach()).description);

    const keys = [obj.map("keys0"), obj.map("keys1")];
    const buckets = [obj.map("buckets0"), obj.map("buckets1")];
    const kernelCounts = obj.map("counts");
    let keysTaken = 0;
    const decodeFailed = decodeFailures(ctx, DecodeError);
    const take = (map: BpfMap, time: bigint, bucket: boolean) => {
      let n = 0;
      for (const { key, value } of map.takeBatch(1024)) {
        n++;
        try {
          const counts = decodeDropCounts(value);
          if (bucket) {
            const reason = new DataView(key.buffer, key.byteOffset, 4).getUint32(0, true);
            ctx.emit(dropRecord(names().name(reason), undefined, counts, ctx.host, time));
          } else {
            const k = decodeDropKey(key);
            ctx.emit(dropRecord(names().name(k.reason), k, counts, ctx.host, time));
          }
        } catch (e) {
          decodeFailed(e);
        }
      }
      return n;
    };
    const poll = (time: bigint) => {
      // Drops go to the other generation from now on; this one is taken whole. A program
      // that read the old generation just before the switch may still add to an entry taken
      // already (a map update's time, well under a microsecond): that packet is lost.
      const old = gen;
      gen ^= 1;
      writeGeneration(obj, gen);
      keysTaken = take(keys[old], time, false);
      take(buckets[old], time, true);
      mirrorCounts(kernelCounts, ctx, NETDROP_COUNTS);
    };
    const fill = watchMapFill(ctx, [
      { map: "drop_keys", capacity: keys[0].maxEntries, entries: () => keysTaken },
    ]);
    const polls = new Poller(ctx, config.poll, poll);

    return {
      attached,
      push() {}, // a probe has no inputs
      flush() {
        // What was dropped since the last poll is not lost at shutdown or reload.
        polls.now();
      },
      reconfigure(next: NetdropConfig) {
        // Map sizes and the cgroup are fixed at load; the poll is not.
        if (next.max_keys !== config.max_keys || next.cgroup !== config.cgroup) return undefined;
        return () => {
          if (next.poll !== config.poll) {
            polls.every(next.poll);
          }
          config = next;
        };
      },
      close() {
        polls.cancel();
        fill.stop();
        stack.dispose();
      },
    };
  } catch (e) {
    stack.dispose();
    throw e;
  }
}

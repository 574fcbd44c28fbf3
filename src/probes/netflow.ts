/**
 * The `netflow` probe: TCP and UDP flows, IPv4 and IPv6, per process, from stable hooks only
 * (tracepoints, tp_btf, BPF iterators, cgroup address hooks: no kprobes, no guessed offsets).
 *
 * Every `poll` (aligned to the clock; records stamped just inside the interval they cover) it
 * emits one record per flow that did something since the last poll, with the deltas (a connect
 * that failed is a flow too, with no byte but its cause, and resets are counted): the
 * iterators write only sockets whose counters moved, and closed sockets come summed by flow,
 * so a connection shorter than a poll is counted whole and 10,000 short connections to one
 * service are a handful of records. How each number is obtained, and why, is in
 * bpf/netflow.bpf.c; the records are made in netflow_flows.ts.
 *
 * ```yaml
 * probes:
 *   netflow:
 *     type: netflow
 *     poll: 10s
 *     exclude_ports: [22]            # applied in the kernel: these flows are never counted
 *     exclude_cidrs: ["10.9.0.0/16"]
 *     exclude_pids: [1]
 * ```
 */
import { BpfObject, readIterator } from "../../ffi/object.ts";
import type { BpfLink } from "../../ffi/link.ts";
import type { BpfMap } from "../../ffi/map.ts";
import { describeError } from "../errors.ts";
import { parseNetwork } from "../ip.ts";
import { type At, describeValue, integerList } from "../pipeline/schema.ts";
import type { PortRange, ProbeStage, StageContext, StageDef } from "../pipeline/stage.ts";
import { cgroupV2Mount } from "../system/cgroup.ts";
import { openBpfObject } from "../system/bpf_objects.ts";
import { COMMANDS_MAP, shareCommands } from "./commands.ts";
import { CGROUP_V2_CHECK } from "./cgroup_v2_check.ts";
import { COMMON_DROPS, DECODE_ERRORS, decodeFailures, startReading } from "./drops.ts";
import { hashMapFill } from "./map_fill.ts";
import { Poller } from "./poller.ts";
import { settingsView, writeBss, writeFold } from "./sections.ts";
import { NAT_EVICTED, NAT_OVERRUNS, openNatEvents } from "./netflow_nat_events.ts";
import {
  cidrKey,
  decodeClosedFlow,
  DecodeError,
  decodeFlowDelta,
  decodeFlowKey,
  EXCLUDE_CIDRS,
  EXCLUDE_PIDS,
  EXCLUDE_PORTS,
  FLOW_DELTA,
  ITER_WALKED,
  NETFLOW_COUNTS,
  NETFLOW_SETTINGS,
  NETFLOW_SWITCHES,
  sumUdpCounts,
} from "./netflow_event.ts";
import {
  FlowAccounts,
  type FlowDelta,
  flowId,
  flowRecord,
  foldClientPort,
  mergeDeltas,
} from "./netflow_flows.ts";

/** Options of a `netflow` probe. */
export interface NetflowConfig {
  /** Milliseconds between reads of the kernel's counters. */
  poll: number;
  /** Deprecated: TCP sockets are tracked in their own storage, with no cap. */
  max_sockets?: number;
  max_udp_flows: number;
  /** Flows the kernel sums closes of between polls. */
  max_closed_flows: number;
  exclude_ports: number[];
  exclude_pids: number[];
  /** Normalised networks ("10.0.0.0/8"); a bare address is its /32 or /128. */
  exclude_cidrs: string[];
  /** The cgroup v2 directory for the UDP address hooks; "" finds it. */
  cgroup: string;
  /** Bytes of the ring buffer that carries closed connections' last counts. */
  ring_buffer_size: number;
  /** Tag outgoing flows conntrack translated with dst_nat_ip/dst_nat_port. */
  nat: boolean;
  /** Receive buffer of the conntrack event socket. */
  nat_buffer_size: number;
  /** Translations remembered at most. */
  nat_max_entries: number;
}

/** UDP flows with no bytes for this many polls in a row leave the kernel map. */
const UDP_IDLE_POLLS = 3;

function parseCidrs(value: unknown, at: At): string[] | undefined {
  const list = Array.isArray(value) ? value : [value];
  const out: string[] = [];
  let ok = true;
  list.forEach((item, i) => {
    const itemAt = Array.isArray(value) ? at.child(i) : at;
    if (typeof item !== "string") {
      itemAt.report(`expected a network such as "10.0.0.0/8", got ${describeValue(item)}`);
      ok = false;
      return;
    }
    // Read as the cidr condition reads networks: "10.1.2.3/8" is refused (with the network
    // meant), not taken as 10.0.0.0/8 without a word.
    const network = parseNetwork(item);
    if (typeof network === "string") {
      itemAt.report(network);
      ok = false;
      return;
    }
    out.push(`${network.address}/${network.bits}`);
  });
  return ok ? out : undefined;
}

export const netflowProbe: StageDef<NetflowConfig> = {
  type: "netflow",
  kind: "probe",
  // CAP_NET_ADMIN: the kernel loads cgroup programs only with it (docs/capabilities.md).
  capabilities: ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"],
  bpfObject: "netflow",
  consumes: [COMMANDS_MAP], // stamps cmd_id: the typed command of a flow's process
  hostPaths: { cgroup: "/host/sys/fs/cgroup" },
  drops: COMMON_DROPS,
  losses: [DECODE_ERRORS, NAT_OVERRUNS, NAT_EVICTED],
  checks: [CGROUP_V2_CHECK],
  describe: "TCP and UDP flows per process: bytes, retransmits, RTT, connections (IPv4, IPv6).",
  schema: {
    poll: {
      type: "duration",
      default: "10s",
      doc: "how often flows are read and their deltas emitted (closes are emitted at once)",
    },
    max_sockets: {
      type: "integer",
      min: 16,
      max: 1 << 22,
      doc: "deprecated, ignored: TCP sockets are tracked in their own storage, with no cap",
      deprecated: "TCP sockets are tracked in their own storage, with no cap",
    },
    max_udp_flows: {
      type: "integer",
      default: 65536,
      min: 16,
      max: 1 << 22,
      doc: "UDP flows the kernel counts between polls; beyond, counted as flows_full",
    },
    max_closed_flows: {
      type: "integer",
      default: 65536,
      min: 16,
      max: 1 << 22,
      doc: "flows the kernel sums closed sockets into between polls; beyond, closes go " +
        "through the ring buffer (closes_via_ring)",
    },
    exclude_ports: {
      type: "custom",
      default: [],
      parse: integerList("a port", 1, 65535),
      doc: "flows with this port at either end are not counted (in the kernel)",
    },
    exclude_pids: {
      type: "custom",
      default: [],
      parse: integerList("a pid", 1, 0x3fffffff),
      doc: "flows of these processes are not counted (in the kernel)",
    },
    exclude_cidrs: {
      type: "custom",
      default: [],
      parse: parseCidrs,
      doc: "flows with an address in these networks at either end are not counted (in the kernel)",
    },
    cgroup: {
      type: "string",
      default: "",
      doc: "cgroup v2 directory for the UDP peer-address hooks; empty: found at start",
    },
    ring_buffer_size: {
      type: "size",
      default: "64KiB",
      doc: "ring buffer for closes max_closed_flows has no room for (a power of two, 4KiB or " +
        "more); overflow is ring_lost",
    },
    nat: {
      type: "boolean",
      default: true,
      doc: "dst_nat_ip/dst_nat_port on outgoing flows conntrack's DNAT rewrote (a Service's " +
        "ClusterIP to its pod), from conntrack's events over netlink",
    },
    nat_buffer_size: {
      type: "size",
      default: "4MiB",
      doc: "receive buffer for conntrack's events between polls; overflow is nat_overruns",
    },
    nat_max_entries: {
      type: "integer",
      default: 65536,
      min: 16,
      max: 1 << 22,
      doc: "translations remembered; beyond, the oldest is forgotten (nat_evicted)",
    },
  },
  validate(config, at) {
    const n = config.ring_buffer_size;
    if (n >= 4096 && (n & (n - 1)) === 0) return [];
    return [
      at.child("ring_buffer_size").problem(
        `must be a power of two of at least 4KiB (the kernel's rule for ring buffers), got ${n} bytes`,
      ),
    ];
  },
  example: { poll: "5s", exclude_ports: [22], exclude_cidrs: ["10.9.0.0/16"], exclude_pids: [1] },

  explain(config) {
    return {
      details: [
        "tp_btf/inet_sock_set_state: handshakes (direction, tcp_established), closes and " +
        "failed connects (by sk_err), summed by flow in the kernel",
        "tp_btf/tcp_receive_reset, tcp_send_reset: resets ending a connection, and sent",
        "tp_btf/inet_sk_error_report: a connect's error while its socket stays in SYN_SENT",
        "iter/tcp every poll: the sockets whose bytes_acked/bytes_received/total_retrans moved, " +
        "with srtt and mdev",
        "tp_btf/sock_send_length, sock_recv_length: UDP bytes per datagram, TCP server pids",
        `cgroup/sendmsg4,6 recvmsg4,6 on ${config.cgroup || "the cgroup v2 root"}: UDP peers`,
        "iter/udp every poll and cgroup/sock_release on the cgroup v2 root: connected UDP " +
        "sockets' own counters",
        `program objects: build/bpf/netflow.bpf.o; maps udp_flows ${config.max_udp_flows}, ` +
        `closed flows ${config.max_closed_flows}, ring buffer events ${config.ring_buffer_size} ` +
        "bytes",
        ...(config.nat
          ? [
            "conntrack NEW/DESTROY events over netlink (translated entries only, a classic BPF " +
            `filter on the status), read each poll: ${config.nat_buffer_size} bytes buffered, ` +
            `${config.nat_max_entries} translations remembered`,
          ]
          : []),
      ],
      reads: [],
    };
  },

  intervalMs: (config) => config.poll,

  build(config, ctx) {
    return attach(config, ctx);
  },
};

/** What user space writes into the .bss section, `struct netflow_switches` (bpf/netflow.h). */
interface Switches {
  exclusions: number;
  socketCounters: boolean;
  epoch: number;
  gen: number;
}

function writeSwitches(obj: BpfObject, s: Switches): void {
  const L = NETFLOW_SWITCHES.offsets;
  writeBss(obj, NETFLOW_SWITCHES, (value) => {
    value.setUint32(L.exclusions, s.exclusions, true);
    value.setUint32(L.socket_counters, s.socketCounters ? 1 : 0, true);
    value.setUint32(L.epoch, s.epoch, true);
    value.setUint32(L.gen, s.gen, true);
  });
}

/** Writes `struct netflow_settings` (.rodata) before load: the client ports closes fold. */
function writeSettings(obj: BpfObject, fold: PortRange | undefined): void {
  writeFold(settingsView(obj, NETFLOW_SETTINGS), NETFLOW_SETTINGS, fold);
}

/**
 * Fills the exclude maps; returns the bits telling the kernel which ones to look at. On a
 * reload the maps are emptied first: a change takes effect at once, with no program reloaded.
 */
function applyExclusions(obj: BpfObject, config: NetflowConfig): number {
  for (const name of ["exclude_ports", "exclude_pids", "exclude_cidrs"]) {
    const map = obj.map(name);
    for (const key of map.keys()) map.delete(key);
  }
  const one = new Uint8Array([1]);
  for (const port of config.exclude_ports) {
    obj.map("exclude_ports").update(new Uint8Array(new Uint16Array([port]).buffer), one);
  }
  for (const pid of config.exclude_pids) {
    obj.map("exclude_pids").update(new Uint8Array(new Uint32Array([pid]).buffer), one);
  }
  for (const cidr of config.exclude_cidrs) obj.map("exclude_cidrs").update(cidrKey(cidr), one);
  return (config.exclude_ports.length ? EXCLUDE_PORTS : 0) |
    (config.exclude_pids.length ? EXCLUDE_PIDS : 0) |
    (config.exclude_cidrs.length ? EXCLUDE_CIDRS : 0);
}

/** Opens, loads and attaches the netflow object, then polls it. */
function attach(initial: NetflowConfig, ctx: StageContext): ProbeStage {
  let config = initial;
  const accounts = new FlowAccounts();
  const stack = new DisposableStack(); // closes ring and links, then the object
  try {
    const obj = stack.use(openBpfObject("netflow"));
    const fold = ctx.pushdown.clientPorts;
    writeSettings(obj, fold);
    obj.map("udp_flows").setMaxEntries(config.max_udp_flows);
    obj.map("closed0").setMaxEntries(config.max_closed_flows);
    obj.map("closed1").setMaxEntries(config.max_closed_flows);
    obj.map("events").setMaxEntries(config.ring_buffer_size);
    shareCommands(obj, ctx);
    obj.load();
    const switches: Switches = {
      exclusions: applyExclusions(obj, config),
      socketCounters: false,
      epoch: 0,
      gen: 0,
    };
    writeSwitches(obj, switches);

    // The iterators first, in a warm-up pass (epoch 0): it fills the listener ports that
    // direction guesses need, and notes the namespace it walks; nothing is staged, so sockets
    // already open report from their start at the first poll.
    const iterator = stack.use(obj.program("dump_tcp").attachIterator());
    readIterator(iterator);
    const udpIterator = stack.use(obj.program("dump_udp").attachIterator());
    readIterator(udpIterator);
    const attached: string[] = [iterator.description, udpIterator.description];
    let cgroup = "", root = "";
    try {
      root = cgroupV2Mount();
      cgroup = config.cgroup || root;
      for (const name of ["udp_sendmsg4", "udp_sendmsg6", "udp_recvmsg4", "udp_recvmsg6"]) {
        attached.push(stack.use(obj.program(name).attachCgroup(cgroup)).description);
      }
    } catch (e) {
      ctx.log.warn(
        `${ctx.name}: UDP peer addresses of unconnected sockets will be 0.0.0.0:0: ` +
          describeError(e),
      );
      cgroup = "";
    }
    // A socket counting in its own storage must have its close seen: only with the hook on the
    // cgroup root. Otherwise every datagram goes to the per-flow hash (slower, as exact).
    if (cgroup && cgroup.replace(/\/+$/, "") === root.replace(/\/+$/, "")) {
      try {
        attached.push(stack.use(obj.program("udp_release").attachCgroup(cgroup)).description);
        switches.socketCounters = true;
        writeSwitches(obj, switches);
      } catch (e) {
        ctx.log.debug(`${ctx.name}: connected UDP sockets counted per flow: ${describeError(e)}`);
      }
    }

    // After the peer hooks: a datagram counted before them would have no peer.
    for (
      const name of [
        "on_tcp_state",
        "on_tcp_receive_reset",
        "on_tcp_send_reset",
        "on_sock_error",
        "on_send",
        "on_recv",
      ]
    ) {
      attached.push(stack.use(obj.program(name).attach()).description);
    }
    const decodeFailed = decodeFailures(ctx, DecodeError);

    // Closes closed_flows had no room for: summed in with the next poll.
    let ringDeltas: FlowDelta[] = [];
    // A close the kernel summed had its client port folded to 0 there (and counted): `*` here.
    const foldedInKernel = (d: FlowDelta) => (fold && foldClientPort(d, fold, true)) || d;
    const ring = stack.use(obj.ringBuffer("events", (view, offset, length) => {
      try {
        if (length < FLOW_DELTA.size) {
          throw new DecodeError(`close record of ${length} bytes, not ${FLOW_DELTA.size}`);
        }
        const d = decodeFlowDelta(view, offset);
        ringDeltas.push(foldedInKernel(d));
      } catch (e) {
        decodeFailed(e);
      }
    }));

    const udpFlows = obj.map("udp_flows");
    const closed = [obj.map("closed0"), obj.map("closed1")];
    const walked = obj.map(".data.walked"), kernelCounts = obj.map("counts");
    let udpEntries = 0, closedEntries = 0, collapsed = 0;
    const readUdp = function* (map: BpfMap): Generator<FlowDelta> {
      const idle: Uint8Array<ArrayBuffer>[] = [];
      udpEntries = 0;
      for (const { key, value } of map.lookupBatch(4096, true)) {
        udpEntries++;
        let flow;
        try {
          flow = decodeFlowKey(new DataView(key.buffer, key.byteOffset, key.length), 0);
        } catch (e) {
          decodeFailed(e);
          continue;
        }
        const id = flowId(flow);
        const totals = sumUdpCounts(value);
        const r = accounts.udp(id, flow, totals.comm, totals, UDP_IDLE_POLLS);
        if (r.delta) yield r.delta;
        if (r.idle) {
          idle.push(key.slice());
          accounts.forgetUdp(id);
        }
      }
      for (const key of idle) map.delete(key);
    };
    /** Closes of the generation the programs just moved off, taken from the kernel. */
    const readClosed = function* (map: BpfMap): Generator<FlowDelta> {
      closedEntries = 0;
      for (const { key, value } of map.takeBatch(1024)) {
        closedEntries++;
        let d;
        try {
          d = decodeClosedFlow(key, value);
        } catch (e) {
          decodeFailed(e);
          continue;
        }
        yield foldedInKernel(d);
      }
    };
    // Where conntrack's DNAT sent outgoing flows (netflow_nat.ts): events read each poll.
    const nat = config.nat ? stack.use(openNatEvents(config, ctx)) : undefined;
    // Before the client port is folded here: a socket's own port finds its translation.
    const tagged = (deltas: FlowDelta[]) => nat ? deltas.map((d) => nat.tag(d)) : deltas;
    const folded = (deltas: Iterable<FlowDelta>) => {
      if (!fold) return deltas;
      return [...deltas].map((d) => {
        const f = foldClientPort(d, fold);
        if (f === undefined) return d;
        collapsed++;
        return f;
      });
    };
    const poll = (time: bigint) => {
      const started = performance.now();
      ring.drain();
      nat?.read();
      // A new epoch (what the last pass staged is taken) and the other generation of closes.
      const old = switches.gen;
      switches.epoch = (switches.epoch % 0xffffffff) + 1;
      switches.gen ^= 1;
      writeSwitches(obj, switches);
      const fromRing = ringDeltas;
      ringDeltas = [];
      const deltas = mergeDeltas(folded(tagged([
        ...readSockets([iterator, udpIterator], decodeFailed),
        ...readClosed(closed[old]),
        ...readUdp(udpFlows),
        ...fromRing,
      ])));
      for (const d of deltas) ctx.emit(flowRecord(d, ctx.host, time));
      nat?.endPoll();
      const count = new Uint8Array(walked.valueSize);
      walked.lookup(new Uint8Array(4), count);
      const w = new DataView(count.buffer);
      ctx.counters.set("tracked_tcp_sockets", w.getUint32(ITER_WALKED.offsets.tcp, true));
      ctx.counters.set(
        "tracked_udp_flows",
        accounts.udpFlows + w.getUint32(ITER_WALKED.offsets.udp, true),
      );
      ctx.counters.set(
        "ports_collapsed",
        kernelCounts.sumPerCpuU64(NETFLOW_COUNTS.indexOf("ports_collapsed")) + BigInt(collapsed),
      );
      ctx.counters.set(
        "closes_via_ring",
        kernelCounts.sumPerCpuU64(NETFLOW_COUNTS.indexOf("closes_via_ring")),
      );
      // How a poll's cost grows with open sockets (scripts/bench.ts reads these two).
      ctx.counters.add("polls");
      ctx.counters.add("poll_time_us", Math.round((performance.now() - started) * 1000));
    };

    // udp_socks and tcp_socks are socket storage: no capacity, not countable from user space.
    const reading = startReading(ring, obj.map("drops"), ctx, [
      { map: "udp_flows", capacity: udpFlows.maxEntries, entries: () => udpEntries },
      { map: "closed_flows", capacity: closed[0].maxEntries, entries: () => closedEntries },
      hashMapFill(obj.map("tcp_listen_ports")),
    ]);
    const polls = new Poller(ctx, config.poll, poll);

    return {
      attached,
      push() {}, // a probe has no inputs
      async flush(reason) {
        // What happened since the last poll is not lost at shutdown or reload.
        polls.now();
        if (reason === "shutdown") await ring.stop();
      },
      reconfigure(next: NetflowConfig) {
        // Map sizes and the cgroup are fixed at load; exclusions and the poll are not.
        const fixed = (c: NetflowConfig) =>
          [
            c.max_closed_flows,
            c.max_udp_flows,
            c.cgroup,
            c.ring_buffer_size,
            c.nat,
            c.nat_buffer_size,
            c.nat_max_entries,
          ].join();
        if (fixed(next) !== fixed(config)) return undefined;
        return () => {
          switches.exclusions = applyExclusions(obj, next);
          writeSwitches(obj, switches);
          if (next.poll !== config.poll) {
            polls.every(next.poll);
          }
          config = next;
        };
      },
      async close() {
        polls.cancel();
        await reading.stop();
        stack.dispose();
      },
    };
  } catch (e) {
    stack.dispose();
    throw e;
  }
}

/**
 * One pass of the socket iterators (TCP sockets, and UDP sockets counting in their own
 * storage): the delta of each socket whose counters moved.
 */
function* readSockets(
  iterators: BpfLink[],
  decodeFailed: (e: unknown) => void,
): Generator<FlowDelta> {
  for (const iterator of iterators) {
    const bytes = readIterator(iterator);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let at = 0; at + FLOW_DELTA.size <= bytes.length; at += FLOW_DELTA.size) {
      try {
        yield decodeFlowDelta(view, at);
      } catch (e) {
        decodeFailed(e);
      }
    }
    if (bytes.length % FLOW_DELTA.size) {
      decodeFailed(
        new DecodeError(`iterator output of ${bytes.length} bytes is not whole records`),
      );
    }
  }
}

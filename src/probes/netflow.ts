/**
 * The `netflow` probe: TCP and UDP flows, IPv4 and IPv6, per process, from stable hooks only
 * (tracepoints, tp_btf, a BPF iterator, cgroup address hooks: no kprobes, no guessed offsets).
 *
 * Every `poll` it emits one record per flow that did something since the last poll, with the
 * deltas; a TCP connection (or a connected UDP socket) that closes emits its last counts at once
 * (through the ring buffer), so a connection shorter than a poll is counted whole. How each
 * number is obtained, and why, is in bpf/netflow.bpf.c; turning totals into deltas is in
 * netflow_flows.ts.
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
import ipaddr from "ipaddr.js";
import { BpfObject, readIterator } from "../../ffi/object.ts";
import type { BpfLink } from "../../ffi/link.ts";
import type { BpfMap } from "../../ffi/map.ts";
import { describeError } from "../errors.ts";
import { type At, describeValue, integerList } from "../pipeline/schema.ts";
import type { ProbeStage, StageContext, StageDef } from "../pipeline/stage.ts";
import { cgroupV2Mount } from "../system/cgroup.ts";
import { openBpfObject } from "../system/bpf_objects.ts";
import { startReading } from "./drops.ts";
import { hashMapFill } from "./map_fill.ts";
import {
  cidrKey,
  DecodeError,
  decodeFlowKey,
  decodeTcpEvent,
  NETFLOW_SWITCHES_LAYOUT,
  NETFLOW_SWITCHES_SIZE,
  sumUdpCounts,
  TCP_FLOW_EVENT_SIZE,
  type TcpSocketCounters,
} from "./netflow_event.ts";
import { FlowAccounts, type FlowDelta, flowId, flowRecord, mergeDeltas } from "./netflow_flows.ts";

/** Options of a `netflow` probe. */
export interface NetflowConfig {
  /** Milliseconds between reads of the kernel's counters. */
  poll: number;
  /** Size of the kernel's TCP socket map and UDP flow map. */
  max_sockets: number;
  max_udp_flows: number;
  exclude_ports: number[];
  exclude_pids: number[];
  /** Normalised networks ("10.0.0.0/8"); a bare address is its /32 or /128. */
  exclude_cidrs: string[];
  /** The cgroup v2 directory for the UDP address hooks; "" finds it. */
  cgroup: string;
  /** Bytes of the ring buffer that carries closed connections' last counts. */
  ring_buffer_size: number;
}

/** UDP flows with no bytes for this many polls in a row leave the kernel map. */
const UDP_IDLE_POLLS = 3;

/** Bits of `exclusions` in bpf/netflow.bpf.c. */
const EXCLUDE_PORTS = 1, EXCLUDE_PIDS = 2, EXCLUDE_CIDRS = 4;

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
    try {
      // ipaddr.js also reads inet_aton's short forms ("10.0.0" is 10.0.0.0): a typo, here.
      const address = item.split("/")[0];
      if (!address.includes(":") && !ipaddr.IPv4.isValidFourPartDecimal(address)) {
        throw new Error("not a dotted quad");
      }
      if (item.includes("/")) {
        const [addr, bits] = ipaddr.parseCIDR(item);
        out.push(`${addr.toString()}/${bits}`);
      } else {
        const addr = ipaddr.parse(item);
        out.push(`${addr.toString()}/${addr.kind() === "ipv4" ? 32 : 128}`);
      }
    } catch {
      itemAt.report(`not an IP network: ${JSON.stringify(item)} (write e.g. "10.0.0.0/8")`);
      ok = false;
    }
  });
  return ok ? out : undefined;
}

export const netflowProbe: StageDef<NetflowConfig> = {
  type: "netflow",
  kind: "probe",
  // CAP_NET_ADMIN: the kernel loads cgroup programs only with it (docs/capabilities.md).
  capabilities: ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"],
  describe: "TCP and UDP flows per process: bytes, retransmits, RTT, connections (IPv4, IPv6).",
  schema: {
    poll: {
      type: "duration",
      default: "10s",
      doc: "how often flows are read and their deltas emitted (closes are emitted at once)",
    },
    max_sockets: {
      type: "integer",
      default: 65536,
      min: 16,
      max: 1 << 22,
      doc: "TCP sockets the kernel tracks (pid, direction); beyond, counted as sockets_full",
    },
    max_udp_flows: {
      type: "integer",
      default: 65536,
      min: 16,
      max: 1 << 22,
      doc: "UDP flows the kernel counts between polls; beyond, counted as flows_full",
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
      default: "256KiB",
      doc:
        "ring buffer for closed connections (a power of two, 4KiB or more); overflow is ring_lost",
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
        "tp_btf/inet_sock_set_state: handshakes (direction, tcp_established) and closes",
        "iter/tcp every poll: each socket's bytes_acked/bytes_received, srtt, mdev, total_retrans",
        "tp_btf/sock_send_length, sock_recv_length: UDP bytes per datagram, TCP server pids",
        `cgroup/sendmsg4,6 recvmsg4,6 on ${config.cgroup || "the cgroup v2 root"}: UDP peers`,
        "iter/udp every poll and cgroup/sock_release on the cgroup v2 root: connected UDP " +
        "sockets' own counters",
        `program objects: build/bpf/netflow.bpf.o; maps tcp_socks ${config.max_sockets}, ` +
        `udp_flows ${config.max_udp_flows}, ring buffer events ${config.ring_buffer_size} bytes`,
      ],
      reads: [],
    };
  },

  build(config, ctx) {
    return attach(config, ctx);
  },
};

/**
 * Writes the .bss section, `struct netflow_switches` (bpf/netflow.h): which exclude maps to
 * look at, and whether connected UDP sockets count in their own storage.
 */
function writeSwitches(obj: BpfObject, exclusions: number, socketCounters: boolean): void {
  const bss = obj.map(".bss");
  if (bss.valueSize !== NETFLOW_SWITCHES_SIZE) {
    throw new Error(
      `netflow .bss is ${bss.valueSize} bytes, not ${NETFLOW_SWITCHES_SIZE}: rebuild`,
    );
  }
  const L = NETFLOW_SWITCHES_LAYOUT, value = new DataView(new ArrayBuffer(NETFLOW_SWITCHES_SIZE));
  value.setUint32(L.exclusions, exclusions, true);
  value.setUint32(L.socket_counters, socketCounters ? 1 : 0, true);
  bss.update(new Uint8Array(4), new Uint8Array(value.buffer));
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
    obj.map("tcp_socks").setMaxEntries(config.max_sockets);
    obj.map("udp_flows").setMaxEntries(config.max_udp_flows);
    obj.map("events").setMaxEntries(config.ring_buffer_size);
    obj.load();
    let exclusions = applyExclusions(obj, config), socketCounters = false;
    writeSwitches(obj, exclusions, socketCounters);

    // The iterator first: it fills the listener ports that direction guesses need. Its first
    // output is dropped, so sockets already open report from zero at the first poll.
    const iterator = stack.use(obj.program("dump_tcp").attachIterator());
    readIterator(iterator);
    const udpIterator = stack.use(obj.program("dump_udp").attachIterator());
    readIterator(udpIterator); // notes the namespace it walks (nothing counted yet)
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
        socketCounters = true;
        writeSwitches(obj, exclusions, socketCounters);
      } catch (e) {
        ctx.log.debug(`${ctx.name}: connected UDP sockets counted per flow: ${describeError(e)}`);
      }
    }

    // After the peer hooks: a datagram counted before them would have no peer.
    for (const name of ["on_tcp_state", "on_send", "on_recv"]) {
      attached.push(stack.use(obj.program(name).attach()).description);
    }
    const emit = (deltas: Iterable<FlowDelta>) => {
      const time = ctx.clock.now();
      for (const d of deltas) ctx.emit(flowRecord(d, ctx.host, time));
    };
    const decodeFailed = (e: unknown) => {
      if (!(e instanceof DecodeError)) throw e;
      ctx.counters.add("decode_errors"); // warned about, rate limited, by the loss watch
      ctx.log.debug(`${ctx.name}: ${e.message}`);
    };

    // A closed TCP socket, or connected UDP socket: its last counts, at once.
    const ring = stack.use(obj.ringBuffer("events", (view, offset, length) => {
      let s: TcpSocketCounters;
      try {
        if (length < TCP_FLOW_EVENT_SIZE) {
          throw new DecodeError(`close record of ${length} bytes, not ${TCP_FLOW_EVENT_SIZE}`);
        }
        s = decodeTcpEvent(view, offset);
      } catch (e) {
        return decodeFailed(e);
      }
      const delta = accounts.tcp(s);
      if (delta) emit([delta]);
    }));

    const udpFlows = obj.map("udp_flows");
    let udpEntries = 0; // each poll's read counts the map: its fill, without a second walk
    const poll = () => {
      const started = performance.now();
      ring.drain(); // closes first: their sockets are no longer listed
      emit(
        mergeDeltas([
          ...readSockets([iterator, udpIterator], accounts, decodeFailed),
          ...readUdp(udpFlows),
        ]),
      );
      const size = accounts.size;
      ctx.counters.set("tracked_tcp_sockets", BigInt(size.tcpSockets));
      ctx.counters.set("tracked_udp_flows", BigInt(size.udpFlows));
      // How a poll's cost grows with open sockets (scripts/bench.ts reads these two).
      ctx.counters.add("polls");
      ctx.counters.add("poll_time_us", Math.round((performance.now() - started) * 1000));
    };
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

    // udp_socks is socket storage: no capacity, and not countable from user space.
    const reading = startReading(ring, obj.map("drops"), ctx, [
      hashMapFill(obj.map("tcp_socks")),
      { map: "udp_flows", capacity: udpFlows.maxEntries, entries: () => udpEntries },
      hashMapFill(obj.map("tcp_listen_ports")),
    ]);
    const tick = () => {
      try {
        poll();
      } catch (e) {
        ctx.counters.add("poll_errors");
        ctx.log.warn(`${ctx.name}: poll failed: ${describeError(e)}`);
      }
    };
    let timer = setInterval(tick, config.poll);

    return {
      attached,
      push() {}, // a probe has no inputs
      async flush(reason) {
        // What happened since the last poll is not lost at shutdown or reload.
        poll();
        if (reason === "shutdown") await ring.stop();
      },
      reconfigure(next: NetflowConfig) {
        // Map sizes and the cgroup are fixed at load; exclusions and the poll are not.
        const fixed = (c: NetflowConfig) =>
          [c.max_sockets, c.max_udp_flows, c.cgroup, c.ring_buffer_size].join();
        if (fixed(next) !== fixed(config)) return undefined;
        return () => {
          exclusions = applyExclusions(obj, next);
          writeSwitches(obj, exclusions, socketCounters);
          if (next.poll !== config.poll) {
            clearInterval(timer);
            timer = setInterval(tick, next.poll);
          }
          config = next;
        };
      },
      async close() {
        clearInterval(timer);
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
 * storage): each socket's delta.
 */
function* readSockets(
  iterators: BpfLink[],
  accounts: FlowAccounts,
  decodeFailed: (e: unknown) => void,
): Generator<FlowDelta> {
  for (const iterator of iterators) {
    const bytes = readIterator(iterator);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let at = 0; at + TCP_FLOW_EVENT_SIZE <= bytes.length; at += TCP_FLOW_EVENT_SIZE) {
      let s: TcpSocketCounters;
      try {
        s = decodeTcpEvent(view, at);
      } catch (e) {
        decodeFailed(e);
        continue;
      }
      const delta = accounts.tcp(s);
      if (delta) yield delta;
    }
    if (bytes.length % TCP_FLOW_EVENT_SIZE) {
      decodeFailed(
        new DecodeError(`iterator output of ${bytes.length} bytes is not whole records`),
      );
    }
  }
  accounts.endTcpPass();
}

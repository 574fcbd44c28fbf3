/**
 * The `dns` probe: every DNS request made (and, if asked, answered) on this host, UDP and TCP,
 * IPv4 and IPv6, as `dnsflow` records: one per request, with its latency, rcode, name, type and
 * the asking process. It also hands each answer's addresses to `dns_domain` stages that name it
 * in `answers_from`, so netflow records get their `dst_domain`.
 *
 * ```yaml
 * probes:
 *   dns:
 *     type: dns
 *     ports: [53]            # DNS ports to watch (either end)
 *     sides: [outgoing]      # add `incoming` to also report queries a local server answers
 *     timeout: 5s            # no answer by then: rcode -1 (TIMEOUT)
 * ```
 *
 * The kernel copies DNS payloads (bpf/dns.bpf.c); matching queries to responses, TCP
 * reassembly and decoding are in dns_messages.ts.
 */
import { bootToRealtimeOffsetNs, CLOCK_BOOTTIME, clockNs } from "../../ffi/libc.ts";
import { describeError } from "../errors.ts";
import { integerList } from "../pipeline/schema.ts";
import type { ProbeStage, StageContext, StageDef } from "../pipeline/stage.ts";
import { cgroupV2Mount } from "../system/cgroup.ts";
import { openBpfObject } from "../system/bpf_objects.ts";
import { startReading } from "./drops.ts";
import {
  decodeDnsEvent,
  DNS_SETTINGS_LAYOUT,
  DNS_SIDE_CLIENT,
  DNS_SIDE_SERVER,
  DnsDecodeError,
} from "./dns_event.ts";
import { answerRecord, dnsflowRecord, DnsTracker } from "./dns_messages.ts";

/** Options of a `dns` probe. */
export interface DnsConfig {
  ports: number[];
  /** `outgoing`: local processes' queries; `incoming`: queries a local server answers. */
  sides: string[];
  /** Milliseconds without an answer before a request counts as timed out. */
  timeout: number;
  max_pending: number;
  ring_buffer_size: number;
  /** The cgroup v2 directory to attach to; "" finds it. */
  cgroup: string;
}

const SIDES = ["outgoing", "incoming"];

export const dnsProbe: StageDef<DnsConfig> = {
  type: "dns",
  kind: "probe",
  // CAP_NET_ADMIN: the kernel loads cgroup programs only with it (docs/capabilities.md).
  capabilities: ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"],
  describe: "DNS requests (UDP and TCP, IPv4 and IPv6): latency, rcode, name, asking process.",
  schema: {
    ports: {
      type: "custom",
      default: [53],
      parse: integerList("a port", 1, 65535, true),
      doc: "DNS ports: a packet with one of them at either end is DNS",
    },
    sides: {
      type: "strings",
      default: ["outgoing"],
      doc: "outgoing: queries local processes send; incoming: queries a local server answers",
    },
    timeout: {
      type: "duration",
      default: "5s",
      doc: "a request with no answer by then is reported with rcode -1 (TIMEOUT)",
    },
    max_pending: {
      type: "integer",
      default: 10000,
      min: 1,
      max: 1 << 22,
      doc: "queries awaiting an answer; beyond, the oldest is dropped (pending_dropped)",
    },
    ring_buffer_size: {
      type: "size",
      default: "1MiB",
      doc: "ring buffer for DNS packets (a power of two, 4KiB or more); overflow is ring_lost",
    },
    cgroup: {
      type: "string",
      default: "",
      doc: "cgroup v2 directory to attach to; empty: found at start",
    },
  },
  validate(config, at) {
    const problems = config.sides
      .map((s, i) => [s, i] as const)
      .filter(([s]) => !SIDES.includes(s))
      .map(([s, i]) =>
        at.child("sides").child(i).problem(`unknown side "${s}"; known: ${SIDES.join(", ")}`)
      );
    const n = config.ring_buffer_size;
    if (n < 4096 || (n & (n - 1)) !== 0) {
      problems.push(
        at.child("ring_buffer_size").problem(
          `must be a power of two of at least 4KiB (the kernel's rule for ring buffers), got ${n} bytes`,
        ),
      );
    }
    return problems;
  },
  example: { ports: [53, 5353], sides: ["outgoing", "incoming"], timeout: "2s" },

  explain(config) {
    return {
      details: [
        `cgroup_skb ingress and egress on ${config.cgroup || "the cgroup v2 root"}: ` +
        `DNS payloads on ports ${config.ports.join(", ")}`,
        "cgroup/connect4,6 sendmsg4,6 recvmsg4,6: the process owning each DNS socket",
        `sides ${config.sides.join(", ")}; timeout ${config.timeout} ms; ` +
        `program objects: build/bpf/dns.bpf.o`,
      ],
      reads: [],
    };
  },

  build(config, ctx) {
    return attach(config, ctx);
  },
};

function attach(config: DnsConfig, ctx: StageContext): ProbeStage {
  const stack = new DisposableStack();
  try {
    const obj = stack.use(openBpfObject("dns"));
    const settings = obj.map(".rodata").initialValue();
    if (settings.length !== DNS_SETTINGS_LAYOUT.size) {
      throw new Error(`dns .rodata is ${settings.length} bytes, not ${DNS_SETTINGS_LAYOUT.size}`);
    }
    const sides = (config.sides.includes("outgoing") ? DNS_SIDE_CLIENT : 0) |
      (config.sides.includes("incoming") ? DNS_SIDE_SERVER : 0);
    new DataView(settings.buffer, settings.byteOffset).setUint32(0, sides, true);
    obj.map("events").setMaxEntries(config.ring_buffer_size);
    obj.load();
    for (const port of config.ports) {
      obj.map("dns_ports").update(
        new Uint8Array(new Uint32Array([port]).buffer), // an array map: u32 keys
        new Uint8Array([1]),
      );
    }
    const cgroup = config.cgroup || cgroupV2Mount();
    const attached: string[] = [];
    // Owners first: a packet seen before its socket's owner is noted has pid 0.
    for (
      const name of [
        "dns_connect4",
        "dns_connect6",
        "dns_sendmsg4",
        "dns_sendmsg6",
        "dns_recvmsg4",
        "dns_recvmsg6",
        "dns_egress",
        "dns_ingress",
      ]
    ) {
      attached.push(stack.use(obj.program(name).attachCgroup(cgroup)).description);
    }

    const tracker = new DnsTracker({
      timeoutNs: BigInt(config.timeout) * 1_000_000n,
      maxPending: config.max_pending,
    });
    // The tracker runs on the kernel's boot-time clock; records carry wall-clock time.
    let offset = bootToRealtimeOffsetNs();
    const emitRequests = (requests: ReturnType<DnsTracker["expire"]>, bootNs: bigint) => {
      for (const r of requests) ctx.emit(dnsflowRecord(r, ctx.host, bootNs + offset));
    };
    // Counted once a drained batch (and at each report), not per packet: a counter update
    // costs about what reading a packet does.
    let cut = 0;
    const countCut = () => {
      if (cut > 0) ctx.counters.add("payloads_cut", cut);
      cut = 0;
    };
    const ring = stack.use(obj.ringBuffer("events", (view, at, length) => {
      let decoded;
      try {
        decoded = decodeDnsEvent(view, at, length);
      } catch (e) {
        if (!(e instanceof DnsDecodeError)) throw e;
        ctx.counters.add("decode_errors"); // warned about, rate limited, by the loss watch
        ctx.log.debug(`${ctx.name}: ${e.message}`);
        return;
      }
      if (decoded.cut) cut++;
      const { requests, answers } = tracker.add(decoded.segment);
      emitRequests(requests, decoded.segment.timeNs);
      const time = decoded.segment.timeNs + offset;
      for (const a of answers) ctx.emitSide(answerRecord(a, ctx.host, time));
    }, {
      onBatchEnd: () => {
        offset = bootToRealtimeOffsetNs();
        countCut();
      },
    }));

    const report = () => {
      countCut();
      const s = tracker.stats;
      ctx.counters.set("malformed", BigInt(s.malformed));
      ctx.counters.set("unmatched_responses", BigInt(s.unmatchedResponses));
      ctx.counters.set("retransmits", BigInt(s.retransmits));
      ctx.counters.set("pending_dropped", BigInt(s.pendingDropped));
      ctx.counters.set("ignored", BigInt(s.ignored));
      ctx.counters.set("pending", BigInt(tracker.pending));
      ctx.counters.set("tcp_bytes_buffered", BigInt(tracker.buffered));
    };
    const expire = () => {
      try {
        ring.drain(); // answers that arrived count before their queries time out
        const now = clockNs(CLOCK_BOOTTIME);
        emitRequests(tracker.expire(now), now);
        report();
      } catch (e) {
        ctx.log.warn(`${ctx.name}: ${describeError(e)}`);
      }
    };
    const timer = setInterval(expire, Math.min(1000, Math.max(50, config.timeout / 5)));
    // Queries awaiting an answer fill `pending` (max_pending); `owners` is socket storage,
    // with no capacity and not countable from user space.
    const reading = startReading(ring, obj.map("drops"), ctx, [
      { map: "pending", capacity: config.max_pending, entries: () => tracker.pending },
    ]);

    return {
      attached,
      push() {},
      async flush(reason) {
        expire();
        if (reason === "shutdown") await ring.stop();
      },
      async close() {
        clearInterval(timer);
        await reading.stop();
        report();
        stack.dispose();
      },
    };
  } catch (e) {
    stack.dispose();
    throw e;
  }
}

/**
 * Where an outgoing connection really went when conntrack rewrote its destination (a Service's
 * ClusterIP that kube-proxy's DNAT sends to a pod, a DNAT rule): netflow's `dst_nat_ip` and
 * `dst_nat_port`, DataKit's names.
 *
 * The collector listens to conntrack's NEW and DESTROY events over netlink (no kprobes), and a
 * classic BPF filter in the socket passes only translated entries ({@linkcode DNAT_FILTER}):
 * events, not lookups, because a connection shorter than a poll is gone from the table before a
 * lookup could find it. {@linkcode decodeConntrackEvents} reads the messages;
 * {@linkcode NatTable} remembers each translation by the flow the socket sees (its local end,
 * the address it connected to), bounded, until a poll after conntrack destroyed it.
 *
 * Only the collector's network namespace's table is visible (with `hostNetwork: true`, the
 * host's, where kube-proxy translates pods' connections too). Incoming-side and SNAT/masquerade
 * translation are not reported. Pure: tested on hand-built messages.
 */
import type { SockFilter } from "../../ffi/netlink.ts";
import { formatAddress } from "./netflow_event.ts";
import type { FlowKey } from "./netflow_event.ts";

/** conntrack's multicast groups NFNLGRP_CONNTRACK_NEW (1) and _DESTROY (3), as a bitmask. */
export const CONNTRACK_GROUPS = (1 << 0) | (1 << 2);

const NLMSG_HDRLEN = 16, NFGENMSG_LEN = 4;
const NFNL_SUBSYS_CTNETLINK = 1, IPCTNL_MSG_CT_NEW = 0, IPCTNL_MSG_CT_DELETE = 2;
const NLMSG_ERROR = 2, NLMSG_DONE = 3;
const CTA_TUPLE_ORIG = 1, CTA_TUPLE_REPLY = 2, CTA_STATUS = 3, CTA_ID = 12;
const CTA_TUPLE_IP = 1, CTA_TUPLE_PROTO = 2;
const CTA_IP_V4_SRC = 1, CTA_IP_V4_DST = 2, CTA_IP_V6_SRC = 3, CTA_IP_V6_DST = 4;
const CTA_PROTO_NUM = 1, CTA_PROTO_SRC_PORT = 2, CTA_PROTO_DST_PORT = 3;
/** enum ip_conntrack_status: IPS_DST_NAT_BIT is 5. */
export const IPS_DST_NAT = 1 << 5;
const NLA_TYPE_MASK = 0x3fff; // without NLA_F_NESTED and NLA_F_NET_BYTEORDER

// Classic BPF (linux/filter.h, linux/bpf_common.h).
const BPF_LD = 0x00, BPF_LDX = 0x01, BPF_JMP = 0x05, BPF_RET = 0x06, BPF_MISC = 0x07;
const BPF_W = 0x00, BPF_IMM = 0x00, BPF_ABS = 0x20, BPF_IND = 0x40;
const BPF_JEQ = 0x10, BPF_JSET = 0x40, BPF_K = 0x00, BPF_TAX = 0x00;
/** SKF_AD_OFF + SKF_AD_NLATTR: A = offset of the attribute of type X from offset A, or 0. */
const SKF_AD_NLATTR = (-0x1000 + 12) >>> 0;

/**
 * Passes only messages whose CTA_STATUS has IPS_DST_NAT: the kernel drops the rest before they
 * reach the receive buffer (most connections are not translated).
 */
export const DNAT_FILTER: readonly SockFilter[] = [
  { code: BPF_LD | BPF_IMM, jt: 0, jf: 0, k: NLMSG_HDRLEN + NFGENMSG_LEN }, // A = first attribute
  { code: BPF_LDX | BPF_IMM, jt: 0, jf: 0, k: CTA_STATUS }, // X = the type searched
  { code: BPF_LD | BPF_W | BPF_ABS, jt: 0, jf: 0, k: SKF_AD_NLATTR }, // A = its offset
  { code: BPF_JMP | BPF_JEQ | BPF_K, jt: 4, jf: 0, k: 0 }, // no status: drop
  { code: BPF_MISC | BPF_TAX, jt: 0, jf: 0, k: 0 },
  { code: BPF_LD | BPF_W | BPF_IND, jt: 0, jf: 0, k: 4 }, // A = the status (big-endian, as loads read)
  { code: BPF_JMP | BPF_JSET | BPF_K, jt: 0, jf: 1, k: IPS_DST_NAT },
  { code: BPF_RET | BPF_K, jt: 0, jf: 0, k: 0xffffffff }, // keep the whole message
  { code: BPF_RET | BPF_K, jt: 0, jf: 0, k: 0 },
];

/** One end of a conntrack tuple. */
interface Endpoint {
  ip: string;
  port: number;
}

/** A translated connection conntrack made (`new`) or forgot (`destroy`). */
export interface ConntrackEvent {
  kind: "new" | "destroy";
  /** conntrack's id of the entry (CTA_ID): a DESTROY names the entry a NEW made. */
  id: number;
  transport: "tcp" | "udp";
  /** The original direction, as the connecting socket sees it: its end, and where it connected. */
  source: Endpoint;
  destination: Endpoint;
  /** Where the reply comes from: the real destination. */
  translated: Endpoint;
}

/** A message conntrack could not have sent. */
export class ConntrackDecodeError extends Error {
  override name = "ConntrackDecodeError";
}

/** The attributes of one nesting level: type → [offset of the payload, its length]. */
function attributes(view: DataView, at: number, end: number): Map<number, [number, number]> {
  const out = new Map<number, [number, number]>();
  while (at + 4 <= end) {
    const len = view.getUint16(at, true), type = view.getUint16(at + 2, true) & NLA_TYPE_MASK;
    if (len < 4 || at + len > end) throw new ConntrackDecodeError(`attribute ${type} overruns`);
    out.set(type, [at + 4, len - 4]);
    at += (len + 3) & ~3;
  }
  return out;
}

function ipOf(view: DataView, [at, len]: [number, number]): string {
  const bytes = new Uint8Array(view.buffer, view.byteOffset + at, len);
  if (len === 4) return bytes.join(".");
  if (len === 16) return formatAddress(bytes, false);
  throw new ConntrackDecodeError(`address of ${len} bytes`);
}

/** A tuple's source and destination, and its transport (undefined: not TCP or UDP). */
function tuple(view: DataView, [at, len]: [number, number]) {
  const t = attributes(view, at, at + len);
  const ip = t.get(CTA_TUPLE_IP), proto = t.get(CTA_TUPLE_PROTO);
  if (!ip || !proto) throw new ConntrackDecodeError("tuple without addresses or protocol");
  const a = attributes(view, ip[0], ip[0] + ip[1]),
    p = attributes(view, proto[0], proto[0] + proto[1]);
  const src = a.get(CTA_IP_V4_SRC) ?? a.get(CTA_IP_V6_SRC);
  const dst = a.get(CTA_IP_V4_DST) ?? a.get(CTA_IP_V6_DST);
  const num = p.get(CTA_PROTO_NUM), sport = p.get(CTA_PROTO_SRC_PORT);
  const dport = p.get(CTA_PROTO_DST_PORT);
  if (!src || !dst || !num) throw new ConntrackDecodeError("tuple without its addresses");
  const protocol = view.getUint8(num[0]);
  const transport = protocol === 6 ? "tcp" : protocol === 17 ? "udp" : undefined;
  return {
    transport,
    source: { ip: ipOf(view, src), port: sport ? view.getUint16(sport[0]) : 0 },
    destination: { ip: ipOf(view, dst), port: dport ? view.getUint16(dport[0]) : 0 },
  } as const;
}

/**
 * The translated TCP and UDP connections in one datagram of conntrack events (other
 * protocols, untranslated entries and other message types are skipped); throws a
 * {@linkcode ConntrackDecodeError} for bytes conntrack could not have sent.
 */
export function decodeConntrackEvents(bytes: Uint8Array): ConntrackEvent[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const events: ConntrackEvent[] = [];
  for (let at = 0; at + NLMSG_HDRLEN <= bytes.length;) {
    const len = view.getUint32(at, true), type = view.getUint16(at + 4, true);
    if (len < NLMSG_HDRLEN || at + len > bytes.length) {
      throw new ConntrackDecodeError(`message of ${len} bytes in ${bytes.length - at}`);
    }
    const next = at + ((len + 3) & ~3);
    const msg = type & 0xff;
    const ours = type >> 8 === NFNL_SUBSYS_CTNETLINK &&
      (msg === IPCTNL_MSG_CT_NEW || msg === IPCTNL_MSG_CT_DELETE);
    if (type === NLMSG_ERROR || type === NLMSG_DONE || !ours) {
      at = next;
      continue;
    }
    const attrs = attributes(view, at + NLMSG_HDRLEN + NFGENMSG_LEN, at + len);
    const status = attrs.get(CTA_STATUS), orig = attrs.get(CTA_TUPLE_ORIG);
    const reply = attrs.get(CTA_TUPLE_REPLY), id = attrs.get(CTA_ID);
    if (!status || !orig || !reply) throw new ConntrackDecodeError("event without its tuples");
    if (view.getUint32(status[0]) & IPS_DST_NAT) {
      const o = tuple(view, orig), r = tuple(view, reply);
      if (o.transport) {
        events.push({
          kind: msg === IPCTNL_MSG_CT_NEW ? "new" : "destroy",
          id: id ? view.getUint32(id[0]) : 0,
          transport: o.transport,
          source: o.source,
          destination: o.destination,
          translated: r.source,
        });
      }
    }
    at = next;
  }
  return events;
}

/** Where a translated flow went. */
export interface NatTarget {
  ip: string;
  port: number;
}

const FOLDED_PORTS = new Set([0, -1]); // folded in the kernel (0) or to `*` (ANY_PORT)

function flowKey(transport: string, localIp: string, localPort: number, ip: string, port: number) {
  return `${transport}|${localIp}|${localPort}|${ip}|${port}`;
}

/**
 * The translations conntrack reported, by the flow the connecting socket sees. Bounded: beyond
 * `maxEntries` the oldest is forgotten (counted in `evicted`). A destroyed entry stays until
 * the end of the poll that read its DESTROY (the socket's close, which comes first, is read in
 * that poll at the latest).
 */
export class NatTable {
  readonly #byFlow = new Map<string, { target: NatTarget; id: number }>();
  #destroyed: [string, number][] = [];
  /** Folded flows (client port `*`) by their other three parts: one target, or null: several. */
  #byDestination: Map<string, NatTarget | null> | undefined;
  /** Translations forgotten for room. */
  evicted = 0;

  constructor(readonly maxEntries: number) {}

  /** Translations remembered. */
  get size(): number {
    return this.#byFlow.size;
  }

  /** Takes one event in. */
  add(e: ConntrackEvent): void {
    const key = flowKey(
      e.transport,
      e.source.ip,
      e.source.port,
      e.destination.ip,
      e.destination.port,
    );
    if (e.kind === "destroy") {
      this.#destroyed.push([key, e.id]);
      return;
    }
    this.#byFlow.delete(key); // re-inserted as the newest
    if (this.#byFlow.size >= this.maxEntries) {
      this.#byFlow.delete(this.#byFlow.keys().next().value!);
      this.evicted++;
    }
    this.#byFlow.set(key, { target: { ...e.translated }, id: e.id });
    this.#byDestination = undefined;
  }

  /**
   * Where an outgoing flow went, when conntrack translated it. A flow whose client port was
   * folded (closes summed in the kernel) is matched by its other parts, when every translation
   * of those agrees (one backend); with several, it cannot be split and stays untagged.
   */
  lookup(k: FlowKey): NatTarget | undefined {
    if (k.direction !== "outgoing") return undefined;
    if (!FOLDED_PORTS.has(k.localPort)) {
      return this.#byFlow.get(
        flowKey(k.transport, k.localIp, k.localPort, k.remoteIp, k.remotePort),
      )
        ?.target;
    }
    this.#byDestination ??= this.#foldedIndex();
    return this.#byDestination.get(`${k.transport}|${k.localIp}|${k.remoteIp}|${k.remotePort}`) ??
      undefined;
  }

  #foldedIndex(): Map<string, NatTarget | null> {
    const index = new Map<string, NatTarget | null>();
    for (const [key, { target }] of this.#byFlow) {
      const [transport, localIp, , ip, port] = key.split("|");
      const k = `${transport}|${localIp}|${ip}|${port}`;
      const seen = index.get(k);
      if (seen === undefined) index.set(k, target);
      else if (seen && (seen.ip !== target.ip || seen.port !== target.port)) index.set(k, null);
    }
    return index;
  }

  /** After a poll's flows were tagged: forgets the entries conntrack destroyed. */
  endPoll(): void {
    for (const [key, id] of this.#destroyed) {
      // A NEW of the same flow since (the port reused) is another entry: it stays.
      if (this.#byFlow.get(key)?.id === id) this.#byFlow.delete(key);
    }
    if (this.#destroyed.length) this.#byDestination = undefined;
    this.#destroyed = [];
  }
}

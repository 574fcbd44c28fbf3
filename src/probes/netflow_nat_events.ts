/**
 * The netflow probe's conntrack subscription: the netlink socket (ffi/netlink.ts), read without
 * blocking at each poll, into a {@linkcode NatTable} that tags the poll's flows. Losses are
 * counted in `ebpf_collector`: `nat_overruns` (ENOBUFS: the kernel dropped events the buffer
 * could not hold between polls) and `nat_evicted` (translations forgotten for room); the gauge
 * `nat_translations` is how many are remembered. A host without conntrack's netlink interface
 * loses only these tags, with one warning.
 */
import { NETLINK_NETFILTER, NetlinkSocket } from "../../ffi/netlink.ts";
import { describeError } from "../errors.ts";
import type { Loss, StageContext } from "../pipeline/stage.ts";
import type { FlowDelta } from "./netflow_flows.ts";
import {
  CONNTRACK_GROUPS,
  ConntrackDecodeError,
  decodeConntrackEvents,
  DNAT_FILTER,
  NatTable,
} from "./netflow_nat.ts";

export const NAT_OVERRUNS: Loss = {
  counter: "nat_overruns",
  what: "times conntrack events were dropped (dst_nat_* missing on some flows)",
  why: "raise nat_buffer_size, or poll more often",
};

export const NAT_EVICTED: Loss = {
  counter: "nat_evicted",
  what: "NAT translations forgotten for room",
  why: "raise nat_max_entries",
};

/** The subscription of one running probe; closing it closes the socket. */
export interface NatEvents extends Disposable {
  /** Takes in every event waiting (call at the start of a poll). */
  read(): void;
  /** The delta with its translation, when conntrack made one. */
  tag(d: FlowDelta): FlowDelta;
  /** After the poll's flows were tagged. */
  endPoll(): void;
}

/**
 * Subscribes to conntrack's translated NEW/DESTROY events; without them (no conntrack netlink
 * in this kernel, no CAP_NET_ADMIN) one warning, and flows go untagged.
 */
export function openNatEvents(
  config: { nat_buffer_size: number; nat_max_entries: number },
  ctx: StageContext,
): NatEvents {
  const table = new NatTable(config.nat_max_entries);
  let socket: NetlinkSocket | undefined;
  try {
    socket = NetlinkSocket.open({
      protocol: NETLINK_NETFILTER,
      groups: CONNTRACK_GROUPS,
      bufferBytes: config.nat_buffer_size,
      filter: DNAT_FILTER,
    });
  } catch (e) {
    ctx.log.warn(`${ctx.name}: no dst_nat_ip/dst_nat_port (conntrack events): ${describeError(e)}`);
  }
  ctx.counters.add("nat_overruns", 0); // shown from the start, as a loss that can grow
  // One datagram holds one event (a few hundred bytes); 64 KiB is any message's bound.
  const buffer = new Uint8Array(65536);
  return {
    read() {
      if (!socket) return;
      for (;;) {
        const r = socket.receive(buffer);
        if (r === "empty") break;
        if (r === "overrun") {
          ctx.counters.add("nat_overruns");
          continue;
        }
        try {
          for (const event of decodeConntrackEvents(buffer.subarray(0, r))) table.add(event);
        } catch (e) {
          if (!(e instanceof ConntrackDecodeError)) throw e;
          ctx.counters.add("decode_errors");
          ctx.log.debug(`${ctx.name}: conntrack event: ${e.message}`);
        }
      }
      ctx.counters.set("nat_translations", table.size);
      ctx.counters.set("nat_evicted", table.evicted);
    },
    tag(d) {
      const target = table.lookup(d.key);
      return target ? { ...d, dstNat: target } : d;
    },
    endPoll() {
      table.endPoll();
    },
    [Symbol.dispose]() {
      socket?.close();
    },
  };
}

/**
 * What the dns probe's unit tests share: DNS messages encoded with dns-packet, the sockets
 * they travel on, and times.
 */
// @ts-types="@types/dns-packet"
import dnsPacket from "dns-packet";
import type { DnsRequest, DnsSegment } from "./dns_tracker.ts";

export const SECOND = 1_000_000_000n;
export const T0 = 1_764_085_464_000_000_000n;

/** A local process asking a resolver over UDP. */
export const CLIENT = {
  side: "client",
  family: "IPv4",
  transport: "udp",
  localIp: "10.0.0.5",
  localPort: 40000,
  remoteIp: "10.0.0.2",
  remotePort: 53,
  pid: 4242,
  comm: "curl",
} as const;

/** A local server answering a remote client over UDP. */
export const SERVER = {
  ...CLIENT,
  side: "server",
  localIp: "192.168.1.1",
  localPort: 53,
  remoteIp: "192.168.1.77",
  remotePort: 51234,
  pid: 700,
  comm: "named",
} as const;

/** A request as the tracker gives it: a client's AAAA query answered after 2.5 ms. */
export const SUCCESS: DnsRequest = {
  ...CLIENT,
  name: "www.example.com",
  qtype: "AAAA",
  rcode: 0,
  latencyNs: 2_500_000n,
  truncated: true,
  retransmits: 2,
};

export type Socket = Omit<DnsSegment, "timeNs" | "outbound" | "payload">;

export function seg(
  socket: Socket,
  outbound: boolean,
  timeNs: bigint,
  payload: Uint8Array,
  payloadLength?: number,
): DnsSegment {
  const s: DnsSegment = { ...socket, outbound, timeNs, payload };
  if (payloadLength !== undefined) s.payloadLength = payloadLength;
  return s;
}

export function query(name: string, type: dnsPacket.RecordType = "A", id = 0x1234): Uint8Array {
  return new Uint8Array(dnsPacket.encode({
    type: "query",
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name }],
  }));
}

export function response(
  name: string,
  o: {
    type?: dnsPacket.RecordType;
    id?: number;
    rcode?: number;
    flags?: number;
    answers?: dnsPacket.Answer[];
    additionals?: dnsPacket.Answer[];
  } = {},
): Uint8Array {
  return new Uint8Array(dnsPacket.encode({
    type: "response",
    id: o.id ?? 0x1234,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (o.flags ?? 0) |
      (o.rcode ?? 0),
    questions: [{ type: o.type ?? "A", name }],
    answers: o.answers ?? [],
    additionals: o.additionals ?? [],
  }));
}

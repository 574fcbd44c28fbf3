/**
 * A netlink socket that listens to multicast groups (conntrack's events: src/probes/netflow_nat.ts),
 * read without blocking. The kernel drops what the receive buffer cannot hold and says so once
 * with ENOBUFS on the next read: {@linkcode NetlinkSocket.receive} returns that as `"overrun"`,
 * for the caller to count.
 *
 * @example
 * ```ts
 * using socket = NetlinkSocket.open({ protocol: NETLINK_NETFILTER, groups: 0b101, bufferBytes: 1 << 22 });
 * const buffer = new Uint8Array(65536);
 * for (let r; (r = socket.receive(buffer)) !== "empty";) if (r !== "overrun") parse(buffer.subarray(0, r));
 * ```
 */
import { LibbpfError } from "./errors.ts";
import { warnLeak } from "./leak.ts";
import { errno, libc } from "./libc.ts";

export const NETLINK_NETFILTER = 12;
const AF_NETLINK = 16, SOCK_RAW = 3, SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1, SO_RCVBUF = 8, SO_RCVBUFFORCE = 33, SO_ATTACH_FILTER = 26;
const MSG_DONTWAIT = 0x40;
const EINTR = 4, EAGAIN = 11, ENOBUFS = 105;

/** One classic BPF instruction, `struct sock_filter`. */
export interface SockFilter {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** What {@linkcode NetlinkSocket.open} needs. */
export interface NetlinkOptions {
  /** NETLINK_* protocol, e.g. {@linkcode NETLINK_NETFILTER}. */
  protocol: number;
  /** Multicast groups as a bitmask (group n is bit n - 1), as `sockaddr_nl.nl_groups`. */
  groups: number;
  /** The receive buffer: SO_RCVBUFFORCE (CAP_NET_ADMIN), else SO_RCVBUF capped by rmem_max. */
  bufferBytes: number;
  /** A classic BPF program run on each message in the kernel: 0 drops it. */
  filter?: readonly SockFilter[];
}

const leaks = new FinalizationRegistry<string>((what) => warnLeak("NetlinkSocket", what));

/** A non-blocking netlink socket bound to multicast groups; its owner closes it. */
export class NetlinkSocket {
  #fd: number;
  readonly name: string;

  private constructor(fd: number, name: string) {
    this.#fd = fd;
    this.name = name;
    leaks.register(this, name, this);
  }

  /** Opens, sizes, filters and binds the socket; throws a LibbpfError naming the failed call. */
  static open(options: NetlinkOptions): NetlinkSocket {
    const c = libc();
    const name = `netlink protocol ${options.protocol} groups 0x${options.groups.toString(16)}`;
    const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, options.protocol);
    if (fd < 0) throw new LibbpfError("socket", errno(), [], name);
    const socket = new NetlinkSocket(fd, name);
    try {
      const size = new Uint8Array(new Int32Array([options.bufferBytes]).buffer);
      if (c.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, size, 4) < 0) {
        socket.#check(c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, size, 4), "setsockopt(SO_RCVBUF)");
      }
      if (options.filter) socket.#attachFilter(options.filter);
      // struct sockaddr_nl { u16 nl_family; u16 nl_pad; u32 nl_pid (0: the kernel picks); u32 nl_groups }
      const address = new DataView(new ArrayBuffer(12));
      address.setUint16(0, AF_NETLINK, true);
      address.setUint32(8, options.groups, true);
      socket.#check(c.bind(fd, new Uint8Array(address.buffer), 12), "bind");
      return socket;
    } catch (e) {
      socket.close();
      throw e;
    }
  }

  #check(ret: number, op: string): void {
    if (ret < 0) throw new LibbpfError(op, errno(), [], this.name);
  }

  #attachFilter(filter: readonly SockFilter[]): void {
    // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }
    const program = new DataView(new ArrayBuffer(filter.length * 8));
    filter.forEach((f, i) => {
      program.setUint16(i * 8, f.code, true);
      program.setUint8(i * 8 + 2, f.jt);
      program.setUint8(i * 8 + 3, f.jf);
      program.setUint32(i * 8 + 4, f.k, true);
    });
    const bytes = new Uint8Array(program.buffer);
    // struct sock_fprog { unsigned short len; (6 bytes padding) struct sock_filter *filter; }
    const fprog = new DataView(new ArrayBuffer(16));
    fprog.setUint16(0, filter.length, true);
    fprog.setBigUint64(8, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes))), true);
    const ret = libc().setsockopt(
      this.#fd,
      SOL_SOCKET,
      SO_ATTACH_FILTER,
      new Uint8Array(fprog.buffer),
      16,
    );
    this.#check(ret, "setsockopt(SO_ATTACH_FILTER)");
  }

  /**
   * One message (datagram) into `buffer`: its length; `"empty"` when none waits; `"overrun"`
   * when the kernel dropped messages since the last read (ENOBUFS: the buffer was full).
   */
  receive(buffer: Uint8Array<ArrayBuffer>): number | "empty" | "overrun" {
    if (this.#fd < 0) throw new Error(`NetlinkSocket ${this.name} is closed`);
    for (;;) {
      const n = Number(libc().recv(this.#fd, buffer, BigInt(buffer.length), MSG_DONTWAIT));
      if (n >= 0) return n;
      const err = errno();
      if (err === EINTR) continue;
      if (err === EAGAIN) return "empty";
      if (err === ENOBUFS) return "overrun";
      throw new LibbpfError("recv", err, [], this.name);
    }
  }

  /** Closes the socket; idempotent. */
  close(): void {
    if (this.#fd < 0) return;
    libc().close(this.#fd);
    this.#fd = -1;
    leaks.unregister(this);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

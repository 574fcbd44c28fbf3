/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * netflow: the layouts shared with user space (src/probes/netflow_event.ts mirrors them; the
 * layout test compares the two through the object's BTF).
 */
#ifndef NETFLOW_H
#define NETFLOW_H

#define NETFLOW_COMM_LEN 16

enum flow_direction {
	DIR_UNKNOWN = 0,
	DIR_OUTGOING = 1, /* this end opened the connection, or sent from a port the kernel chose */
	DIR_INCOMING = 2, /* this end accepted it, or owns a port bound on purpose (a server) */
};

/*
 * One flow: a process's traffic between a local and a remote address and port. Addresses are
 * always 16 bytes, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), so one LPM trie serves both
 * families and user space reads one shape.
 */
struct flow_key {
	__u32 pid;
	__u8 family;    /* AF_INET or AF_INET6 (IPv4-mapped peers count as AF_INET) */
	__u8 transport; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 direction; /* enum flow_direction */
	__u8 _pad0;
	__u16 local_port; /* host byte order */
	__u16 remote_port;
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__u32 _pad1;
};

/* UDP: counted per datagram, per CPU; cumulative, user space takes differences. */
struct udp_counts {
	__u64 bytes_read;
	__u64 bytes_written;
	char comm[NETFLOW_COMM_LEN];
	__u64 cgroup_id; /* the socket's cgroup v2 id (0 in a CPU's slot that saw no datagram) */
};

/* TCP: what we know of a socket beyond its own counters (kernel map tcp_socks, by cookie). */
struct tcp_sock_info {
	__u32 pid; /* 0 until a process of this end is seen (passive opens) */
	__u8 direction;
	__u8 handshake_seen; /* tcp_established counts only handshakes we saw */
	/* The kernel zeroes the socket's own port before the close tracepoint: kept from here. */
	__u16 local_port;
	char comm[NETFLOW_COMM_LEN];
};

/*
 * A TCP socket's cumulative counters, from the iter/tcp program (each poll, written to the
 * iterator's output) and from the close tracepoint (through the ring buffer, `closed` = 1).
 * Byte counts are application bytes: the SYN and FIN sequence numbers are taken out.
 */
struct tcp_flow_event {
	struct flow_key key;
	__u64 cookie; /* the socket's cookie: unique for the life of the system */
	__u64 bytes_written;
	__u64 bytes_read;
	__u32 retransmits; /* segments, as TcpRetransSegs counts them */
	__u32 rtt_us;      /* srtt_us >> 3, as tcpi_rtt */
	__u32 rtt_var_us;  /* mdev_us >> 2, as tcpi_rttvar */
	__u8 handshake_seen;
	__u8 closed;
	__u8 _pad[2];
	char comm[NETFLOW_COMM_LEN];
	__u64 cgroup_id; /* the socket's cgroup v2 id: the container the flow belongs to */
};

_Static_assert(sizeof(struct flow_key) == 48, "update FLOW_KEY_SIZE in src/probes/netflow_event.ts");
_Static_assert(sizeof(struct udp_counts) == 40,
	       "update UDP_COUNTS_SIZE in src/probes/netflow_event.ts");
_Static_assert(sizeof(struct tcp_flow_event) == 112,
	       "update TCP_FLOW_EVENT_SIZE in src/probes/netflow_event.ts");

/*
 * The remote end of one unconnected UDP sendmsg/recvmsg, kept in the socket (sk_storage)
 * between its two hooks; `tid` (pid_tgid) says which thread's call it belongs to.
 */
struct udp_peer {
	__u64 tid;
	__u8 family;
	__u8 _pad;
	__u16 port; /* host byte order */
	__u8 addr[16];
	__u32 _pad1;
};

/*
 * A UDP socket's storage (map udp_socks): the peer of its latest unconnected call, and, while
 * it is connected and one process uses it, its own byte counters for `key`; user space reads
 * them as tcp_flow_event records with transport UDP (iter/udp each poll, the ring at close).
 */
struct udp_sock_state {
	struct udp_peer peer;
	struct flow_key key;
	__u64 bytes_read;
	__u64 bytes_written;
	__u64 cgroup_id;
	char comm[NETFLOW_COMM_LEN];
	__u8 bound;  /* key, comm and cgroup_id are set: datagrams of `key` count here */
	__u8 closed; /* released: its last counts went to the ring buffer */
	__u8 _pad[6];
};

/* The .bss section, written by user space (src/probes/netflow.ts). */
struct netflow_switches {
	__u32 exclusions;      /* which exclude maps hold entries (EXCLUDE_* bits) */
	__u32 socket_counters; /* 1: connected UDP sockets may count in their own storage */
};

_Static_assert(sizeof(struct netflow_switches) == 8,
	       "update NETFLOW_SWITCHES_SIZE in src/probes/netflow.ts");

/* Key of the exclude_cidrs LPM trie: prefix length in bits over the 16-byte address. */
struct cidr_key {
	__u32 prefixlen;
	__u8 addr[16];
};

#endif /* NETFLOW_H */

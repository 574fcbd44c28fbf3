/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * netflow: the layouts shared with user space (src/probes/netflow_event.ts mirrors them; the
 * layout test compares the two through the object's BTF).
 */
#ifndef NETFLOW_H
#define NETFLOW_H

#include "commands.h" /* struct command_ref: the typed command a flow's process belongs to */

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
	__u16 local_port; /* host byte order; 0 in closed_flows: the client's port, folded */
	__u16 remote_port;
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__u32 netns; /* the socket's network namespace (its inode, as `ls -i /proc/PID/ns/net`) */
};

/* A flow and its cgroup (containers with their own network namespaces can share a 4-tuple). */
struct flow_id {
	struct flow_key key;
	__u64 cgroup_id; /* the socket's cgroup v2 id */
};

/*
 * What a flow did since user space last took it: one socket's delta (the iterators), or the
 * sum of closed sockets' last deltas (closed_flows, or the ring buffer when it is full). Byte
 * counts are application bytes. RTTs are summed over `rtt_samples` sockets (each its smoothed
 * RTT when read), so a row of many closes averages as its sockets do.
 */
struct flow_counts {
	__u64 bytes_written;
	__u64 bytes_read;
	__u64 rtt_sum_us;     /* srtt_us >> 3, as tcpi_rtt, summed */
	__u64 rtt_var_sum_us; /* mdev_us >> 2, as tcpi_rttvar, summed */
	__u32 retransmits;    /* segments, as TcpRetransSegs counts them */
	__u32 established;    /* handshakes seen */
	__u32 closed;	      /* sockets closed */
	__u32 rtt_samples;
	char comm[NETFLOW_COMM_LEN];
	/*
	 * Connects that failed (SYN_SENT to CLOSE), by the socket's error: ECONNREFUSED; ETIMEDOUT;
	 * EHOSTUNREACH, ENETUNREACH and the other errors an ICMP message gives; none (the
	 * application closed it first). A failed connect counts here only, not in `closed`.
	 */
	__u32 connect_refused;
	__u32 connect_timeouts;
	__u32 connect_unreachable;
	__u32 connect_aborted;
	__u32 resets_received; /* resets that ended a connection past its handshake */
	__u32 resets_sent;     /* resets this end's socket sent (after its close, often) */
	struct command_ref cmd; /* the typed command of the socket's process (zero: none) */
};

/* An iterator's output record, and a closed flow the closed_flows map had no room for. */
struct flow_delta {
	struct flow_id id;
	struct flow_counts counts;
};

/* UDP: counted per datagram, per CPU; cumulative, user space takes differences. */
struct udp_counts {
	__u64 bytes_read;
	__u64 bytes_written;
	char comm[NETFLOW_COMM_LEN];
	__u64 cgroup_id; /* the socket's cgroup v2 id (0 in a CPU's slot that saw no datagram) */
	struct command_ref cmd; /* the typed command of the process (zero: none) */
};

_Static_assert(sizeof(struct flow_key) == 48, "update FLOW_KEY_SIZE in src/probes/netflow_event.ts");
_Static_assert(sizeof(struct flow_id) == 56, "update FLOW_ID_SIZE in src/probes/netflow_event.ts");
_Static_assert(sizeof(struct flow_counts) == 104,
	       "update FLOW_COUNTS_SIZE in src/probes/netflow_event.ts");
_Static_assert(sizeof(struct flow_delta) == 160,
	       "update FLOW_DELTA_SIZE in src/probes/netflow_event.ts");
_Static_assert(sizeof(struct udp_counts) == 56,
	       "update UDP_COUNTS_SIZE in src/probes/netflow_event.ts");

/* A socket's cumulative counters as last read. */
struct sock_totals {
	__u64 bytes_written;
	__u64 bytes_read;
	__u32 retransmits;
	__u32 established; /* 1 once its handshake was seen */
};

/*
 * How a socket's deltas reach user space exactly once. An iterator pass of epoch E stages the
 * socket's totals the first time it shows the socket in E, and writes staged - taken; a pass
 * of a later epoch first moves staged to taken (user space starts a new epoch only after it
 * read the whole previous pass). A socket shown twice in one epoch (the iterator's buffer was
 * full) writes the same delta again; a close sums final - staged.
 */
struct sock_report {
	__u64 epoch; /* of `staged`; 0: never staged */
	struct sock_totals staged;
	struct sock_totals taken;
};

/* A TCP socket's storage (map tcp_socks): who owns it, and what was reported of it. */
struct tcp_sock_state {
	__u32 pid; /* 0 until a process of this end is seen (passive opens) */
	__u8 direction;
	__u8 handshake_seen; /* tcp_established counts only handshakes we saw */
	/* The kernel zeroes the socket's own port before the close tracepoint: kept from here. */
	__u16 local_port;
	char comm[NETFLOW_COMM_LEN];
	struct sock_report report;
	/* segs_in + segs_out when `report.staged` was read: nothing moves without a segment. */
	__u64 segs_staged;
	__u32 resets_received; /* summed into its flow at close */
	/*
	 * The error a connect reported while its socket stayed in SYN_SENT (an ICMP error that
	 * came while the process held the socket), which reading SO_ERROR clears.
	 */
	__u32 connect_error;
	struct command_ref cmd; /* set with pid */
};

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
 * it is connected and one process uses it, its own byte counters for `key` (read by the
 * iter/udp program each poll, summed into closed_flows at close).
 */
struct udp_sock_state {
	struct udp_peer peer;
	struct flow_key key;
	__u64 bytes_read;
	__u64 bytes_written;
	__u64 cgroup_id;
	char comm[NETFLOW_COMM_LEN];
	__u32 tgid; /* the process that bound it (its datagrams' fast path) */
	__u8 bound;  /* key, comm and cgroup_id are set: datagrams of `key` count here */
	__u8 closed; /* released: its last counts went to closed_flows */
	__u8 _pad[2];
	struct sock_report report;
	struct command_ref cmd; /* set with comm */
};

/* Settings fixed at load (.rodata). */
struct netflow_settings {
	__u16 fold_low; /* the client ports closed_flows folds to 0 (both 0: none) */
	__u16 fold_high;
};

/* Which exclude maps hold entries; user space sets it, so empty maps cost no lookups. */
enum netflow_exclusion {
	EXCLUDE_PORTS = 1,
	EXCLUDE_PIDS = 2,
	EXCLUDE_CIDRS = 4,
};

/* The .bss section, written by user space (src/probes/netflow.ts). */
struct netflow_switches {
	__u32 exclusions;      /* which exclude maps hold entries (enum netflow_exclusion bits) */
	__u32 socket_counters; /* 1: connected UDP sockets may count in their own storage */
	__u32 epoch;	       /* of the iterator pass under way (0: a warm-up, nothing staged) */
	__u32 gen;	       /* which closed_flows map closes are summed into */
};

_Static_assert(sizeof(struct netflow_switches) == 16,
	       "update NETFLOW_SWITCHES_SIZE in src/probes/netflow.ts");

/* Counted by the iterators (one pass at a time, in the reader's read()): sockets walked. */
struct iter_walked {
	__u32 epoch; /* the pass these are of */
	__u32 tcp;
	__u32 udp;
};

/* Counts the kernel keeps (per CPU). */
enum netflow_count {
	NETFLOW_COUNT_PORTS_COLLAPSED = 0,
	NETFLOW_COUNT_CLOSES_VIA_RING = 1, /* closed_flows was full: the close went through the ring */
	NETFLOW_COUNTS = 2,
};

/* The types user space mirrors that no map holds, kept in the BTF (see BTF_ANCHOR). */
BTF_ANCHOR(netflow, enum flow_direction *direction, enum netflow_exclusion *exclusion,
	   enum netflow_count *count, struct flow_delta *delta)

/* Key of the exclude_cidrs LPM trie: prefix length in bits over the 16-byte address. */
struct cidr_key {
	__u32 prefixlen;
	__u8 addr[16];
};

#endif /* NETFLOW_H */

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * dns: the layouts shared with user space (src/probes/dns_event.ts mirrors them; the layout
 * test compares the two through the object's BTF).
 */
#ifndef DNS_H
#define DNS_H

/* Bytes of DNS payload copied per packet: a UDP message with EDNS fits (4096 is the usual
 * advertised size); longer ones are cut and flagged by captured < payload_len. */
#define DNS_PAYLOAD_MAX 4096
#define DNS_COMM_LEN 16

#include "commands.h" /* struct command_ref: the typed command of the asking process */
/* Limits user space mirrors: an enum, so the layout test reads them from the BTF. */
enum dns_limit {
	/* A question name in wire form (length-prefixed labels, no final 0): at most 254 bytes,
	 * as user space's reader allows; longer ones take the ring. */
	DNS_NAME_MAX = 254,
};
/* A/AAAA answers a response's hash covers (more are counted, not read). */
#define DNS_ANSWERS_MAX 8

enum dns_side {
	DNS_SIDE_CLIENT = 1, /* a local process asked: the remote port is a DNS port */
	DNS_SIDE_SERVER = 2, /* a local server answered: the local port is a DNS port */
};

/* What a ring buffer record is: its first byte. */
enum dns_event_kind {
	DNS_EVENT_MESSAGE = 1, /* a message the kernel did not count: user space reads it whole */
	DNS_EVENT_ANSWERS = 2, /* counted in the kernel; sent for its A/AAAA answers only */
	DNS_EVENT_ROW = 3,     /* a finished request that found no room in the flows map */
};

struct dns_event {
	__u8 kind; /* enum dns_event_kind: DNS_EVENT_MESSAGE or DNS_EVENT_ANSWERS */
	__u8 family;    /* AF_INET or AF_INET6 */
	__u8 transport; /* IPPROTO_UDP or IPPROTO_TCP */
	__u8 side;      /* enum dns_side */
	__u8 outbound;  /* 1 egress (leaving the local socket), 0 ingress */
	__u8 _pad;
	__u16 captured;    /* bytes of the payload in payload[] */
	__u32 pid;         /* the local socket's owner, 0 when not seen yet */
	__u32 payload_len; /* the packet's L4 payload length */
	__u64 boot_ns;
	__u64 cgroup_id;  /* the local socket's cgroup v2 id (0: no socket), for containers */
	__u16 local_port; /* host byte order */
	__u16 remote_port;
	__u8 local_addr[16]; /* IPv4 as IPv4-mapped IPv6 */
	__u8 remote_addr[16];
	char comm[DNS_COMM_LEN];
	__u32 netns; /* the local socket's network namespace inode (0: no socket) */
	struct command_ref cmd; /* the local socket's owner's typed command (zero: none) */
	__u8 payload[DNS_PAYLOAD_MAX];
};

_Static_assert(__builtin_offsetof(struct dns_event, payload) == 104,
	       "update DNS_EVENT_LAYOUT in src/probes/dns_event.ts");

/*
 * One dnsflow row: every tag of the record (after the client's ephemeral port is folded, when
 * the pipeline lets the kernel do it) and the cgroup. The name is its hash; the name itself is
 * in the `names` map.
 */
struct dns_flow_key {
	__u64 name_hash;
	__u64 cgroup_id;
	__u32 pid;
	__s16 rcode;       /* with EDNS's upper bits; -1 a timeout (user space only) */
	__u16 qtype;
	__u16 local_port;  /* host byte order; 0: the client's ephemeral port, folded */
	__u16 remote_port;
	__u8 family;
	__u8 transport;
	__u8 side;
	__u8 truncated; /* the response had the TC bit */
	__u8 local_addr[16];
	__u8 remote_addr[16];
	char comm[DNS_COMM_LEN];
	__u32 netns; /* pods share addresses: their rows stay apart */
	__u32 _pad;
	struct command_ref cmd; /* the asking process's typed command (zero: none) */
};

/* A row's sums since user space last took them. */
struct dns_flow_stats {
	__u64 count;
	__u64 latency_sum; /* ns */
	__u64 latency_max;
	__u64 retransmits; /* queries sent again while the first awaited its answer */
};

/* A finished request through the ring buffer (the flows map was full). */
struct dns_row_event {
	__u8 kind; /* DNS_EVENT_ROW */
	__u8 _pad[7];
	struct dns_flow_key key;
	struct dns_flow_stats stats;
};

_Static_assert(sizeof(struct dns_flow_key) == 104, "update DNS_FLOW_KEY_LAYOUT");
_Static_assert(sizeof(struct dns_flow_stats) == 32, "update DNS_FLOW_STATS_LAYOUT");
_Static_assert(sizeof(struct dns_row_event) == 144, "update DNS_ROW_EVENT_SIZE");

/* A query awaiting its response: the socket pair, the DNS id and the question. */
struct dns_pending_key {
	__u64 name_hash;
	__u16 id;
	__u16 qtype;
	__u16 local_port;
	__u16 remote_port;
	__u8 family;
	__u8 side;
	__u8 _pad[2];
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__u32 netns; /* a query and its response share their socket's namespace */
};

struct dns_pending {
	__u64 first_ns; /* boot time the first copy of the query was seen */
	__u64 cgroup_id;
	__u32 pid;
	__u32 retransmits;
	char comm[DNS_COMM_LEN];
	struct command_ref cmd;
};

_Static_assert(sizeof(struct dns_pending_key) == 56, "update DNS_PENDING_KEY_LAYOUT");
_Static_assert(sizeof(struct dns_pending) == 56, "update DNS_PENDING_LAYOUT");

/*
 * A question name in wire form, as the message spells it: the value of `names`, keyed by its
 * hash. Hashed and compared as 64-bit words, zero past `len` to the end of the last one.
 */
struct dns_name {
	__u8 wire[256];
	__u32 len;
	__u32 _pad;
};

/* Counts the kernel keeps (per CPU); user space reports them by these names. */
enum dns_count {
	DNS_COUNT_FALLBACK = 0,   /* messages sent whole: TCP, odd, unmatched here */
	DNS_COUNT_ANSWERS = 1,    /* counted messages sent for their answers */
	DNS_COUNT_RETRANSMITS = 2,
	DNS_COUNT_IGNORED = 3,    /* queries travelling the response's way for their side */
	DNS_COUNT_PENDING_FULL = 4, /* queries user space matches instead */
	DNS_COUNT_ROWS_VIA_RING = 5, /* the flows map was full: rows sent through the ring */
	DNS_COUNT_NAME_COLLISIONS = 6,
	DNS_COUNT_PORTS_COLLAPSED = 7,
	DNS_COUNTS = 8,
};

/* The types user space mirrors that no map holds, kept in the BTF (see BTF_ANCHOR). */
BTF_ANCHOR(dns, enum dns_side *side, enum dns_event_kind *kind, enum dns_count *count,
	   enum dns_limit *limit)

/* Who owns a socket: set in process context (connect, sendmsg, recvmsg hooks). */
struct dns_owner {
	__u32 pid;
	char comm[DNS_COMM_LEN];
	__u32 _pad;
	struct command_ref cmd;
};

/* Read-only settings, set before load. */
struct dns_settings {
	__u32 sides;     /* bit per enum dns_side to report */
	__u32 aggregate; /* 1: count UDP requests here; 0: send every message (per_request) */
	__u32 answers;   /* 1: a dns_domain stage wants answers */
	__u16 fold_low;  /* the client ports to fold to 0 (both 0: none) */
	__u16 fold_high;
	__u64 min_ttl_ns; /* an answer is sent again after its TTL clamped to these */
	__u64 max_ttl_ns;
};

_Static_assert(sizeof(struct dns_settings) == 32, "update DNS_SETTINGS_LAYOUT");

/* Written by user space while running (.bss). */
struct dns_switches {
	__u32 gen; /* which flows map requests are summed into: user space reads the other */
	__u32 answers_gen; /* in the answers_sent key: a new value sends every answer again */
};

#endif /* DNS_H */

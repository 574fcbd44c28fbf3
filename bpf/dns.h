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

enum dns_side {
	DNS_SIDE_CLIENT = 1, /* a local process asked: the remote port is a DNS port */
	DNS_SIDE_SERVER = 2, /* a local server answered: the local port is a DNS port */
};

struct dns_event {
	__u64 boot_ns;
	__u64 cgroup_id;   /* the local socket's cgroup v2 id (0: no socket), for containers */
	__u32 pid; /* the local socket's owner, 0 when not seen yet */
	__u32 payload_len; /* the packet's L4 payload length */
	__u16 captured;    /* bytes of it in payload[] */
	__u8 family;       /* AF_INET or AF_INET6 */
	__u8 transport;    /* IPPROTO_UDP or IPPROTO_TCP */
	__u8 side;         /* enum dns_side */
	__u8 outbound;     /* 1 egress (leaving the local socket), 0 ingress */
	__u16 local_port;  /* host byte order */
	__u16 remote_port;
	__u8 _pad[2];
	__u8 local_addr[16]; /* IPv4 as IPv4-mapped IPv6 */
	__u8 remote_addr[16];
	char comm[DNS_COMM_LEN];
	__u8 payload[DNS_PAYLOAD_MAX];
};

_Static_assert(__builtin_offsetof(struct dns_event, payload) == 84,
	       "update DNS_EVENT_LAYOUT in src/probes/dns_event.ts");

/* Who owns a socket: set in process context (connect, sendmsg, recvmsg hooks). */
struct dns_owner {
	__u32 pid;
	char comm[DNS_COMM_LEN];
};

/* Read-only settings, set before load. */
struct dns_settings {
	__u32 sides; /* bit per enum dns_side to report */
};

#endif /* DNS_H */

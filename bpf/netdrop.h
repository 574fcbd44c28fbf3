/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * netdrop: the layouts shared with user space (src/probes/netdrop_event.ts mirrors them).
 */
#ifndef NETDROP_H
#define NETDROP_H

#define NETDROP_COMM_LEN 16

/* How the packet travelled when the kernel dropped it. */
enum drop_direction {
	DROP_DIR_UNKNOWN = 0,
	DROP_DIR_INGRESS = 1, /* received (it came in on an interface, loopback included) */
	DROP_DIR_EGRESS = 2,  /* sent from this host, not yet out */
};

/* Bits of drop_key.flags. */
enum drop_key_flag {
	DROP_KEY_LOCAL_FOLDED = 1,  /* local_port was a client's port, folded to 0 */
	DROP_KEY_REMOTE_FOLDED = 2, /* remote_port likewise */
};

/*
 * One kind of drop: the kernel's reason and what the packet was. Addresses are 16 bytes, IPv4
 * as IPv4-mapped IPv6, local (this host's end) and remote as netflow names them; family 0: the
 * packet had no network header yet (or was not IP), nothing but the reason and the socket.
 */
struct drop_key {
	__u32 reason;	 /* enum skb_drop_reason */
	__u32 pid;	 /* of the socket's owner; 0: unknown */
	__u64 cgroup_id; /* of the socket; 0: no socket */
	__u8 family;	 /* AF_INET, AF_INET6 or 0 */
	__u8 transport;	 /* IP protocol number (0 with no network header) */
	__u8 direction;	 /* enum drop_direction */
	__u8 flags;	 /* enum drop_key_flag */
	__u16 local_port; /* host byte order; 0: none (or folded, see flags) */
	__u16 remote_port;
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__u32 netns; /* the network namespace's inode: the device's, else the socket's; 0: unknown */
	__u32 _pad;
};

/* What was dropped of one key (summed with atomic adds: one entry, every CPU). */
struct drop_counts {
	__u64 packets;
	__u64 bytes; /* from the IP header on (no network header: skb->len, from where it is) */
	char comm[NETDROP_COMM_LEN]; /* the socket owner's process name ("" unknown) */
};

_Static_assert(sizeof(struct drop_key) == 64, "update DROP_KEY_SIZE in src/probes/netdrop_event.ts");
_Static_assert(sizeof(struct drop_counts) == 32,
	       "update DROP_COUNTS_SIZE in src/probes/netdrop_event.ts");

/* Who created a socket (map owners, stored in the socket, cloned to accepted ones). */
struct sock_owner {
	__u32 pid;
	char comm[NETDROP_COMM_LEN];
};

/* Settings fixed at load (.rodata). */
struct netdrop_settings {
	__u16 fold_low; /* client ports folded to 0 in the key (both 0: none) */
	__u16 fold_high;
};

/* The .bss section, written by user space (src/probes/netdrop.ts). */
struct netdrop_switches {
	__u32 gen; /* which generation of maps drops are counted in; user space takes the other */
};

/* Counts the kernel keeps (per CPU, cumulative). */
enum netdrop_count {
	NETDROP_COUNT_KEYS_OVERFLOWED = 0, /* packets counted in their reason's bucket: keys full */
	NETDROP_COUNT_REASONS_FULL = 1,	   /* not counted at all: the buckets' map was full too */
	NETDROP_COUNT_PORTS_COLLAPSED = 2, /* client ports folded in the kernel */
	NETDROP_COUNTS = 3,
};

/* The types user space mirrors that no map holds, kept in the BTF (see BTF_ANCHOR). */
BTF_ANCHOR(netdrop, enum drop_direction *direction, enum drop_key_flag *flag,
	   enum netdrop_count *count)

#endif /* NETDROP_H */

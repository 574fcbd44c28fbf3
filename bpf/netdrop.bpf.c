// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * netdrop: packets the kernel threw away, with its reason, counted in the kernel by key.
 *
 * tp_btf/kfree_skb runs once per dropped packet (consume_skb, a packet used up, is another
 * tracepoint and not seen here). Its arguments on 6.13 and later are the packet, the drop
 * location, the reason (enum skb_drop_reason) and rx_sk, the socket the packet was meant for
 * when the drop happened at receive. Each drop adds to its key's entry in a bounded hash: a
 * drop storm costs a map update per packet, never an event to user space, which takes the
 * entries each poll. Keys that do not fit go to a per-reason bucket (counted as
 * keys_overflowed), so a flood of random sources cannot hide the drops of other reasons.
 *
 * The maps come in two generations: drops are counted into the one switches.gen names while
 * user space takes (reads and deletes) the other.
 *
 * Who owns a socket is noted when it is created (cgroup/sock_create, in the creating process)
 * in the socket's own storage, cloned to the sockets a listener accepts: a drop at receive
 * runs in softirq, in whatever process was interrupted, so the current pid says nothing.
 * Sockets created before the probe started have no owner noted (pid 0, no process name).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "common.h"
#include "netdrop.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define E2BIG 7 /* a full hash map refuses a new key */
#define IP_OFFSET 0x1FFF
#define NO_HEADER 0xFFFF /* skb->network_header / transport_header not set */

const volatile struct netdrop_settings settings;
volatile struct netdrop_switches switches;

/*
 * Drops by key. Allocated as used (NO_PREALLOC): a quiet host needs a few entries. The size
 * is set by user space (max_keys).
 */
struct drop_keys {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct drop_key);
	__type(value, struct drop_counts);
};
struct drop_keys keys0 SEC(".maps");
struct drop_keys keys1 SEC(".maps");

/* Each reason's bucket for drops whose key found no room: a few hundred reasons exist. */
struct drop_buckets {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct drop_counts);
};
struct drop_buckets buckets0 SEC(".maps");
struct drop_buckets buckets1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETDROP_COUNTS);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

/* Stored in the socket: no cap, freed with it; BPF_F_CLONE copies it to accepted sockets. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct sock_owner);
} owners SEC(".maps");

static __always_inline void count(__u32 which)
{
	count_in(&counts, which);
}

static __always_inline void map_v4(__u8 out[16], __be32 addr)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &addr, 4);
}

/* A socket with a cgroup and storage of its own: not a request or time-wait socket. */
static __always_inline bool full_sock(const struct sock *sk)
{
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);

	return state != TCP_TIME_WAIT && state != TCP_NEW_SYN_RECV;
}

/*
 * Addresses and ports from the packet's headers, oriented as netflow's (local is this
 * host's end): false when it has no IP header to read (an early drop, or not IP).
 */
static __always_inline bool key_from_headers(struct drop_key *k, struct sk_buff *skb)
{
	__u16 nh = skb->network_header, proto = bpf_ntohs(skb->protocol);
	unsigned char *head = skb->head;
	bool ports = true, ingress = k->direction == DROP_DIR_INGRESS;
	__u8 *src = ingress ? k->remote_addr : k->local_addr;
	__u8 *dst = ingress ? k->local_addr : k->remote_addr;
	__u32 l4;
	__u16 p[2];

	if (nh == NO_HEADER || !head)
		return false;
	if (proto == ETH_P_IP) {
		struct iphdr ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh) || ip.version != 4)
			return false;
		k->family = AF_INET;
		k->transport = ip.protocol;
		map_v4(src, ip.saddr);
		map_v4(dst, ip.daddr);
		l4 = nh + ip.ihl * 4;
		/* A fragment after the first carries no ports. */
		ports = !(bpf_ntohs(ip.frag_off) & IP_OFFSET);
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr ip6;

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh) || ip6.version != 6)
			return false;
		k->family = AF_INET6;
		/* Extension headers are not walked: such a packet is counted without ports. */
		k->transport = ip6.nexthdr;
		__builtin_memcpy(src, &ip6.saddr, 16);
		__builtin_memcpy(dst, &ip6.daddr, 16);
		l4 = nh + sizeof(ip6);
	} else {
		return false;
	}
	if (!ports || (k->transport != IPPROTO_TCP && k->transport != IPPROTO_UDP))
		return true;
	/* TCP and UDP both start with the source and destination ports. */
	if (bpf_probe_read_kernel(p, sizeof(p), head + l4))
		return true;
	k->local_port = bpf_ntohs(ingress ? p[1] : p[0]);
	k->remote_port = bpf_ntohs(ingress ? p[0] : p[1]);
	return true;
}

static __always_inline bool client_port(__u16 port)
{
	return port && port >= settings.fold_low && port <= settings.fold_high;
}

/*
 * The client's port folded to 0, as the pipeline's ephemeral_port would write it `*`: the
 * one end whose port is in the range when the other's is not (both in it: which is the
 * client is unknown, both are kept).
 */
static __always_inline void fold_client_port(struct drop_key *k)
{
	bool local, remote;

	if (!settings.fold_high)
		return;
	local = client_port(k->local_port);
	remote = client_port(k->remote_port);
	if (local == remote)
		return;
	if (local) {
		k->local_port = 0;
		k->flags |= DROP_KEY_LOCAL_FOLDED;
	} else {
		k->remote_port = 0;
		k->flags |= DROP_KEY_REMOTE_FOLDED;
	}
	count(NETDROP_COUNT_PORTS_COLLAPSED);
}

/* Adds one packet to `key` in `map`; false when the map has no room for a new key. */
static __always_inline bool add_to(void *map, const void *key, __u64 bytes, const char *comm)
{
	struct drop_counts zero = {}, *c = bpf_map_lookup_elem(map, key);

	if (!c) {
		if (comm)
			__builtin_memcpy(zero.comm, comm, NETDROP_COMM_LEN);
		/* EEXIST: another CPU created it first, which is fine. */
		if (bpf_map_update_elem(map, key, &zero, BPF_NOEXIST) == -E2BIG)
			return false;
		c = bpf_map_lookup_elem(map, key);
		if (!c)
			return false;
	}
	__sync_fetch_and_add(&c->packets, 1);
	__sync_fetch_and_add(&c->bytes, bytes);
	return true;
}

/*
 * Counts `key`, or its reason's bucket when the keys are full. Not inlined: taking the
 * structs is what puts their layouts in the object's BTF, where the layout test reads them.
 */
static __noinline void add_drop(struct drop_key *k, struct drop_counts *c)
{
	bool second = switches.gen;
	const char *comm = c->comm[0] ? c->comm : 0;

	if (add_to(second ? (void *)&keys1 : (void *)&keys0, k, c->bytes, comm))
		return;
	count(NETDROP_COUNT_KEYS_OVERFLOWED);
	if (!add_to(second ? (void *)&buckets1 : (void *)&buckets0, &k->reason, c->bytes, 0))
		count(NETDROP_COUNT_REASONS_FULL);
}

static __always_inline int on_kfree_skb(struct sk_buff *skb, enum skb_drop_reason reason,
					struct sock *rx_sk)
{
	struct drop_key k = {};
	struct drop_counts c = {};
	struct sock_owner *owner;
	struct sock *sk;

	/* Not drops (kfree_skb's callers pass these only on kernels that trace them here). */
	if (reason == SKB_NOT_DROPPED_YET || reason == SKB_CONSUMED)
		return 0;
	/*
	 * A queue freed whole (a socket's at its close: every short TCP connection frees its FIN
	 * there) is teardown, not the network dropping a packet: 3 "drops" a connection otherwise.
	 * Data an application leaves unread at close shows as netflow's tcp_resets_sent.
	 */
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_QUEUE_PURGE) &&
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_QUEUE_PURGE))
		return 0;
	k.reason = reason;
	/* A packet received on an interface (loopback too) remembers it; one being sent does not. */
	k.direction = skb->skb_iif ? DROP_DIR_INGRESS : DROP_DIR_EGRESS;
	c.bytes = skb->len;
	if (key_from_headers(&k, skb)) {
		/* Bytes from the IP header on, wherever the drop happened (a layer may have pulled it). */
		long pulled = (long)(skb->data - skb->head) - skb->network_header;

		if (pulled > 0 && pulled < NO_HEADER)
			c.bytes += pulled;
		fold_client_port(&k);
	}
	/* The socket the packet was for (at receive), or the one that sent it. */
	sk = rx_sk ? rx_sk : skb->sk;
	/* Pods share addresses (each has a loopback and a 10.x): the namespace keeps them apart. */
	if (skb->dev)
		k.netns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
	else if (sk)
		k.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	if (sk && full_sock(sk)) {
		k.cgroup_id = BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
		owner = bpf_sk_storage_get(&owners, sk, 0, 0);
		if (owner) {
			k.pid = owner->pid;
			__builtin_memcpy(c.comm, owner->comm, sizeof(c.comm));
		}
	}
	add_drop(&k, &c);
	return 0;
}

/* 6.13 and later: the tracepoint also hands the socket a received packet was for. */
SEC("tp_btf/kfree_skb")
int BPF_PROG(on_drop, struct sk_buff *skb, void *location, enum skb_drop_reason reason,
	     struct sock *rx_sk)
{
	return on_kfree_skb(skb, reason, rx_sk);
}

/*
 * Before 6.13 (three arguments): user space loads this one instead. A drop at receive then has
 * no socket (skb->sk is not set yet): no pid or cgroup for it.
 */
SEC("tp_btf/kfree_skb")
int BPF_PROG(on_drop_no_rx_sk, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	return on_kfree_skb(skb, reason, 0);
}

/* socket(2) of an IPv4 or IPv6 socket, in the creating process: note its owner. */
SEC("cgroup/sock_create")
int note_owner(struct bpf_sock *ctx)
{
	struct sock_owner *owner;

	owner = bpf_sk_storage_get(&owners, ctx, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (owner) {
		owner->pid = bpf_get_current_pid_tgid() >> 32;
		current_process_name(owner->comm);
	}
	return 1; /* never refuse: we only watch */
}

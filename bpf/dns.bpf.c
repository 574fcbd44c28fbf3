// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * dns: every DNS message the host sends or receives, UDP and TCP, IPv4 and IPv6, copied to user
 * space, which decodes and matches them (src/probes/dns_messages.ts).
 *
 * A cgroup_skb pair on the cgroup v2 root sees each packet once leaving its socket (egress) and
 * once reaching one (ingress); loopback DNS therefore shows twice, once per end. Each packet is
 * tagged with the side it belongs to: the client's (a local process asked) or the server's (a
 * local DNS server answered), so user space can count each request once per side. cgroup_skb
 * may run in softirq, so the pid comes from the socket: the sock_addr hooks below run in the
 * owning process (connect, and sendmsg/recvmsg on unconnected UDP) and note it in the socket.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "common.h"
#include "dns.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

const volatile struct dns_settings settings = { .sides = DNS_SIDE_CLIENT };

/*
 * The DNS ports: 1 at the index of each (host byte order); user space fills it (53 by default).
 * An array, not a hash: every packet on the host is checked, and an array lookup is inlined by
 * the verifier (a hash lookup cost ~35 ns a packet, measured with bpf_stats).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} dns_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct dns_owner);
} owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 1024);
} events SEC(".maps");

/* The event is 4 KiB: too big for the 512-byte stack, so it is built here. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dns_event);
} scratch SEC(".maps");

static __always_inline bool dns_port(__u32 port)
{
	__u8 *set = bpf_map_lookup_elem(&dns_ports, &port);

	return set && *set;
}

static __always_inline void map_v4(__u8 out[16], __be32 addr)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &addr, 4);
}

/*
 * True when the packet cannot be DNS, judged from its socket alone: a connected socket (TCP, or
 * UDP after connect()) whose ports are both not DNS ports carries no DNS, so the headers need
 * not be read (that cost ~140 ns a packet on egress, measured with bpf_stats). cgroup_skb runs
 * with the full socket in skb->sk. Unconnected sockets (remote port 0: UDP sendto/recvfrom, a
 * TCP listener) take the full path. One exception: sendto() with an address on a connected UDP
 * socket sends there, so on egress a socket the sendmsg hook noted (it talked to a DNS port)
 * takes the full path too.
 */
static __always_inline bool surely_not_dns(struct __sk_buff *skb, bool egress)
{
	__u32 remote = bpf_ntohl(skb->remote_port); /* network order in the high half */
	struct bpf_sock *sk;

	if (!remote || dns_port(remote) || dns_port(skb->local_port))
		return false;
	if (!egress)
		return true;
	sk = skb->sk;
	if (!sk)
		return false;
	sk = bpf_sk_fullsock(sk);
	return sk && !bpf_sk_storage_get(&owners, sk, 0, 0);
}

static __always_inline int capture(struct __sk_buff *skb, bool egress)
{
	__u32 zero = 0, l4_off, payload_off, payload_len, captured;
	__u16 sport, dport;
	__u8 proto, side;
	struct dns_event *e;
	struct dns_owner *owner;
	struct bpf_sock *sk;

	if (surely_not_dns(skb, egress))
		return 1;
	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 1;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return 1;
		if (ip.frag_off & bpf_htons(0x3fff)) /* fragments: only the first has ports */
			return 1;
		proto = ip.protocol;
		l4_off = ip.ihl * 4;
		payload_len = bpf_ntohs(ip.tot_len);
		e->family = AF_INET;
		map_v4(egress ? e->local_addr : e->remote_addr, ip.saddr);
		map_v4(egress ? e->remote_addr : e->local_addr, ip.daddr);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return 1;
		proto = ip6.nexthdr; /* extension headers: not followed (DNS does not use them) */
		l4_off = sizeof(ip6);
		payload_len = bpf_ntohs(ip6.payload_len) + sizeof(ip6);
		e->family = AF_INET6;
		__builtin_memcpy(egress ? e->local_addr : e->remote_addr, &ip6.saddr, 16);
		__builtin_memcpy(egress ? e->remote_addr : e->local_addr, &ip6.daddr, 16);
	} else {
		return 1;
	}

	if (proto == IPPROTO_UDP) {
		struct udphdr udp;

		if (bpf_skb_load_bytes(skb, l4_off, &udp, sizeof(udp)))
			return 1;
		sport = bpf_ntohs(udp.source);
		dport = bpf_ntohs(udp.dest);
		payload_off = l4_off + sizeof(udp);
	} else if (proto == IPPROTO_TCP) {
		struct tcphdr tcp;

		if (bpf_skb_load_bytes(skb, l4_off, &tcp, sizeof(tcp)))
			return 1;
		sport = bpf_ntohs(tcp.source);
		dport = bpf_ntohs(tcp.dest);
		payload_off = l4_off + tcp.doff * 4;
	} else {
		return 1;
	}

	/* Whose packet: the remote end being a DNS port makes the local process a client. */
	if (dns_port(egress ? dport : sport))
		side = DNS_SIDE_CLIENT;
	else if (dns_port(egress ? sport : dport))
		side = DNS_SIDE_SERVER;
	else
		return 1;
	if (!(settings.sides & side))
		return 1;
	if (payload_len <= payload_off) /* handshakes and bare ACKs carry no message */
		return 1;
	payload_len -= payload_off;

	captured = payload_len < DNS_PAYLOAD_MAX ? payload_len : DNS_PAYLOAD_MAX;
	if (captured == 0 || captured > DNS_PAYLOAD_MAX)
		return 1;
	if (bpf_skb_load_bytes(skb, payload_off, e->payload, captured)) {
		count_drop(DROP_READ_FAILED);
		return 1;
	}
	e->boot_ns = bpf_ktime_get_boot_ns();
	e->payload_len = payload_len;
	e->captured = captured;
	e->transport = proto;
	e->side = side;
	e->outbound = egress;
	e->local_port = egress ? sport : dport;
	e->remote_port = egress ? dport : sport;
	e->pid = 0;
	e->comm[0] = 0;
	/* The socket's cgroup (set when it was created), not the current task's: softirq. */
	e->cgroup_id = bpf_skb_cgroup_id(skb);
	sk = skb->sk;
	if (sk) {
		sk = bpf_sk_fullsock(sk);
		if (sk) {
			owner = bpf_sk_storage_get(&owners, sk, 0, 0);
			if (owner) {
				e->pid = owner->pid;
				__builtin_memcpy(e->comm, owner->comm, sizeof(e->comm));
			}
		}
	}
	if (bpf_ringbuf_output(&events, e, offsetof(struct dns_event, payload) + captured, 0))
		count_drop(DROP_RINGBUF_FULL);
	return 1;
}

SEC("cgroup_skb/egress")
int dns_egress(struct __sk_buff *skb)
{
	return capture(skb, true);
}

SEC("cgroup_skb/ingress")
int dns_ingress(struct __sk_buff *skb)
{
	return capture(skb, false);
}

/* Notes the calling process in a socket that talks to, or serves on, a DNS port. */
static __always_inline int note_owner(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct dns_owner *owner;

	if (!sk)
		return 1;
	if (!dns_port(bpf_ntohs(ctx->user_port)) && !dns_port(sk->src_port))
		return 1;
	owner = bpf_sk_storage_get(&owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (owner) {
		owner->pid = bpf_get_current_pid_tgid() >> 32;
		current_process_name(owner->comm);
	}
	return 1; /* never refuse: we only watch */
}

SEC("cgroup/connect4")
int dns_connect4(struct bpf_sock_addr *ctx)
{
	return note_owner(ctx);
}

SEC("cgroup/connect6")
int dns_connect6(struct bpf_sock_addr *ctx)
{
	return note_owner(ctx);
}

SEC("cgroup/sendmsg4")
int dns_sendmsg4(struct bpf_sock_addr *ctx)
{
	return note_owner(ctx);
}

SEC("cgroup/sendmsg6")
int dns_sendmsg6(struct bpf_sock_addr *ctx)
{
	return note_owner(ctx);
}

SEC("cgroup/recvmsg4")
int dns_recvmsg4(struct bpf_sock_addr *ctx)
{
	return note_owner(ctx);
}

SEC("cgroup/recvmsg6")
int dns_recvmsg6(struct bpf_sock_addr *ctx)
{
	return note_owner(ctx);
}

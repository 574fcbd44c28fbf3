// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * netflow: TCP and UDP flows, IPv4 and IPv6, from stable hooks only (no kprobes, no offsets).
 *
 * TCP costs nothing per packet: the socket keeps its own byte, retransmit and RTT counters,
 * which the iter/tcp program reads each poll and the close tracepoint reads one last time.
 * The state tracepoint sees handshakes (direction, and tcp_established only for what it saw).
 * UDP has no such counters, so datagrams are counted at sendmsg/recvmsg (process context, so
 * the pid is right). A connected socket used by one process counts into its own storage (read
 * by the iter/udp program each poll and by the sock_release hook at close), other datagrams
 * into a per-CPU hash by flow. Unconnected UDP sockets carry no peer: the cgroup sendmsg/
 * recvmsg address hooks hand it to the length tracepoint of the same thread.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "common.h"
#include "netflow.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define SOCK_DGRAM 2
#define MSG_PEEK 2
#define E2BIG 7 /* a full hash map refuses a new key */
#define SOCK_BINDPORT_LOCK 8 /* sk_userlocks: the application bound the port itself */
#define RCV_SHUTDOWN 1
#define SEND_SHUTDOWN 2

/* Which exclude maps hold entries; user space sets it, so empty maps cost no lookups. */
enum { EXCLUDE_PORTS = 1, EXCLUDE_PIDS = 2, EXCLUDE_CIDRS = 4 };
/* User space writes these (.bss: struct netflow_switches, netflow.h). */
volatile struct netflow_switches switches;
/*
 * The network namespace (struct net *) the iter/udp program walks, noted by each of its passes:
 * only sockets there may count into their own storage, or no poll would read them.
 */
volatile __u64 iter_netns SEC(".data.iter_netns") = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket cookie */
	__type(value, struct tcp_sock_info);
} tcp_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, struct udp_counts);
} udp_flows SEC(".maps");

/*
 * Local ports with a TCP listener, filled by the iterator (which walks listeners before
 * connections). Direction of a connection we saw no handshake for: incoming if a listener owns
 * its local port (an accepted socket does not inherit the listener's bound-port flag).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u16);
	__type(value, __u8);
} tcp_listen_ports SEC(".maps");

/*
 * Stored in the socket itself: no hashing, no eviction, freed with the socket (an LRU hash
 * keyed by thread cost ~300 ns per datagram and hook, measured with bpf_stats).
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct udp_sock_state);
} udp_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
} exclude_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} exclude_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cidr_key);
	__type(value, __u8);
} exclude_cidrs SEC(".maps");

static __always_inline void map_v4(__u8 out[16], __be32 addr)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &addr, 4);
}

static __always_inline bool is_v4_mapped(const __u8 a[16])
{
	for (int i = 0; i < 10; i++)
		if (a[i])
			return false;
	return a[10] == 0xff && a[11] == 0xff;
}

/* Fills family, ports and addresses from the socket; false for families we do not report. */
static __always_inline bool key_from_sock(struct flow_key *k, const struct sock_common *skc)
{
	__u16 family = skc->skc_family;

	k->local_port = skc->skc_num;
	k->remote_port = bpf_ntohs(skc->skc_dport);
	if (family == AF_INET) {
		k->family = AF_INET;
		map_v4(k->local_addr, skc->skc_rcv_saddr);
		map_v4(k->remote_addr, skc->skc_daddr);
		return true;
	}
	if (family != AF_INET6)
		return false;
	__builtin_memcpy(k->local_addr, skc->skc_v6_rcv_saddr.in6_u.u6_addr8, 16);
	__builtin_memcpy(k->remote_addr, skc->skc_v6_daddr.in6_u.u6_addr8, 16);
	/* A dual-stack socket talking to an IPv4 peer: report it as IPv4. */
	k->family = is_v4_mapped(k->remote_addr) ? AF_INET : AF_INET6;
	return true;
}

/*
 * The cgroup v2 id of the socket's cgroup: the one its creator was in (an accepted socket
 * inherits its listener's). Read from the socket, so it does not race the process moving or
 * exiting, and the iterator and the close tracepoint, which run in no owner's context, have it.
 */
static __always_inline __u64 sock_cgroup_id(const struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
}

/* UDP server or client end: a port the application bound itself is a service's (incoming). */
static __always_inline __u8 udp_direction(const struct sock *sk)
{
	return (sk->sk_userlocks & SOCK_BINDPORT_LOCK) ? DIR_INCOMING : DIR_OUTGOING;
}

/* A TCP connection whose handshake we did not see (open before we started). */
static __always_inline __u8 tcp_direction_guess(const struct sock *sk)
{
	__u16 port = sk->__sk_common.skc_num;

	return bpf_map_lookup_elem(&tcp_listen_ports, &port) ? DIR_INCOMING : DIR_OUTGOING;
}

static __always_inline bool address_excluded(const __u8 addr[16])
{
	struct cidr_key c = { .prefixlen = 128 };

	__builtin_memcpy(c.addr, addr, 16);
	return bpf_map_lookup_elem(&exclude_cidrs, &c);
}

static __always_inline bool excluded(const struct flow_key *k)
{
	__u32 on = switches.exclusions;

	if (!on)
		return false;
	if ((on & EXCLUDE_PORTS) && (bpf_map_lookup_elem(&exclude_ports, &k->local_port) ||
				     bpf_map_lookup_elem(&exclude_ports, &k->remote_port)))
		return true;
	if ((on & EXCLUDE_PIDS) && k->pid && bpf_map_lookup_elem(&exclude_pids, &k->pid))
		return true;
	if ((on & EXCLUDE_CIDRS) &&
	    (address_excluded(k->local_addr) || address_excluded(k->remote_addr)))
		return true;
	return false;
}

/*
 * The socket's counters as application bytes. One sequence number each goes to the SYN and the
 * FIN: bytes_acked counts our SYN (when this end opened) and our FIN once acked; bytes_received
 * counts the peer's FIN. Measured here with `ss -ti`: 1000 bytes written read back as
 * bytes_acked 1001, then 1002 after the FIN.
 */
static __always_inline void read_tcp_counters(struct tcp_flow_event *e, struct tcp_sock *tp,
					      const struct sock *sk)
{
	__u64 acked = tp->bytes_acked, received = tp->bytes_received;
	__u8 shutdown = sk->sk_shutdown;

	if (e->key.direction == DIR_OUTGOING && acked)
		acked--;
	if ((shutdown & SEND_SHUTDOWN) && tp->snd_una == tp->write_seq && acked)
		acked--;
	if ((shutdown & RCV_SHUTDOWN) && received)
		received--;
	e->bytes_written = acked;
	e->bytes_read = received;
	e->retransmits = tp->total_retrans;
	e->rtt_us = tp->srtt_us >> 3;
	e->rtt_var_us = tp->mdev_us >> 2;
}

/* A copy of the socket's info, recording one (pid unknown, direction from its port) if none. */
static __noinline void tcp_info_of(__u64 cookie, const struct sock *sk,
				   struct tcp_sock_info *out)
{
	struct tcp_sock_info *info = bpf_map_lookup_elem(&tcp_socks, &cookie);

	if (info) {
		__builtin_memcpy(out, info, sizeof(*out));
		return;
	}
	__builtin_memset(out, 0, sizeof(*out));
	out->direction = tcp_direction_guess(sk);
	out->local_port = sk->__sk_common.skc_num;
	if (bpf_map_update_elem(&tcp_socks, &cookie, out, BPF_NOEXIST))
		count_drop(DROP_SOCKETS_FULL);
}

static __always_inline void fill_tcp_event(struct tcp_flow_event *e, __u64 cookie,
					   const struct tcp_sock_info *info)
{
	e->cookie = cookie;
	e->key.pid = info->pid;
	e->key.transport = IPPROTO_TCP;
	e->key.direction = info->direction;
	e->handshake_seen = info->handshake_seen;
	__builtin_memcpy(e->comm, info->comm, sizeof(e->comm));
}

/*
 * A TCP socket accepted by a server gets its pid at the server's first read or write, or at its
 * close() if it never reads or writes: both run in the server's process.
 */
static __always_inline void claim_tcp_socket(struct sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct tcp_sock_info *info = bpf_map_lookup_elem(&tcp_socks, &cookie);

	if (info && !info->pid) {
		info->pid = bpf_get_current_pid_tgid() >> 32;
		current_process_name(info->comm);
	}
}

/*
 * A closed socket's last counts, to user space at once. Not inlined: a function taking the
 * struct is what puts its layout in the object's BTF, where the layout test reads it.
 */
static __noinline void send_close(struct tcp_flow_event *e)
{
	if (!excluded(&e->key) && bpf_ringbuf_output(&events, e, sizeof(*e), 0))
		count_drop(DROP_RINGBUF_FULL);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_tcp_state, const struct sock *sk, const int oldstate, const int newstate)
{
	struct tcp_sock_info fresh = {}, *info;
	struct tcp_flow_event e = {};
	struct tcp_sock *tp;
	__u64 cookie;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	cookie = bpf_get_socket_cookie((void *)sk);

	if (newstate == TCP_SYN_SENT) {
		/* connect(): the only state change sure to run in the connecting process. */
		fresh.pid = bpf_get_current_pid_tgid() >> 32;
		fresh.direction = DIR_OUTGOING;
		current_process_name(fresh.comm);
		if (bpf_map_update_elem(&tcp_socks, &cookie, &fresh, BPF_ANY))
			count_drop(DROP_SOCKETS_FULL);
		return 0;
	}
	if (newstate == TCP_ESTABLISHED) {
		/* Runs in softirq, often for the other end's process: no pid from here. */
		info = bpf_map_lookup_elem(&tcp_socks, &cookie);
		if (info) {
			info->handshake_seen = 1;
			info->local_port = sk->__sk_common.skc_num;
			return 0;
		}
		fresh.direction = oldstate == TCP_SYN_SENT ? DIR_OUTGOING : DIR_INCOMING;
		fresh.handshake_seen = 1;
		fresh.local_port = sk->__sk_common.skc_num;
		if (bpf_map_update_elem(&tcp_socks, &cookie, &fresh, BPF_ANY))
			count_drop(DROP_SOCKETS_FULL);
		return 0;
	}
	/* Only close() and shutdown() lead here, in the owning process. */
	if (newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK) {
		claim_tcp_socket((struct sock *)sk);
		return 0;
	}
	if (newstate != TCP_CLOSE)
		return 0;

	info = bpf_map_lookup_elem(&tcp_socks, &cookie);
	barrier_var(info);
	/* Never established (a refused connect, a dropped half-open): no flow to report. */
	if (oldstate == TCP_SYN_SENT || oldstate == TCP_SYN_RECV || oldstate == TCP_LISTEN ||
	    oldstate == TCP_CLOSE || oldstate == TCP_NEW_SYN_RECV)
		goto forget;
	if (!key_from_sock(&e.key, &sk->__sk_common))
		goto forget;
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!tp)
		goto forget;
	if (info)
		__builtin_memcpy(&fresh, info, sizeof(fresh));
	else
		fresh.direction = tcp_direction_guess(sk);
	fill_tcp_event(&e, cookie, &fresh);
	e.cgroup_id = sock_cgroup_id(sk);
	/* Closing released the port (inet_put_port zeroes it) unless the application bound it. */
	if (!e.key.local_port)
		e.key.local_port = fresh.local_port;
	read_tcp_counters(&e, tp, sk);
	e.closed = 1;
	send_close(&e);
forget:
	bpf_map_delete_elem(&tcp_socks, &cookie);
	return 0;
}

/* Each poll: every open TCP socket's counters, written to the iterator's output. */
SEC("iter/tcp")
int dump_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tcp_sock_info info;
	struct tcp_flow_event e = {};
	struct tcp_sock *tp;
	struct sock *sk;
	__u64 cookie;
	int state;

	if (!skc)
		return 0;
	/* Request and time-wait sockets hold no counters of their own. */
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	sk = (struct sock *)tp;
	state = skc->skc_state;
	if (state == TCP_LISTEN) {
		__u16 port = skc->skc_num;
		__u8 one = 1;

		bpf_map_update_elem(&tcp_listen_ports, &port, &one, BPF_ANY);
		return 0;
	}
	if (state == TCP_SYN_SENT || state == TCP_SYN_RECV || state == TCP_CLOSE)
		return 0;
	if (!key_from_sock(&e.key, skc))
		return 0;
	cookie = bpf_get_socket_cookie(sk);
	tcp_info_of(cookie, sk, &info);
	fill_tcp_event(&e, cookie, &info);
	e.cgroup_id = sock_cgroup_id(sk);
	read_tcp_counters(&e, tp, sk);
	if (excluded(&e.key))
		return 0;
	bpf_seq_write(ctx->meta->seq, &e, sizeof(e));
	return 0;
}

static __always_inline bool same_flow(const struct flow_key *a, const struct flow_key *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;

	for (int i = 0; i < sizeof(*a) / 4; i++)
		if (x[i] != y[i])
			return false;
	return true;
}

/*
 * Whether this socket's datagrams may count into its own storage: user space turned it on (the
 * sock_release hook is on the cgroup root, so every close is seen), the iterator walks the
 * socket's namespace, and it is a process's socket (kernel sockets are not released through
 * the hook).
 */
static __always_inline bool socket_counts_allowed(const struct sock *sk)
{
	__u64 netns = iter_netns;

	return switches.socket_counters && netns &&
	       (__u64)sk->__sk_common.skc_net.net == netns &&
	       !BPF_CORE_READ_BITFIELD(sk, sk_kern_sock);
}

/*
 * A connected socket's datagram, added to the socket's own counters: no hash lookup (the
 * per-CPU flow hash cost ~100 ns of a datagram's ~200-250 ns per hook, bpf_stats). The first
 * datagram binds the counters to its flow; one of another flow (another process, or the socket
 * connected elsewhere since) returns false and goes to the hash. Two processes' first datagrams
 * at the same instant may both bind: the key then names one of them for both.
 */
static __always_inline bool count_in_socket(struct udp_sock_state *st, const struct flow_key *k,
					    struct sock *sk, int bytes, bool sent)
{
	if (!st->bound) {
		if (st->closed)
			return false;
		__builtin_memcpy(&st->key, k, sizeof(*k));
		current_process_name(st->comm);
		st->cgroup_id = sock_cgroup_id(sk);
		st->bound = 1;
	} else if (!same_flow(&st->key, k)) {
		return false;
	}
	if (sent)
		__sync_fetch_and_add(&st->bytes_written, bytes);
	else
		__sync_fetch_and_add(&st->bytes_read, bytes);
	return true;
}

static __always_inline void count_udp(struct sock *sk, int bytes, bool sent)
{
	struct udp_counts zero = {}, *counts;
	struct udp_sock_state *st;
	struct flow_key k = {};
	__u64 tid = bpf_get_current_pid_tgid();
	bool connected;

	if (!key_from_sock(&k, &sk->__sk_common))
		return;
	connected = k.remote_port != 0;
	k.pid = tid >> 32;
	k.transport = IPPROTO_UDP;
	k.direction = udp_direction(sk);
	/* An unconnected call (or sendto on a connected socket): its address hook just told us this
	 * datagram's peer. */
	st = bpf_sk_storage_get(&udp_socks, sk, 0, 0);
	if (st && st->peer.tid == tid) {
		k.family = st->peer.family;
		k.remote_port = st->peer.port;
		__builtin_memcpy(k.remote_addr, st->peer.addr, 16);
		st->peer.tid = 0; /* used: a later call without an address must not reuse it */
		connected = false;
	}
	if (excluded(&k))
		return;
	if (connected && socket_counts_allowed(sk)) {
		if (!st)
			st = bpf_sk_storage_get(&udp_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (st && count_in_socket(st, &k, sk, bytes, sent))
			return;
	}
	counts = bpf_map_lookup_elem(&udp_flows, &k);
	if (!counts) {
		current_process_name(zero.comm);
		zero.cgroup_id = sock_cgroup_id(sk);
		/* EEXIST: another CPU created it first, which is fine. */
		if (bpf_map_update_elem(&udp_flows, &k, &zero, BPF_NOEXIST) == -E2BIG) {
			count_drop(DROP_FLOWS_FULL);
			return;
		}
		counts = bpf_map_lookup_elem(&udp_flows, &k);
		if (!counts)
			return;
	}
	/* This CPU's slot of a flow another CPU created starts empty. */
	if (!counts->comm[0]) {
		current_process_name(counts->comm);
		counts->cgroup_id = sock_cgroup_id(sk);
	}
	if (sent)
		counts->bytes_written += bytes;
	else
		counts->bytes_read += bytes;
}

static __always_inline int on_io(struct sock *sk, int ret, int flags, bool sent)
{
	__u16 protocol = sk->sk_protocol, family = sk->__sk_common.skc_family;

	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (protocol == IPPROTO_TCP)
		claim_tcp_socket(sk);
	/* A peek is read again for real: count it then. */
	else if (protocol == IPPROTO_UDP && ret > 0 && !(flags & MSG_PEEK))
		count_udp(sk, ret, sent);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(on_send, struct sock *sk, int ret, int flags)
{
	return on_io(sk, ret, flags, true);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(on_recv, struct sock *sk, int ret, int flags)
{
	return on_io(sk, ret, flags, false);
}

static __always_inline int remember_peer(struct bpf_sock_addr *ctx, bool v6)
{
	struct udp_sock_state *st;
	struct udp_peer *p;
	struct bpf_sock *sk = ctx->sk;
	__u32 a[4];

	if (ctx->type != SOCK_DGRAM || !sk)
		return 1;
	st = bpf_sk_storage_get(&udp_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return 1; /* out of memory: this datagram's peer stays unknown */
	p = &st->peer;
	p->tid = bpf_get_current_pid_tgid();
	p->port = bpf_ntohs(ctx->user_port);
	if (v6) {
		a[0] = ctx->user_ip6[0];
		a[1] = ctx->user_ip6[1];
		a[2] = ctx->user_ip6[2];
		a[3] = ctx->user_ip6[3];
		__builtin_memcpy(p->addr, a, 16);
		p->family = is_v4_mapped(p->addr) ? AF_INET : AF_INET6;
	} else {
		map_v4(p->addr, ctx->user_ip4);
		p->family = AF_INET;
	}
	return 1; /* never refuse: we only watch */
}

SEC("cgroup/sendmsg4")
int udp_sendmsg4(struct bpf_sock_addr *ctx)
{
	return remember_peer(ctx, false);
}

SEC("cgroup/sendmsg6")
int udp_sendmsg6(struct bpf_sock_addr *ctx)
{
	return remember_peer(ctx, true);
}

SEC("cgroup/recvmsg4")
int udp_recvmsg4(struct bpf_sock_addr *ctx)
{
	return remember_peer(ctx, false);
}

SEC("cgroup/recvmsg6")
int udp_recvmsg6(struct bpf_sock_addr *ctx)
{
	return remember_peer(ctx, true);
}

/* A UDP socket's own counters as a flow record (the TCP record's shape, transport UDP). */
static __always_inline void fill_udp_event(struct tcp_flow_event *e,
					   const struct udp_sock_state *st, __u64 cookie)
{
	__builtin_memcpy(&e->key, &st->key, sizeof(e->key));
	e->cookie = cookie;
	e->bytes_written = st->bytes_written;
	e->bytes_read = st->bytes_read;
	e->cgroup_id = st->cgroup_id;
	__builtin_memcpy(e->comm, st->comm, sizeof(e->comm));
}

/* Each poll: every UDP socket counting into its own storage, written to the iterator's output. */
SEC("iter/udp")
int dump_udp(struct bpf_iter__udp *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct udp_sock *udp = ctx->udp_sk;
	struct tcp_flow_event e = {};
	struct udp_sock_state *st;
	struct sock *sk;

	/* The reader's namespace is the one walked (also run once with no socket at the end). */
	iter_netns = (__u64)BPF_CORE_READ(task, nsproxy, net_ns);
	if (!udp)
		return 0;
	sk = &udp->inet.sk;
	st = bpf_sk_storage_get(&udp_socks, sk, 0, 0);
	if (!st || !st->bound || st->closed)
		return 0;
	fill_udp_event(&e, st, bpf_get_socket_cookie(sk));
	if (excluded(&e.key))
		return 0;
	bpf_seq_write(ctx->meta->seq, &e, sizeof(e));
	return 0;
}

/*
 * close() of a UDP socket counting into its own storage: its last counts, at once, as a closed
 * record (the iterator lists it no more). Runs in the closing process, before the socket is
 * unhashed.
 */
SEC("cgroup/sock_release")
int udp_release(struct bpf_sock *ctx)
{
	struct tcp_flow_event e = {};
	struct udp_sock_state *st;

	if (ctx->type != SOCK_DGRAM)
		return 1;
	st = bpf_sk_storage_get(&udp_socks, ctx, 0, 0);
	if (!st || !st->bound || st->closed)
		return 1;
	st->closed = 1;
	fill_udp_event(&e, st, bpf_get_socket_cookie(ctx));
	e.closed = 1;
	send_close(&e);
	return 1; /* never refuse: we only watch */
}

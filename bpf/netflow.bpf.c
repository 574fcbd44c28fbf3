// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * netflow: TCP and UDP flows, IPv4 and IPv6, from stable hooks only (no kprobes, no offsets).
 *
 * TCP costs nothing per packet: the socket keeps its own byte, retransmit and RTT counters,
 * which the iter/tcp program reads each poll, writing only sockets whose counters moved since
 * user space last took them (the socket's storage remembers: struct sock_report), and which
 * the close tracepoint reads one last time, summing the close into closed_flows by flow, so
 * short connections cost a map update each, not a record. The state tracepoint sees
 * handshakes (direction, and tcp_established only for what it saw). UDP has no such counters,
 * so datagrams are counted at sendmsg/recvmsg (process context, so the pid is right). A
 * connected socket used by one process counts into its own storage (read by the iter/udp
 * program each poll and summed into closed_flows by the sock_release hook at close), other
 * datagrams into a per-CPU hash by flow. Unconnected UDP sockets carry no peer: the cgroup
 * sendmsg/recvmsg address hooks hand it to the length tracepoint of the same thread.
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
/* sk_err of a connect that failed (errno values: not in vmlinux.h) */
#define ECONNREFUSED 111
#define ETIMEDOUT 110

const volatile struct netflow_settings settings;
/* User space writes these (.bss: struct netflow_switches, netflow.h). */
volatile struct netflow_switches switches;
/* The iterators count what they walk (never written by user space). */
struct iter_walked walked SEC(".data.walked");
/*
 * The network namespace (struct net *) the iter/udp program walks, noted by each of its passes:
 * only sockets there may count into their own storage, or no poll would read them.
 */
volatile __u64 iter_netns SEC(".data.iter_netns") = 0;

/* Stored in the socket: no cap, freed with it. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tcp_sock_state);
} tcp_socks SEC(".maps");

/*
 * Closes summed by flow, in two generations: closes go into the one `switches.gen` names
 * while user space takes (and deletes) the other's. Allocated as used: a pipeline that lets the
 * kernel fold client ports needs a few entries, one that does not an entry per connection.
 */
struct closed_flows {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct flow_id);
	__type(value, struct flow_counts);
};
struct closed_flows closed0 SEC(".maps");
struct closed_flows closed1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETFLOW_COUNTS);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

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

/* Closes closed_flows has no room for. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
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
	/* Pods share addresses (each has its own loopback): the namespace keeps their flows apart. */
	k->netns = BPF_CORE_READ(skc, skc_net.net, ns.inum);
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
static __always_inline void read_tcp_totals(struct sock_totals *t, struct tcp_sock *tp,
					    const struct sock *sk, __u8 direction,
					    __u8 handshake_seen)
{
	__u64 acked = tp->bytes_acked, received = tp->bytes_received;
	__u8 shutdown = sk->sk_shutdown;

	if (direction == DIR_OUTGOING && acked)
		acked--;
	if ((shutdown & SEND_SHUTDOWN) && tp->snd_una == tp->write_seq && acked)
		acked--;
	if ((shutdown & RCV_SHUTDOWN) && received)
		received--;
	t->bytes_written = acked;
	t->bytes_read = received;
	t->retransmits = tp->total_retrans;
	t->established = handshake_seen;
}

static __always_inline void read_rtt(struct flow_counts *c, const struct tcp_sock *tp)
{
	c->rtt_sum_us = tp->srtt_us >> 3;
	c->rtt_var_sum_us = tp->mdev_us >> 2;
	c->rtt_samples = 1;
}

/* `now` - `base` into `c`, never negative (the FIN adjustment can take a byte back); moved? */
static __always_inline bool delta_of(struct flow_counts *c, const struct sock_totals *now,
				     const struct sock_totals *base)
{
	c->bytes_written = now->bytes_written > base->bytes_written ?
				   now->bytes_written - base->bytes_written : 0;
	c->bytes_read = now->bytes_read > base->bytes_read ? now->bytes_read - base->bytes_read : 0;
	c->retransmits = now->retransmits - base->retransmits;
	c->established = now->established && !base->established;
	return c->bytes_written || c->bytes_read || c->retransmits || c->established;
}

/*
 * An iterator pass of epoch `epoch` shows a socket whose totals are `now`: what user space has
 * not taken yet (see struct sock_report). False when nothing moved.
 */
static __always_inline bool report_delta(struct sock_report *r, const struct sock_totals *now,
					 __u32 epoch, struct flow_counts *c)
{
	if (r->epoch != epoch) {
		if (r->epoch) {
			/* The previous pass was read whole: what it staged is taken. */
			if (r->staged.bytes_written > r->taken.bytes_written)
				r->taken.bytes_written = r->staged.bytes_written;
			if (r->staged.bytes_read > r->taken.bytes_read)
				r->taken.bytes_read = r->staged.bytes_read;
			r->taken.retransmits = r->staged.retransmits;
			r->taken.established |= r->staged.established;
		}
		r->staged = *now;
		r->epoch = epoch;
	}
	return delta_of(c, &r->staged, &r->taken);
}

static __always_inline void count(__u32 what)
{
	count_in(&counts, what);
}

/* The client's port as `*` (0) when the pipeline lets the kernel fold it (see ephemeral_port). */
static __always_inline void fold_client_port(struct flow_key *k)
{
	__u16 *port;

	if (!settings.fold_low)
		return;
	if (k->direction == DIR_OUTGOING)
		port = &k->local_port;
	else if (k->direction == DIR_INCOMING)
		port = &k->remote_port;
	else
		return;
	if (*port < settings.fold_low || *port > settings.fold_high)
		return;
	*port = 0;
	count(NETFLOW_COUNT_PORTS_COLLAPSED);
}

static __always_inline void add_counts(struct flow_counts *v, const struct flow_counts *c)
{
	__sync_fetch_and_add(&v->bytes_written, c->bytes_written);
	__sync_fetch_and_add(&v->bytes_read, c->bytes_read);
	__sync_fetch_and_add(&v->rtt_sum_us, c->rtt_sum_us);
	__sync_fetch_and_add(&v->rtt_var_sum_us, c->rtt_var_sum_us);
	__sync_fetch_and_add(&v->retransmits, c->retransmits);
	__sync_fetch_and_add(&v->established, c->established);
	__sync_fetch_and_add(&v->closed, c->closed);
	__sync_fetch_and_add(&v->rtt_samples, c->rtt_samples);
	__sync_fetch_and_add(&v->connect_refused, c->connect_refused);
	__sync_fetch_and_add(&v->connect_timeouts, c->connect_timeouts);
	__sync_fetch_and_add(&v->connect_unreachable, c->connect_unreachable);
	__sync_fetch_and_add(&v->connect_aborted, c->connect_aborted);
	__sync_fetch_and_add(&v->resets_received, c->resets_received);
	__sync_fetch_and_add(&v->resets_sent, c->resets_sent);
}

static __always_inline bool add_to(void *map, const struct flow_id *id,
				   const struct flow_counts *c)
{
	struct flow_counts *v = bpf_map_lookup_elem(map, id);

	if (v) {
		add_counts(v, c);
		return true;
	}
	if (!bpf_map_update_elem(map, id, c, BPF_NOEXIST))
		return true;
	/* EEXIST: another CPU made it first. */
	v = bpf_map_lookup_elem(map, id);
	if (!v)
		return false;
	add_counts(v, c);
	return true;
}

/*
 * A closed socket's last delta, summed by flow (the client port folded when the pipeline lets
 * it). Not inlined: a function taking the struct is what puts its layout in the object's BTF,
 * where the layout test reads it.
 */
static __noinline void add_closed(struct flow_delta *d)
{
	bool added;

	if (excluded(&d->id.key))
		return;
	fold_client_port(&d->id.key);
	if (switches.gen)
		added = add_to(&closed1, &d->id, &d->counts);
	else
		added = add_to(&closed0, &d->id, &d->counts);
	if (added)
		return;
	count(NETFLOW_COUNT_CLOSES_VIA_RING);
	if (bpf_ringbuf_output(&events, d, sizeof(*d), 0))
		count_drop(DROP_RINGBUF_FULL);
}

/*
 * A TCP socket accepted by a server gets its pid at the server's first read or write, or at its
 * close() if it never reads or writes: both run in the server's process.
 */
static __always_inline void claim_tcp_socket(struct sock *sk)
{
	struct tcp_sock_state *st = bpf_sk_storage_get(&tcp_socks, sk, 0, 0);

	if (st && !st->pid) {
		st->pid = bpf_get_current_pid_tgid() >> 32;
		current_process_name(st->comm);
		current_command(&st->cmd);
	}
}

/*
 * The storage of an open TCP socket, made for one open before we started (bytes from its start,
 * pid unknown: its next read or write tells; direction from its port); NULL, counted, when the
 * kernel has no memory for it.
 */
static __always_inline struct tcp_sock_state *open_tcp_state(struct sock *sk)
{
	struct tcp_sock_state *st =
		bpf_sk_storage_get(&tcp_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	if (!st) {
		count_drop(DROP_SOCKETS_FULL);
		return NULL;
	}
	if (!st->direction) {
		st->direction = tcp_direction_guess(sk);
		st->local_port = sk->__sk_common.skc_num;
	}
	return st;
}

/*
 * The flow of a TCP socket at or after its close: owner and direction from its storage (or
 * guessed), the local port kept there or in inet_sport (closing zeroes the socket's own port
 * unless the application bound it); false for families we do not report.
 */
static __always_inline bool tcp_flow(struct flow_delta *d, const struct sock *sk,
				     const struct tcp_sock_state *st)
{
	if (!key_from_sock(&d->id.key, &sk->__sk_common))
		return false;
	d->id.key.transport = IPPROTO_TCP;
	d->id.cgroup_id = sock_cgroup_id(sk);
	if (st) {
		d->id.key.pid = st->pid;
		d->id.key.direction = st->direction;
		__builtin_memcpy(d->counts.comm, st->comm, sizeof(d->counts.comm));
		d->counts.cmd = st->cmd;
		if (!d->id.key.local_port)
			d->id.key.local_port = st->local_port;
	} else {
		d->id.key.direction = tcp_direction_guess(sk);
	}
	/* A connect that failed never reached ESTABLISHED, where the port is kept. */
	if (!d->id.key.local_port)
		d->id.key.local_port = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	return true;
}

/*
 * A connect that failed: SYN_SENT to CLOSE, counted by the error the kernel set just before
 * (tcp_done_with_error), or one it reported while the socket stayed in SYN_SENT (an ICMP error
 * while the process held the socket: the application read it, then closed). No error: the
 * application closed the socket first, or gave up its own connect timeout.
 */
static __always_inline void add_failed_connect(const struct sock *sk)
{
	struct tcp_sock_state *st = bpf_sk_storage_get(&tcp_socks, (void *)sk, 0, 0);
	struct flow_delta d = {};
	int err = sk->sk_err;

	if (!err)
		err = sk->sk_err_soft;
	if (!err && st)
		err = st->connect_error;
	if (!tcp_flow(&d, sk, st))
		return;
	if (err == ECONNREFUSED)
		d.counts.connect_refused = 1;
	else if (err == ETIMEDOUT)
		d.counts.connect_timeouts = 1;
	else if (err)
		d.counts.connect_unreachable = 1; /* EHOSTUNREACH, ENETUNREACH, EACCES (prohibited) */
	else
		d.counts.connect_aborted = 1;
	add_closed(&d);
}

/* An error reported to a connecting socket that stays in SYN_SENT: kept for its close. */
SEC("tp_btf/inet_sk_error_report")
int BPF_PROG(on_sock_error, const struct sock *sk)
{
	struct tcp_sock_state *st;
	int err;

	if (sk->sk_protocol != IPPROTO_TCP || sk->__sk_common.skc_state != TCP_SYN_SENT)
		return 0;
	err = sk->sk_err ?: sk->sk_err_soft;
	st = bpf_sk_storage_get(&tcp_socks, (void *)sk, 0, 0);
	if (st && err)
		st->connect_error = err;
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_tcp_state, const struct sock *sk, const int oldstate, const int newstate)
{
	struct sock_totals zero = {}, final;
	struct flow_delta d = {};
	struct tcp_sock_state *st;
	struct tcp_sock *tp;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;

	if (newstate == TCP_SYN_SENT) {
		/* connect(): the only state change sure to run in the connecting process. */
		st = bpf_sk_storage_get(&tcp_socks, (void *)sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!st) {
			count_drop(DROP_SOCKETS_FULL);
			return 0;
		}
		/* Fresh, also for a socket connecting again after a failed attempt. */
		__builtin_memset(st, 0, sizeof(*st));
		st->pid = bpf_get_current_pid_tgid() >> 32;
		st->direction = DIR_OUTGOING;
		current_process_name(st->comm);
		current_command(&st->cmd);
		return 0;
	}
	if (newstate == TCP_ESTABLISHED) {
		/* Runs in softirq, often for the other end's process: no pid from here. */
		st = bpf_sk_storage_get(&tcp_socks, (void *)sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!st) {
			count_drop(DROP_SOCKETS_FULL);
			return 0;
		}
		if (!st->direction)
			st->direction = oldstate == TCP_SYN_SENT ? DIR_OUTGOING : DIR_INCOMING;
		st->handshake_seen = 1;
		st->local_port = sk->__sk_common.skc_num;
		return 0;
	}
	/* Only close() and shutdown() lead here, in the owning process. */
	if (newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK) {
		claim_tcp_socket((struct sock *)sk);
		return 0;
	}
	if (newstate != TCP_CLOSE)
		return 0;
	/* A connect that never got its answer: a flow with no byte, and why it failed. */
	if (oldstate == TCP_SYN_SENT) {
		add_failed_connect(sk);
		return 0;
	}
	/* Never established (a dropped half-open, a listener): no flow to report. */
	if (oldstate == TCP_SYN_RECV || oldstate == TCP_LISTEN || oldstate == TCP_CLOSE ||
	    oldstate == TCP_NEW_SYN_RECV)
		return 0;
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!tp)
		return 0;
	st = bpf_sk_storage_get(&tcp_socks, (void *)sk, 0, 0);
	if (!tcp_flow(&d, sk, st))
		return 0;
	read_tcp_totals(&final, tp, sk, d.id.key.direction, st ? st->handshake_seen : 0);
	/* What the iterator staged reached user space (see struct sock_report). */
	delta_of(&d.counts, &final, st ? &st->report.staged : &zero);
	read_rtt(&d.counts, tp);
	d.counts.closed = 1;
	if (st)
		d.counts.resets_received = st->resets_received;
	add_closed(&d);
	return 0;
}

/*
 * A reset received: noted in the socket, summed into its flow by the close it leads to
 * (tcp_reset always ends in tcp_done). One that answers a SYN is a refused connect, counted
 * there; a closed socket ignores it.
 */
SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(on_tcp_receive_reset, struct sock *sk)
{
	struct tcp_sock_state *st;
	int state = sk->__sk_common.skc_state;

	if (state == TCP_SYN_SENT || state == TCP_SYN_RECV || state == TCP_CLOSE ||
	    state == TCP_LISTEN)
		return 0;
	st = open_tcp_state(sk);
	if (st)
		st->resets_received++;
	return 0;
}

/*
 * A reset a local socket sent: summed into its flow at once, as a close is (an abortive
 * close sends it after the socket went to CLOSE, its last counts already summed). Resets for
 * packets no socket matches (a closed port) have no socket, and time-wait and request sockets
 * no storage: not netflow's.
 */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(on_tcp_send_reset, const struct sock *sk, const struct sk_buff *skb, int reason)
{
	struct flow_delta d = {};

	if (!sk || !bpf_skc_to_tcp_sock((void *)sk) ||
	    sk->__sk_common.skc_state == TCP_LISTEN)
		return 0;
	if (!tcp_flow(&d, sk, bpf_sk_storage_get(&tcp_socks, (void *)sk, 0, 0)))
		return 0;
	d.counts.resets_sent = 1;
	add_closed(&d);
	return 0;
}

/* Counts a socket an iterator pass walked (the pass's first one starts the count afresh). */
static __always_inline void count_walked(bool tcp)
{
	__u32 epoch = switches.epoch;

	if (walked.epoch != epoch) {
		walked.epoch = epoch;
		walked.tcp = 0;
		walked.udp = 0;
	}
	if (tcp)
		walked.tcp++;
	else
		walked.udp++;
}

/*
 * Each poll: every open TCP socket whose counters moved since user space last took them, as
 * its delta, written to the iterator's output.
 */
SEC("iter/tcp")
int dump_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tcp_sock_state *st;
	struct sock_totals now;
	struct flow_delta d = {};
	struct tcp_sock *tp;
	struct sock *sk;
	__u32 epoch = switches.epoch;
	__u64 segs;
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
	count_walked(true);
	st = open_tcp_state(sk);
	if (!st)
		return 0;
	/* The warm-up pass at start only notes listeners and sockets: nothing is staged. */
	if (!epoch)
		return 0;
	/*
	 * An idle socket: no segment in or out since its totals were staged, so they are the same
	 * (bytes, retransmits, a FIN each come with one). Its counters' cache lines are not read;
	 * staged moves to taken when it next moves (see report_delta).
	 */
	segs = (__u64)tp->segs_in + tp->segs_out;
	if (st->report.epoch && st->report.epoch != epoch && segs == st->segs_staged)
		return 0;
	read_tcp_totals(&now, tp, sk, st->direction, st->handshake_seen);
	if (st->report.epoch != epoch)
		st->segs_staged = segs;
	if (!report_delta(&st->report, &now, epoch, &d.counts))
		return 0;
	if (!key_from_sock(&d.id.key, skc))
		return 0;
	d.id.key.pid = st->pid;
	d.id.key.transport = IPPROTO_TCP;
	d.id.key.direction = st->direction;
	if (excluded(&d.id.key))
		return 0;
	read_rtt(&d.counts, tp);
	__builtin_memcpy(d.counts.comm, st->comm, sizeof(d.counts.comm));
	d.counts.cmd = st->cmd;
	d.id.cgroup_id = sock_cgroup_id(sk);
	bpf_seq_write(ctx->meta->seq, &d, sizeof(d));
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
static __always_inline void add_bytes(struct udp_sock_state *st, int bytes, bool sent)
{
	if (sent)
		__sync_fetch_and_add(&st->bytes_written, bytes);
	else
		__sync_fetch_and_add(&st->bytes_read, bytes);
}

static __always_inline bool count_in_socket(struct udp_sock_state *st, const struct flow_key *k,
					    struct sock *sk, int bytes, bool sent)
{
	if (!st->bound) {
		if (st->closed)
			return false;
		__builtin_memcpy(&st->key, k, sizeof(*k));
		current_process_name(st->comm);
		current_command(&st->cmd);
		st->cgroup_id = sock_cgroup_id(sk);
		st->tgid = k->pid;
		st->bound = 1;
	} else if (!same_flow(&st->key, k)) {
		return false;
	}
	add_bytes(st, bytes, sent);
	return true;
}

/* The socket still talks to the peer its counters are bound to (it may connect elsewhere). */
static __always_inline bool same_peer(const struct sock *sk, const struct flow_key *k)
{
	const struct sock_common *skc = &sk->__sk_common;
	const __u64 *a;

	if (skc->skc_num != k->local_port || bpf_ntohs(skc->skc_dport) != k->remote_port)
		return false;
	if (skc->skc_family == AF_INET)
		return *(const __u32 *)(k->remote_addr + 12) == skc->skc_daddr;
	a = (const __u64 *)k->remote_addr;
	return a[0] == *(const __u64 *)&skc->skc_v6_daddr.in6_u.u6_addr8[0] &&
	       a[1] == *(const __u64 *)&skc->skc_v6_daddr.in6_u.u6_addr8[8];
}

static __always_inline void count_udp(struct sock *sk, int bytes, bool sent)
{
	struct udp_counts zero = {}, *counts;
	struct udp_sock_state *st;
	struct flow_key k = {};
	__u64 tid = bpf_get_current_pid_tgid();
	bool connected;

	/*
	 * The fast path: a socket already counting in its own storage, used by the process that
	 * bound it, to its peer, no exclusions to check: no key to build (~50 ns a datagram less).
	 */
	st = bpf_sk_storage_get(&udp_socks, sk, 0, 0);
	if (st && st->bound && !st->closed && st->tgid == tid >> 32 && st->peer.tid != tid &&
	    !switches.exclusions && same_peer(sk, &st->key)) {
		add_bytes(st, bytes, sent);
		return;
	}
	if (!key_from_sock(&k, &sk->__sk_common))
		return;
	connected = k.remote_port != 0;
	k.pid = tid >> 32;
	k.transport = IPPROTO_UDP;
	k.direction = udp_direction(sk);
	/* An unconnected call (or sendto on a connected socket): its address hook just told us this
	 * datagram's peer. */
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
		current_command(&zero.cmd);
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
		current_command(&counts->cmd);
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

/* A UDP socket's own counters as totals, in the shape sock_report takes. */
static __always_inline void udp_totals(struct sock_totals *t, const struct udp_sock_state *st)
{
	t->bytes_written = st->bytes_written;
	t->bytes_read = st->bytes_read;
	t->retransmits = 0;
	t->established = 0;
}

static __always_inline void udp_flow_id(struct flow_delta *d, const struct udp_sock_state *st)
{
	__builtin_memcpy(&d->id.key, &st->key, sizeof(d->id.key));
	d->id.cgroup_id = st->cgroup_id;
	__builtin_memcpy(d->counts.comm, st->comm, sizeof(d->counts.comm));
	d->counts.cmd = st->cmd;
}

/* Each poll: every UDP socket counting in its own storage whose counters moved, as its delta. */
SEC("iter/udp")
int dump_udp(struct bpf_iter__udp *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct udp_sock *udp = ctx->udp_sk;
	struct flow_delta d = {};
	struct udp_sock_state *st;
	struct sock_totals now;
	__u32 epoch = switches.epoch;
	struct sock *sk;

	/* The reader's namespace is the one walked (also run once with no socket at the end). */
	iter_netns = (__u64)BPF_CORE_READ(task, nsproxy, net_ns);
	if (!udp)
		return 0;
	sk = &udp->inet.sk;
	st = bpf_sk_storage_get(&udp_socks, sk, 0, 0);
	if (!st || !st->bound || st->closed)
		return 0;
	count_walked(false);
	if (!epoch)
		return 0;
	udp_totals(&now, st);
	if (!report_delta(&st->report, &now, epoch, &d.counts))
		return 0;
	udp_flow_id(&d, st);
	if (excluded(&d.id.key))
		return 0;
	bpf_seq_write(ctx->meta->seq, &d, sizeof(d));
	return 0;
}

/*
 * close() of a UDP socket counting in its own storage: its last delta, summed into
 * closed_flows (the iterator lists it no more). Runs in the closing process, before the socket
 * is unhashed.
 */
SEC("cgroup/sock_release")
int udp_release(struct bpf_sock *ctx)
{
	struct flow_delta d = {};
	struct udp_sock_state *st;
	struct sock_totals final;

	if (ctx->type != SOCK_DGRAM)
		return 1;
	st = bpf_sk_storage_get(&udp_socks, ctx, 0, 0);
	if (!st || !st->bound || st->closed)
		return 1;
	st->closed = 1;
	udp_totals(&final, st);
	if (!delta_of(&d.counts, &final, &st->report.staged))
		return 1;
	udp_flow_id(&d, st);
	add_closed(&d);
	return 1; /* never refuse: we only watch */
}

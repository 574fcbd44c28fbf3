// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * dns: every DNS request the host makes (and, if asked, answers), UDP and TCP, IPv4 and IPv6.
 *
 * A cgroup_skb pair on the cgroup v2 root sees each packet once leaving its socket (egress) and
 * once reaching one (ingress); loopback DNS therefore shows twice, once per end. Each packet is
 * tagged with the side it belongs to: the client's (a local process asked) or the server's (a
 * local DNS server answered), so each request counts once per side. cgroup_skb may run in
 * softirq, so the pid comes from the socket: the sock_addr hooks below run in the owning process
 * (connect, and sendmsg/recvmsg on unconnected UDP) and note it in the socket.
 *
 * UDP requests are counted here: a query waits in `pending` (keyed by socket pair, DNS id and
 * question) for its response, which sums the request into a row of `flows0`/`flows1` (every tag
 * of the dnsflow record); user space takes the rows each poll, so a request costs no work in
 * TypeScript. A response whose A/AAAA answers are new, or whose resend time passed, also goes
 * whole through the ring buffer for dns_domain stages. What this code does not read (TCP, a
 * message it cannot walk to its end, a name it cannot bound, a response with no query here)
 * goes whole through the ring buffer, and user space reads it as before (src/probes/
 * dns_messages.ts), matching a response against `pending` too, so counts stay exact.
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
#define E2BIG 7
#define DNS_HEADER 12
#define TYPE_A 1
#define TYPE_AAAA 28
#define TYPE_OPT 41
#define CLASS_IN 1
/* Steps of the record walk: a name label or a record's fixed part each. */
#define WALK_STEPS 512
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

const volatile struct dns_settings settings = { .sides = DNS_SIDE_CLIENT };
volatile struct dns_switches switches;

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
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* Queries awaiting their response; user space sizes it (max_pending) and ages entries out. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10000);
	__type(key, struct dns_pending_key);
	__type(value, struct dns_pending);
} pending SEC(".maps");

/*
 * Rows, in two generations: requests are summed into the one `switches.gen` names while user
 * space takes (and deletes) the other's, so a row is not written while it is read and deleted
 * (only a program that read the old `gen` just before the switch, and had not written yet when
 * user space took the rows, a window of a few instructions, could still write there).
 */
struct dns_flows {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct dns_flow_key);
	__type(value, struct dns_flow_stats);
};
struct dns_flows flows0 SEC(".maps");
struct dns_flows flows1 SEC(".maps");

/* Question names by hash, looked up by every new query: the least recently used go first. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct dns_name);
} names SEC(".maps");

/* Hash of (question, answers) → boot time after which the answers are sent again. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} answers_sent SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DNS_COUNTS);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

/* Built per packet, too big for the 512-byte stack. */
struct dns_scratch {
	struct dns_event event;
	struct dns_name name;
	struct dns_pending_key pkey;
	struct dns_row_event row;
};

/*
 * Slot 0 egress, 1 ingress: an egress program can be interrupted by the softirq that runs an
 * ingress one on the same CPU.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct dns_scratch);
} scratch SEC(".maps");

static __always_inline void count(__u32 what)
{
	count_in(&counts, what);
}

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
 * The packet's L4 header in its linear data (direct packet access: a few ns, where a copy with
 * bpf_skb_load_bytes costs tens), with its protocol; NULL when not there (the full path reads it).
 */
static __always_inline __u8 *l4_in_place(struct __sk_buff *skb, __u8 *proto)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	__u8 *l4;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data;

		if ((void *)(ip + 1) > end)
			return NULL;
		*proto = ip->protocol;
		l4 = data + ip->ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;

		if ((void *)(ip6 + 1) > end)
			return NULL;
		*proto = ip6->nexthdr;
		l4 = (void *)(ip6 + 1);
	} else {
		return NULL;
	}
	if ((void *)(l4 + 4) > end)
		return NULL;
	return l4;
}

/* The port of the packet's other end (host order), read in place; 0 when not there. */
static __always_inline __u32 remote_port_in_place(struct __sk_buff *skb, bool egress)
{
	__u8 proto = 0, *l4 = l4_in_place(skb, &proto);

	if (!l4 || (proto != IPPROTO_UDP && proto != IPPROTO_TCP))
		return 0;
	return egress ? (__u32)l4[2] << 8 | l4[3] : (__u32)l4[0] << 8 | l4[1];
}

/*
 * True when the packet need not be read, judged from its socket and ports: a connected socket
 * (TCP, or UDP after connect()) whose ports are both not DNS ports carries no DNS, so the
 * headers need not be copied (that cost ~140 ns a packet, measured with bpf_stats). One
 * exception: sendto() with an address on a connected UDP socket sends there, so an egress UDP
 * packet's destination port is read in place. And a local server's packet (its own port a DNS
 * port, the other end's not) when servers' requests are not reported (`sides`).
 */
static __always_inline bool skip_packet(struct __sk_buff *skb, bool egress)
{
	__u32 remote = bpf_ntohl(skb->remote_port); /* network order in the high half */
	bool local_dns = dns_port(skb->local_port);
	__u8 proto = 0, *l4;

	if (remote && dns_port(remote))
		return false;
	if (local_dns) {
		if (settings.sides & DNS_SIDE_SERVER)
			return false;
		/* An unconnected server socket: the other end's port is in the packet. */
		if (!remote)
			remote = remote_port_in_place(skb, egress);
		return remote && !dns_port(remote);
	}
	if (!remote)
		return false;
	if (!egress)
		return true;
	l4 = l4_in_place(skb, &proto);
	if (!l4)
		return false; /* headers not in the linear part: take the full path */
	if (proto != IPPROTO_UDP) /* a connected TCP socket sends only to its peer */
		return true;
	return !dns_port((__u32)l4[2] << 8 | l4[3]);
}

static __always_inline struct dns_scratch *scratch_slot(__u32 slot)
{
	return bpf_map_lookup_elem(&scratch, &slot);
}

static __always_inline __u8 byte_at(const struct dns_event *e, __u32 at)
{
	return e->payload[at & (DNS_PAYLOAD_MAX - 1)];
}

static __always_inline __u16 u16_at(const struct dns_event *e, __u32 at)
{
	return (__u16)byte_at(e, at) << 8 | byte_at(e, at + 1);
}

/*
 * The question name: its labels walked (no pointer: a question never needs one) to find its
 * end. Names are kept as the message spells them: a response repeats its query's question
 * byte for byte, and user space writes names in lower case.
 */
struct question_walk {
	__u32 slot;
	__u32 pos; /* in the payload */
	__u32 end; /* bytes captured */
	__s32 status; /* 0 walking, 1 done, -1 cannot (pointer, too long, cut) */
};

static long question_step(__u32 i, struct question_walk *q)
{
	struct dns_scratch *s = scratch_slot(q->slot);
	__u8 len;

	if (!s || q->pos >= q->end)
		goto cannot;
	len = byte_at(&s->event, q->pos);
	if (len == 0) {
		q->pos++;
		q->status = 1;
		return 1;
	}
	if (len & 0xc0) /* a pointer or a reserved label type */
		goto cannot;
	q->pos += 1 + len;
	return 0;
cannot:
	q->status = -1;
	return 1;
}

/*
 * The name's hash, over its wire bytes as little-endian 64-bit words, the last one zero-padded
 * (src/probes/dns_event.ts nameHash computes the same). Leaves the padding zeroed in `name`.
 */
static __always_inline __u64 hash_name(struct dns_name *name)
{
	__u64 *words = (__u64 *)name->wire, h = FNV_OFFSET ^ name->len, w;
	__u32 n = (name->len + 7) / 8, tail = name->len % 8;
	int i;

	if (tail) /* the padding is hashed as zeros, and compared as zeros later */
		words[(n - 1) & 31] &= (1ULL << (tail * 8)) - 1;
	for (i = 0; i < 32; i++) {
		if (i >= n)
			break;
		w = words[i];
		h = (h ^ w) * FNV_PRIME;
		h ^= h >> 29;
	}
	return h;
}

/* A response's records walked to the end: its EDNS rcode bits and its A/AAAA answers. */
struct record_walk {
	__u32 slot;
	__u32 pos;
	__u32 end;
	__u32 record;
	__u32 records;
	__u32 answers;	       /* records below this index are answers */
	__u32 additionals;     /* records from this index are additionals */
	__u32 in_name;	       /* 1: at an owner name, 0: at a record's fixed part */
	__s32 status;	       /* 0 walking, 1 done, -1 cannot */
	__u32 rcode_high;      /* EDNS: the upper 8 bits of the rcode */
	__u32 addresses;       /* A/AAAA answers seen */
	__u32 min_ttl;
	__u64 addresses_hash;  /* order-free: a sum of each address's hash */
};

static long record_step(__u32 i, struct record_walk *w)
{
	struct dns_scratch *s = scratch_slot(w->slot);
	__u32 type, klass, ttl, rdlength, data, n, j;
	__u64 h;
	__u8 b;

	if (!s)
		goto cannot;
	if (w->record >= w->records) {
		w->status = 1;
		return 1;
	}
	if (w->in_name) {
		/* Owner names are skipped, not read: a pointer ends one. */
		if (w->pos >= w->end)
			goto cannot;
		b = byte_at(&s->event, w->pos);
		if (b == 0) {
			w->pos++;
			w->in_name = 0;
		} else if ((b & 0xc0) == 0xc0) {
			w->pos += 2;
			w->in_name = 0;
		} else if (b & 0xc0) {
			goto cannot;
		} else {
			w->pos += 1 + b;
		}
		return 0;
	}
	if (w->pos + 10 > w->end)
		goto cannot;
	type = u16_at(&s->event, w->pos);
	klass = u16_at(&s->event, w->pos + 2) & 0x7fff;
	ttl = (__u32)u16_at(&s->event, w->pos + 4) << 16 | u16_at(&s->event, w->pos + 6);
	rdlength = u16_at(&s->event, w->pos + 8);
	data = w->pos + 10;
	if (data + rdlength > w->end)
		goto cannot;
	if (type == TYPE_OPT && w->record >= w->additionals) {
		w->rcode_high = byte_at(&s->event, w->pos + 4);
		/* user space checks an OPT's options before it takes these bits: so do the same */
		if (w->rcode_high && rdlength)
			goto cannot;
	}
	if (type == TYPE_A || type == TYPE_AAAA) {
		/* any other length is read differently by different readers: user space decides */
		if (rdlength != (type == TYPE_A ? 4 : 16))
			goto cannot;
		if (w->record < w->answers && klass == CLASS_IN) {
			w->addresses++;
			if (ttl < w->min_ttl)
				w->min_ttl = ttl;
			if (w->addresses <= DNS_ANSWERS_MAX) {
				h = FNV_OFFSET;
				n = rdlength;
				for (j = 0; j < 16; j++) {
					if (j >= n)
						break;
					h = (h ^ byte_at(&s->event, data + j)) * FNV_PRIME;
				}
				w->addresses_hash += h;
			}
		}
	}
	w->pos = data + rdlength;
	w->record++;
	w->in_name = 1;
	return 0;
cannot:
	w->status = -1;
	return 1;
}

/* The client's port as `*` (0) when the pipeline lets the kernel fold it (see ephemeral_port). */
static __always_inline __u16 fold_port(__u16 port)
{
	if (settings.fold_low && port >= settings.fold_low && port <= settings.fold_high) {
		count(DNS_COUNT_PORTS_COLLAPSED);
		return 0;
	}
	return port;
}

static __always_inline void add_stats(struct dns_flow_stats *v, __u64 latency, __u32 retransmits)
{
	__u64 max;

	__sync_fetch_and_add(&v->count, 1);
	__sync_fetch_and_add(&v->latency_sum, latency);
	if (retransmits)
		__sync_fetch_and_add(&v->retransmits, retransmits);
	/* Two CPUs may race on the max: the later loses only if it was not the larger. */
	max = v->latency_max;
	if (latency > max)
		__sync_val_compare_and_swap(&v->latency_max, max, latency);
}

/* Sums one request into its row of `map`; false when the map is full. */
static __always_inline bool add_row(void *map, const struct dns_flow_key *key, __u64 latency,
				    __u32 retransmits)
{
	struct dns_flow_stats zero = {}, *v = bpf_map_lookup_elem(map, key);

	if (!v) {
		/* EEXIST: another CPU made it first, which is fine. */
		if (bpf_map_update_elem(map, key, &zero, BPF_NOEXIST) == -E2BIG)
			return false;
		v = bpf_map_lookup_elem(map, key);
		if (!v)
			return false;
	}
	add_stats(v, latency, retransmits);
	return true;
}

/* A finished request: its row, or (the flows map full) the row through the ring buffer. */
static __always_inline void count_request(struct dns_scratch *s, const struct dns_pending *p,
					  __s16 rcode, bool truncated, __u64 latency)
{
	struct dns_row_event *row = &s->row;
	struct dns_flow_key *k = &row->key;
	const struct dns_event *e = &s->event;
	bool client = e->side == DNS_SIDE_CLIENT, added;

	__builtin_memset(row, 0, sizeof(*row));
	k->name_hash = s->pkey.name_hash;
	/* Arriving packets can lack the process; the query (or the other end) may know it. */
	if (p->pid) {
		k->pid = p->pid;
		__builtin_memcpy(k->comm, p->comm, sizeof(k->comm));
		k->cmd = p->cmd;
	} else {
		k->pid = e->pid;
		__builtin_memcpy(k->comm, e->comm, sizeof(k->comm));
		k->cmd = e->cmd;
	}
	k->cgroup_id = p->cgroup_id ? p->cgroup_id : e->cgroup_id;
	k->rcode = rcode;
	k->qtype = s->pkey.qtype;
	k->local_port = client ? fold_port(e->local_port) : e->local_port;
	k->remote_port = client ? e->remote_port : fold_port(e->remote_port);
	k->family = e->family;
	k->transport = IPPROTO_UDP;
	k->side = e->side;
	k->truncated = truncated;
	__builtin_memcpy(k->local_addr, e->local_addr, 16);
	__builtin_memcpy(k->remote_addr, e->remote_addr, 16);
	k->netns = e->netns;
	if (switches.gen)
		added = add_row(&flows1, k, latency, p->retransmits);
	else
		added = add_row(&flows0, k, latency, p->retransmits);
	if (added)
		return;
	count(DNS_COUNT_ROWS_VIA_RING);
	row->kind = DNS_EVENT_ROW;
	add_stats(&row->stats, latency, p->retransmits);
	if (bpf_ringbuf_output(&events, row, sizeof(*row), 0))
		count_drop(DROP_RINGBUF_FULL);
}

/* The name in `names` under its hash; false when the map is full or holds another name there. */
static __always_inline bool name_known(struct dns_scratch *s, __u64 hash)
{
	struct dns_name *stored = bpf_map_lookup_elem(&names, &hash);
	const __u64 *a, *b;
	__u32 n;
	int i;

	if (!stored) {
		/* An LRU: never full. EEXIST: another CPU stored it first. */
		bpf_map_update_elem(&names, &hash, &s->name, BPF_NOEXIST);
		return true;
	}
	/* Both are zero from their length to the end of its last word: whole words compare. */
	if (stored->len != s->name.len)
		goto collision;
	a = (const __u64 *)stored->wire;
	b = (const __u64 *)s->name.wire;
	n = (s->name.len + 7) / 8;
	for (i = 0; i < 32; i++) {
		if (i >= n)
			break;
		if (a[i] != b[i])
			goto collision;
	}
	return true;
collision:
	count(DNS_COUNT_NAME_COLLISIONS);
	return false;
}

/* A query: remembered until its response, or counted as sent again. False: user space's. */
static __always_inline bool note_query(struct dns_scratch *s)
{
	const struct dns_event *e = &s->event;
	struct dns_pending fresh = {}, *p = bpf_map_lookup_elem(&pending, &s->pkey);
	long err;

	if (p) {
		__sync_fetch_and_add(&p->retransmits, 1);
		count(DNS_COUNT_RETRANSMITS);
		return true;
	}
	if (!name_known(s, s->pkey.name_hash))
		return false;
	fresh.first_ns = e->boot_ns;
	fresh.cgroup_id = e->cgroup_id;
	fresh.pid = e->pid;
	__builtin_memcpy(fresh.comm, e->comm, sizeof(fresh.comm));
	fresh.cmd = e->cmd;
	err = bpf_map_update_elem(&pending, &s->pkey, &fresh, BPF_NOEXIST);
	if (err == -E2BIG) {
		count(DNS_COUNT_PENDING_FULL);
		return false;
	}
	return true; /* EEXIST: the same query on another CPU at once, which is a resend */
}

/* Sends a response's answers to user space when they are new, or due again. */
static __always_inline void offer_answers(struct dns_scratch *s, const struct record_walk *w)
{
	struct dns_event *e = &s->event;
	__u64 key, *due, ttl_ns;
	__u32 captured = e->captured;

	if (!settings.answers || !w->addresses || captured > DNS_PAYLOAD_MAX)
		return;
	key = s->pkey.name_hash ^ ((__u64)s->pkey.qtype << 48) ^ w->addresses_hash ^
	      ((__u64)w->addresses << 40) ^ ((__u64)switches.answers_gen << 20);
	key = (key ^ (key >> 31)) * FNV_PRIME;
	due = bpf_map_lookup_elem(&answers_sent, &key);
	if (due && e->boot_ns < *due)
		return;
	e->kind = DNS_EVENT_ANSWERS;
	if (bpf_ringbuf_output(&events, e, offsetof(struct dns_event, payload) + captured, 0)) {
		count_drop(DROP_RINGBUF_FULL);
		return;
	}
	count(DNS_COUNT_ANSWERS);
	/* dns_domain keeps a name for its TTL clamped to [min_ttl, max_ttl]: send it again then. */
	ttl_ns = (__u64)w->min_ttl * 1000000000ULL;
	if (ttl_ns < settings.min_ttl_ns)
		ttl_ns = settings.min_ttl_ns;
	if (ttl_ns > settings.max_ttl_ns)
		ttl_ns = settings.max_ttl_ns;
	ttl_ns += e->boot_ns;
	bpf_map_update_elem(&answers_sent, &key, &ttl_ns, BPF_ANY);
}

/*
 * A UDP message read and counted here. False: user space reads it whole (odd, a response with
 * no query here, no room). Early returns say which.
 */
static __always_inline bool count_here(struct dns_scratch *s, __u32 slot)
{
	struct dns_event *e = &s->event;
	struct question_walk q = { .slot = slot, .pos = DNS_HEADER, .end = e->captured };
	struct record_walk w = { .slot = slot, .end = e->captured, .in_name = 1,
				 .min_ttl = 0xffffffff };
	struct dns_pending p, *found;
	__u16 flags, questions;
	__u32 len;
	bool response, query_way;

	if (e->captured < DNS_HEADER)
		return false;
	flags = u16_at(e, 2);
	questions = u16_at(e, 4);
	if (questions != 1) /* none is malformed; several: user space takes the first as we would */
		return false;
	bpf_loop(DNS_NAME_MAX / 2 + 1, question_step, &q, 0);
	/* The name is at most 254 bytes, as user space's reader allows. */
	len = q.pos - 1 - DNS_HEADER;
	if (q.status != 1 || len > DNS_NAME_MAX || q.pos + 4 > e->captured)
		return false;
	s->name.len = len;
	barrier_var(len); /* else the compiler drops the mask the verifier needs, as len <= 254 */
	if (bpf_probe_read_kernel(s->name.wire, len & 0xff, e->payload + DNS_HEADER))
		return false;

	__builtin_memset(&s->pkey, 0, sizeof(s->pkey));
	s->pkey.name_hash = hash_name(&s->name);
	s->pkey.id = u16_at(e, 0);
	s->pkey.qtype = u16_at(e, q.pos);
	s->pkey.local_port = e->local_port;
	s->pkey.remote_port = e->remote_port;
	s->pkey.family = e->family;
	s->pkey.side = e->side;
	__builtin_memcpy(s->pkey.local_addr, e->local_addr, 16);
	__builtin_memcpy(s->pkey.remote_addr, e->remote_addr, 16);
	s->pkey.netns = e->netns;

	/* A client's queries leave and a server's arrive. */
	query_way = e->side == DNS_SIDE_CLIENT;
	response = flags & 0x8000;
	if (!response) {
		if (e->outbound != query_way) {
			count(DNS_COUNT_IGNORED);
			return true;
		}
		return note_query(s);
	}
	if (e->outbound == query_way) /* a response going the query's way: no request of ours */
		return false;

	w.pos = q.pos + 4;
	w.answers = u16_at(e, 6);
	w.additionals = w.answers + u16_at(e, 8);
	w.records = w.additionals + u16_at(e, 10);
	bpf_loop(WALK_STEPS, record_step, &w, 0);
	if (w.status != 1)
		return false;

	found = bpf_map_lookup_elem(&pending, &s->pkey);
	if (!found)
		return false;
	__builtin_memcpy(&p, found, sizeof(p));
	/* Whoever deletes it counts it: user space ages pending queries out the same way. */
	if (bpf_map_delete_elem(&pending, &s->pkey))
		return false;
	count_request(s, &p, (__s16)((flags & 0xf) | (w.rcode_high << 4)), flags & 0x0200,
		      e->boot_ns > p.first_ns ? e->boot_ns - p.first_ns : 0);
	offer_answers(s, &w);
	return true;
}

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* The network namespace (inode) of the packet's local socket: the same on both of its ends. */
static __always_inline __u32 skb_netns(struct __sk_buff *skb)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);

	return BPF_CORE_READ(kskb, sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline int capture(struct __sk_buff *skb, bool egress)
{
	__u32 slot = egress ? 0 : 1, l4_off, payload_off, payload_len, captured;
	__u16 sport, dport;
	__u8 proto, side;
	struct dns_scratch *s;
	struct dns_event *e;
	struct dns_owner *owner;
	struct bpf_sock *sk;

	if (skip_packet(skb, egress))
		return 1;
	s = scratch_slot(slot);
	if (!s)
		return 1;
	e = &s->event;
	/*
	 * The scratch event is reused: zero its whole header, so no byte of an earlier packet
	 * (padding, a longer name's tail after comm's NUL) reaches user space or a row's key. The
	 * payload needs none: only the `captured` bytes loaded below are read or sent.
	 */
	__builtin_memset(e, 0, offsetof(struct dns_event, payload));

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
	e->kind = DNS_EVENT_MESSAGE;
	e->boot_ns = bpf_ktime_get_boot_ns();
	e->payload_len = payload_len;
	e->captured = captured;
	e->transport = proto;
	e->side = side;
	e->outbound = egress;
	e->local_port = egress ? sport : dport;
	e->remote_port = egress ? dport : sport;
	/* The socket's cgroup (set when it was created), not the current task's: softirq. */
	e->cgroup_id = bpf_skb_cgroup_id(skb);
	e->netns = skb_netns(skb);
	sk = skb->sk;
	if (sk) {
		sk = bpf_sk_fullsock(sk);
		if (sk) {
			owner = bpf_sk_storage_get(&owners, sk, 0, 0);
			if (owner) {
				e->pid = owner->pid;
				__builtin_memcpy(e->comm, owner->comm, sizeof(e->comm));
				e->cmd = owner->cmd;
			}
		}
	}
	if (settings.aggregate) {
		if (proto == IPPROTO_UDP && count_here(s, slot))
			return 1;
		count(DNS_COUNT_FALLBACK);
	}
	e->kind = DNS_EVENT_MESSAGE;
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
	__u32 pid;

	if (!sk)
		return 1;
	/* A client's socket talks to a DNS port; a server's is bound to one (if servers count). */
	if (!dns_port(bpf_ntohs(ctx->user_port)) &&
	    !((settings.sides & DNS_SIDE_SERVER) && dns_port(sk->src_port)))
		return 1;
	owner = bpf_sk_storage_get(&owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	pid = bpf_get_current_pid_tgid() >> 32;
	/* Noted already: a socket's calls are its process's (the name read costs most). */
	if (owner && owner->pid != pid) {
		owner->pid = pid;
		/* The name is copied whole into events and rows: no tail of the last owner's. */
		__builtin_memset(owner->comm, 0, sizeof(owner->comm));
		current_process_name(owner->comm);
	}
	/* Each call: the same process may ask for another typed command (a shell's builtins). */
	if (owner)
		current_command(&owner->cmd);
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

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared by every probe: the drop counters that user space sums and reports. */
#ifndef COMMON_H
#define COMMON_H

/* Indexes into `drops`; keep in step with DROP_REASONS in src/probes/drops.ts. */
enum drop_reason {
	DROP_RINGBUF_FULL = 0, /* bpf_ringbuf_output failed: the reader fell behind */
	DROP_READ_FAILED = 1,  /* a user/kernel memory read failed, the event was skipped */
	DROP_SOCKETS_FULL = 2, /* netflow: the per-socket map was full (pid, direction unknown) */
	DROP_FLOWS_FULL = 3,   /* netflow: the UDP flow map was full, the datagram went uncounted */
	DROP_REASONS = 4,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

static __always_inline void count_drop(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&drops, &reason);

	/* Cannot fail for an index below max_entries; the check satisfies the verifier. */
	if (n)
		*n += 1;
}

#endif /* COMMON_H */

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Test-only: writes records of varying size with sequence numbers into a ring buffer when run
 * with BPF_PROG_TEST_RUN, so test/kernel/ring_buffer_test.ts can check the TypeScript reader
 * for order, integrity, wrap-around and loss without any real traffic.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024); /* small, so tests wrap it often */
} events SEC(".maps");

#define PAYLOAD_MAX 256
#define RECORDS_MAX 512 /* per run; a bounded loop (bpf_loop misbehaved on re-runs here) */

/* One record: seq, then `len` payload bytes each equal to seq & 0xff. */
struct gen_record {
	__u32 seq;
	__u32 len;
	__u64 payload[PAYLOAD_MAX / 8];
};

/* Passed as ctx_in: how many records, starting at which seq, payload length = seq % size_mod. */
struct gen_args {
	__u32 count;
	__u32 first_seq;
	__u32 size_mod;
	__u32 failed; /* out: bpf_ringbuf_output failures (ring full) */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_record);
} scratch SEC(".maps");

SEC("syscall")
int gen(struct gen_args *args)
{
	__u32 zero = 0, i, j, len, count = args->count, mod = args->size_mod ? args->size_mod : 1;
	struct gen_record *r = bpf_map_lookup_elem(&scratch, &zero);
	__u32 failed = 0;
	__u64 fill;

	/* Cannot fail for index 0; the check satisfies the verifier. */
	if (!r)
		return 1;
	for (i = 0; i < RECORDS_MAX && i < count; i++) {
		r->seq = args->first_seq + i;
		len = r->seq % mod;
		if (len > PAYLOAD_MAX)
			len = PAYLOAD_MAX;
		r->len = len;
		fill = (r->seq & 0xff) * 0x0101010101010101ULL;
		for (j = 0; j < PAYLOAD_MAX / 8; j++)
			r->payload[j] = fill;
		if (bpf_ringbuf_output(&events, r, 8 + len, 0))
			failed++;
	}
	args->failed = failed;
	return 0;
}

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared by every probe: the drop counters that user space sums and reports. */
#ifndef COMMON_H
#define COMMON_H

#include <bpf/bpf_core_read.h>

/*
 * Keeps types in the object's BTF that no code or map refers to: clang emits only the types
 * something uses, and src/probes/layout_test.ts compares the enums user space mirrors (and the
 * structs it builds itself) with its own layouts there. A function nobody calls but the
 * compiler keeps (`used`) takes a pointer to each; libbpf loads only the functions a program
 * calls, so it costs nothing at run time. At most five types a function (BPF's argument limit).
 */
#define BTF_ANCHOR(name, ...) __attribute__((used)) static void btf_anchor_##name(__VA_ARGS__) {}

/*
 * Indexes into `drops`; keep in step with COMMON_DROPS in src/probes/drops.ts (a test compares
 * them). A probe with drop reasons of its own continues this enum from DROP_REASONS in its .h
 * and declares them in its def's `drops` (src/pipeline/stage.ts); sizeDrops() sizes the map.
 */
enum drop_reason {
	DROP_RINGBUF_FULL = 0, /* bpf_ringbuf_output failed: the reader fell behind */
	DROP_READ_FAILED = 1,  /* a user/kernel memory read failed, the event was skipped */
	DROP_SOCKETS_FULL = 2, /* netflow: the per-socket map was full (pid, direction unknown) */
	DROP_FLOWS_FULL = 3,   /* netflow: the UDP flow map was full, the datagram went uncounted */
	DROP_REASONS = 4,
};

BTF_ANCHOR(common, enum drop_reason *reason)

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* Adds one to entry `index` of `counters`, a per-CPU __u64 array (`drops`, a probe's `counts`). */
static __always_inline void count_in(void *counters, __u32 index)
{
	__u64 *n = bpf_map_lookup_elem(counters, &index);

	/* Cannot fail for an index below max_entries; the check satisfies the verifier. */
	if (n)
		*n += 1;
}

static __always_inline void count_drop(__u32 reason)
{
	count_in(&drops, reason);
}

/*
 * The current process's name: its main thread's comm, which `ps` shows, not the calling
 * thread's (bpf_get_current_comm gives "tokio-runtime-w" for a deno process).
 */
static __always_inline void current_process_name(char comm[16])
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);

	if (bpf_probe_read_kernel_str(comm, 16, &leader->comm) < 0)
		bpf_get_current_comm(comm, 16);
}

#endif /* COMMON_H */

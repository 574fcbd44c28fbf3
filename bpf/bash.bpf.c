// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bash: every line read by an interactive bash.
 *
 * A uretprobe on readline_internal_teardown() (user space attaches it, falling back to
 * readline()). teardown returns the finished line at the end of every readline call, including
 * the one already waiting at a prompt when we attach; a uretprobe on readline() itself misses
 * that first line.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "common.h"
#include "bash.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct bash_settings settings = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* The event is 16 KiB: too big for the 512-byte BPF stack, so it is built here. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bash_event);
} scratch SEC(".maps");

/* Scanning past the captured text to learn the full length: at most 64 x 4 KiB more. */
#define SCAN_CHUNK 4096
#define SCAN_CHUNKS 64

static __always_inline bool from_bash(void)
{
	char comm[16];

	if (!settings.require_bash_comm)
		return true;
	bpf_get_current_comm(comm, sizeof(comm));
	return comm[0] == 'b' && comm[1] == 'a' && comm[2] == 's' && comm[3] == 'h' && !comm[4];
}

SEC("uretprobe")
int BPF_KRETPROBE(handle_readline, const char *line) /* BPF_URETPROBE needs libbpf 1.2 */
{
	__u32 zero = 0, len, i;
	struct bash_event *e;
	long n;

	/* EOF (Ctrl-D) returns NULL: there is no command. */
	if (!line)
		return 0;
	/* python, gdb and others link libreadline too; only bash's lines count. */
	if (!from_bash())
		return 0;
	e = bpf_map_lookup_elem(&scratch, &zero);
	/* Cannot fail for index 0; the check satisfies the verifier. */
	if (!e)
		return 0;

	n = bpf_probe_read_user_str(e->cmd, sizeof(e->cmd), line);
	if (n < 0) {
		count_drop(DROP_READ_FAILED);
		return 0;
	}
	len = n - 1; /* n counts the NUL */
	/* An empty line (Enter at the prompt) runs nothing. */
	if (len == 0)
		return 0;
	e->cmd_bytes = len;
	e->cmd_len = len;
	if (len == BASH_CMD_MAX) {
		/* Truncated: keep reading in chunks, only to count the bytes. */
		for (i = 0; i < SCAN_CHUNKS; i++) {
			n = bpf_probe_read_user_str(e->cmd + BASH_CMD_MAX - SCAN_CHUNK,
						    SCAN_CHUNK, line + e->cmd_len);
			if (n <= 0)
				break;
			e->cmd_len += n - 1;
			if (n < SCAN_CHUNK)
				break;
		}
		/* The scan overwrote the tail of the capture: read it again. */
		bpf_probe_read_user(e->cmd + BASH_CMD_MAX - SCAN_CHUNK, SCAN_CHUNK,
				    line + BASH_CMD_MAX - SCAN_CHUNK);
	}

	e->boot_ns = bpf_ktime_get_boot_ns();
	/* Read here, in the bash's own context: no race with the process moving or exiting. */
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->uid = (__u32)bpf_get_current_uid_gid();
	len = e->cmd_bytes;
	if (len > BASH_CMD_MAX)
		len = BASH_CMD_MAX; /* bound for the verifier; cannot happen */
	if (bpf_ringbuf_output(&events, e, BASH_EVENT_HEADER_SIZE + len, 0))
		count_drop(DROP_RINGBUF_FULL);
	return 0;
}

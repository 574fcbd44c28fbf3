/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The bash event contract between bash.bpf.c and src/probes/bash_event.ts.
 * Fixed-width fields only, largest first, no implicit padding. src/probes/layout_test.ts
 * compares this layout (from the object's BTF) with the TypeScript decoder.
 */
#ifndef BASH_H
#define BASH_H

/* Bytes of command text the kernel captures (without the terminating NUL). */
#define BASH_CMD_MAX 16384

struct bash_event {
	__u64 boot_ns;   /* bpf_ktime_get_boot_ns() when readline returned */
	__u64 cgroup_id; /* the bash's cgroup v2 id (its directory's inode), for container attribution */
	__u32 pid;       /* tgid of the bash process */
	__u32 uid;       /* real uid */
	__u32 cmd_len;   /* full length of the line in bytes, even when longer than captured */
	__u32 cmd_bytes; /* bytes of cmd[] that follow (<= BASH_CMD_MAX) */
	__u8 cmd[BASH_CMD_MAX + 1];
};

#define BASH_EVENT_HEADER_SIZE 32

_Static_assert(__builtin_offsetof(struct bash_event, cmd) == BASH_EVENT_HEADER_SIZE,
	       "update the TypeScript layout in src/probes/bash_event.ts");

/* Settings written by user space before load (the `settings` rodata variable). */
struct bash_settings {
	/*
	 * Set when the probe is on a shared libreadline (python and gdb map it too): count only
	 * tasks whose comm is "bash". Probing bash itself needs no filter: only bash maps it.
	 */
	__u32 require_bash_comm;
	__u32 _pad;
};

#endif /* BASH_H */

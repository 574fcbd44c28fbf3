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

/* What an event on the ring says; every event starts with `struct bash_event_head`. */
enum bash_event_kind {
	BASH_LINE = 0, /* readline returned a line (struct bash_event) */
	BASH_END = 1,  /* the command ended: bash came back for the next one (bash_process_event) */
	BASH_FORK = 2, /* a process of the command started (bash_process_event) */
	BASH_EXEC = 3, /* a process of the command ran a program (comm: its name) */
	BASH_EXIT = 4, /* a process of the command exited */
};

#include "commands.h" /* struct command_ref, the commands map */

/* The first 24 bytes of every event. */
struct bash_event_head {
	__u64 boot_ns;	   /* bpf_ktime_get_boot_ns() when it happened */
	__u64 cmd_boot_ns; /* the command's id, with shell_pid; 0: none */
	__u32 kind;	   /* enum bash_event_kind */
	__u32 shell_pid;   /* tgid of the bash that read the command */
};

struct bash_event {
	struct bash_event_head head;
	__u64 cgroup_id; /* the bash's cgroup v2 id (its directory's inode), for container attribution */
	__u32 uid;	 /* real uid */
	__u32 cmd_len;	 /* full length of the line in bytes, even when longer than captured */
	__u32 cmd_bytes; /* bytes of cmd[] that follow (<= BASH_CMD_MAX) */
	__u32 _pad;
	__u8 cmd[BASH_CMD_MAX + 1];
};

#define BASH_EVENT_HEADER_SIZE 48

_Static_assert(__builtin_offsetof(struct bash_event, cmd) == BASH_EVENT_HEADER_SIZE,
	       "update the TypeScript layout in src/probes/bash_event.ts");

/* BASH_END, BASH_FORK, BASH_EXEC, BASH_EXIT. */
struct bash_process_event {
	struct bash_event_head head;
	__u32 pid;	/* the process (tgid); the bash itself for BASH_END */
	__s32 exit_code; /* BASH_END: bash's $? (-1: unknown); BASH_EXIT: its exit status */
	char comm[16];	/* BASH_EXEC: the program's name */
};

/* Settings written by user space before load (the `settings` rodata variable). */
struct bash_settings {
	/*
	 * Set when the probe is on a shared libreadline (python and gdb map it too): count only
	 * tasks whose comm is "bash". Probing bash itself needs no filter: only bash maps it.
	 */
	__u32 require_bash_comm;
	__u32 _pad;
	/*
	 * Link-time addresses (ELF symbol values) of bash's parse_command() and of its
	 * last_command_exit_value (`$?`): at parse_command's entry the difference between its
	 * address in the process and the first is the load bias. 0: $? is not readable (-1).
	 */
	__u64 parse_command_addr;
	__u64 exit_value_addr;
};

#endif /* BASH_H */

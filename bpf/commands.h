/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Which typed command a process belongs to: the one kernel map probes share (the probe
 * contract's `provides`/`consumes`, src/pipeline/stage.ts). The bash probe owns and fills
 * `commands`; netflow and dns look the current process up in it to stamp `cmd_id` on what
 * they count. User space hands them the bash probe's map (libbpf bpf_map__reuse_fd) before
 * they load; without a bash probe their own copy stays empty (1 entry) and nothing is stamped.
 * Every object that includes this defines the map identically, as map reuse requires.
 */
#ifndef COMMANDS_H
#define COMMANDS_H

/*
 * A command: the bash that read it and when readline returned its first line. The pair is its
 * id (`cmd_id` = "<shell_pid>-<boot_ns>"), unique across restarts of the collector and,
 * practically, reboots. All zero: no command.
 */
struct command_ref {
	__u64 boot_ns;
	__u32 shell_pid;
	__u32 _pad;
};

/* tgid -> the command it belongs to: a command's bash while it runs, and its processes. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct command_ref);
} commands SEC(".maps");

/* The current process's command into `out` (zeroed when it is in none). */
static __always_inline void current_command(struct command_ref *out)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct command_ref *ref = bpf_map_lookup_elem(&commands, &pid);

	if (ref) {
		out->boot_ns = ref->boot_ns;
		out->shell_pid = ref->shell_pid;
	} else {
		out->boot_ns = 0;
		out->shell_pid = 0;
	}
	out->_pad = 0;
}

#endif /* COMMANDS_H */

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bash: every line read by an interactive bash, and what each command did.
 *
 * A uretprobe on readline_internal_teardown() (user space attaches it, falling back to
 * readline()). teardown returns the finished line at the end of every readline call, including
 * the one already waiting at a prompt when we attach; a uretprobe on readline() itself misses
 * that first line.
 *
 * Commands: the first line readline returns after bash's parse_command() began is a new
 * command (PS2 continuation lines are read inside the same parse_command, so they share it).
 * The command lasts until bash enters parse_command() again, for the next one: there, before
 * anything else, bash runs PROMPT_COMMAND, and then, inside yyparse, expands PS1 (command
 * substitutions) and reads the line (completion): none of that is in a command. At that entry
 * `last_command_exit_value` is the command's `$?`, builtins and Ctrl-C (130) included.
 * While a command runs, the bash and every process it forks (sched_process_fork) are in the
 * `commands` map with the command's id; a process leaves it when it exits, the bash when the
 * command ends.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "common.h"
#include "bash.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct bash_settings settings = {};

BTF_ANCHOR(bash, enum bash_event_kind *kind, struct bash_process_event *process)

/* An interactive bash's tgid -> its command under way (boot_ns 0: between commands). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct command_ref);
} shells SEC(".maps");

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

/*
 * The command a line read by `shell` at `now` belongs to: the one under way (a continuation
 * line), or a new one, which the bash joins in `commands`. 0 when the maps are full.
 */
static __always_inline __u64 command_of_line(__u32 shell, __u64 now)
{
	struct command_ref *cur = bpf_map_lookup_elem(&shells, &shell);
	struct command_ref ref = { .boot_ns = now, .shell_pid = shell };

	if (cur && cur->boot_ns)
		return cur->boot_ns;
	if (bpf_map_update_elem(&shells, &shell, &ref, BPF_ANY) ||
	    bpf_map_update_elem(&commands, &shell, &ref, BPF_ANY))
		return 0;
	return now;
}

static __always_inline void send_process_event(const struct command_ref *ref, __u32 kind,
					       __u32 pid, __s32 exit_code)
{
	struct bash_process_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count_drop(DROP_RINGBUF_FULL);
		return;
	}
	e->head.boot_ns = bpf_ktime_get_boot_ns();
	e->head.cmd_boot_ns = ref->boot_ns;
	e->head.kind = kind;
	e->head.shell_pid = ref->shell_pid;
	e->pid = pid;
	e->exit_code = exit_code;
	if (kind == BASH_EXEC)
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	else
		__builtin_memset(e->comm, 0, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
}

/* Bash's `$?` (last_command_exit_value), read at parse_command's entry `ip`; -1: unknown. */
static __always_inline __s32 exit_value(__u64 ip)
{
	__u64 bias = ip - settings.parse_command_addr;
	__s32 value;

	if (!settings.exit_value_addr)
		return -1;
	/* The load bias is page-aligned; a perf uprobe may report the address after the int3. */
	if (bias & 0xfff)
		bias -= 1;
	if ((bias & 0xfff) ||
	    bpf_probe_read_user(&value, sizeof(value), (void *)(bias + settings.exit_value_addr)))
		return -1;
	return value;
}

/*
 * The command ends: bash enters parse_command() for the next one. Scripts run through
 * parse_command too; only a bash that read a line with readline has an entry in `shells`.
 */
SEC("uprobe")
int BPF_KPROBE(handle_parse_command)
{
	__u32 shell = bpf_get_current_pid_tgid() >> 32;
	struct command_ref *cur = bpf_map_lookup_elem(&shells, &shell), ref;

	if (!cur || !cur->boot_ns)
		return 0;
	ref = *cur;
	cur->boot_ns = 0;
	bpf_map_delete_elem(&commands, &shell);
	send_process_event(&ref, BASH_END, shell, exit_value(PT_REGS_IP(ctx)));
	return 0;
}

/* A process of a command forks: the child joins it (threads are in it already). */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 parent_pid = parent->tgid, pid = child->pid;
	struct command_ref *ref;

	if (child->tgid != pid)
		return 0;
	ref = bpf_map_lookup_elem(&commands, &parent_pid);
	if (!ref)
		return 0;
	if (bpf_map_update_elem(&commands, &pid, ref, BPF_ANY))
		return 0;
	send_process_event(ref, BASH_FORK, pid, 0);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct command_ref *ref = bpf_map_lookup_elem(&commands, &pid);

	if (ref)
		send_process_event(ref, BASH_EXEC, pid, 0);
	return 0;
}

/* `code` as wait(2) reports it, as a shell's $?: the status, or 128 + the signal. */
static __always_inline __s32 exit_status(int code)
{
	return (code & 0x7f) ? 128 + (code & 0x7f) : (code >> 8) & 0xff;
}

/*
 * A process leaves its command when its last thread exits (signal->live reached 0 before the
 * tracepoint). A bash that exits within a command (`exit 3`) ends it with its exit status.
 */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit, struct task_struct *task)
{
	__u32 pid = task->tgid;
	struct command_ref *ref, *cur, copy;

	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	cur = bpf_map_lookup_elem(&shells, &pid);
	if (cur) {
		if (cur->boot_ns) {
			copy = *cur;
			send_process_event(&copy, BASH_END, pid, exit_status(task->exit_code));
		}
		bpf_map_delete_elem(&shells, &pid);
		bpf_map_delete_elem(&commands, &pid);
		return 0;
	}
	ref = bpf_map_lookup_elem(&commands, &pid);
	if (!ref)
		return 0;
	copy = *ref;
	bpf_map_delete_elem(&commands, &pid);
	send_process_event(&copy, BASH_EXIT, pid, exit_status(task->exit_code));
	return 0;
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

	e->head.boot_ns = bpf_ktime_get_boot_ns();
	e->head.kind = BASH_LINE;
	e->head.shell_pid = bpf_get_current_pid_tgid() >> 32;
	e->head.cmd_boot_ns = command_of_line(e->head.shell_pid, e->head.boot_ns);
	/* Read here, in the bash's own context: no race with the process moving or exiting. */
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->uid = (__u32)bpf_get_current_uid_gid();
	len = e->cmd_bytes;
	if (len > BASH_CMD_MAX)
		len = BASH_CMD_MAX; /* bound for the verifier; cannot happen */
	if (bpf_ringbuf_output(&events, e, BASH_EVENT_HEADER_SIZE + len, 0))
		count_drop(DROP_RINGBUF_FULL);
	return 0;
}

/**
 * Decodes `struct bash_event` (bpf/bash.h) and turns it into a `bash` record. Pure: no kernel,
 * so it is tested on hand-built bytes. src/probes/layout_test.ts checks its layouts against
 * the compiled object's BTF, so the two cannot drift.
 */
import type { Record } from "../record.ts";
import { commandId } from "./commands.ts";
import { cEnum, cStruct } from "./layout.ts";

/** Bytes of command text the kernel captures (BASH_CMD_MAX). */
export const BASH_CMD_MAX = 16384;

/** `struct bash_event_head` (bpf/bash.h): the first bytes of every event on the ring. */
export const BASH_EVENT_HEAD = cStruct("bash_event_head", 24, {
  boot_ns: [0, 8],
  cmd_boot_ns: [8, 8],
  kind: [16, 4],
  shell_pid: [20, 4],
});

/** `enum bash_event_kind` (bpf/bash.h): what an event says. */
export const BASH_EVENT_KIND = cEnum("bash_event_kind", {
  BASH_LINE: 0,
  BASH_END: 1,
  BASH_FORK: 2,
  BASH_EXEC: 3,
  BASH_EXIT: 4,
});
const KIND = BASH_EVENT_KIND.values;

/** `struct bash_event` (bpf/bash.h): a line readline returned, then the command's bytes. */
export const BASH_EVENT = cStruct("bash_event", 16440, {
  head: [0, BASH_EVENT_HEAD],
  cgroup_id: [24, 8],
  uid: [32, 4],
  cmd_len: [36, 4],
  cmd_bytes: [40, 4],
  _pad: [44, 4],
  cmd: [48, BASH_CMD_MAX + 1],
});

/** `struct bash_process_event` (bpf/bash.h): a command ended, or one of its processes acted. */
export const BASH_PROCESS_EVENT = cStruct("bash_process_event", 48, {
  head: [0, BASH_EVENT_HEAD],
  pid: [24, 4],
  exit_code: [28, 4],
  comm: [32, 16],
});

export { COMMAND_REF } from "./commands.ts"; // the layout test compares it with this BTF

/** `struct bash_settings` (bpf/bash.h): the `settings` rodata written before load. */
export const BASH_SETTINGS = cStruct("bash_settings", 24, {
  require_bash_comm: [0, 4],
  _pad: [4, 4],
  parse_command_addr: [8, 8],
  exit_value_addr: [16, 8],
});

/** One line; `cmd` is a view into the ring: copy or decode it before the call returns. */
export interface BashEvent {
  kind: "line";
  bootNs: bigint;
  /** The command's start (with `pid`, its id); 0n: none (the kernel's maps were full). */
  cmdBootNs: bigint;
  /** The bash's cgroup v2 id, read in its own context (0: unknown). */
  cgroupId: bigint;
  /** The bash's pid. */
  pid: number;
  uid: number;
  /** Full length of the line in bytes. */
  cmdLen: number;
  cmd: Uint8Array;
}

/** A command ended (`end`), or a process of it started, ran a program, or exited. */
export interface BashProcessEvent {
  kind: "end" | "fork" | "exec" | "exit";
  bootNs: bigint;
  cmdBootNs: bigint;
  /** The command's bash. */
  shellPid: number;
  /** The process; the bash itself for `end`. */
  pid: number;
  /** end: bash's `$?` (-1: unknown); exit: the process's exit status. */
  exitCode: number;
  /** exec: the program's name. */
  comm: string;
}

/** Thrown for a record whose size does not fit the layout (a corrupt or foreign record). */
export class DecodeError extends Error {
  override name = "DecodeError";
}

const PROCESS_KINDS: { [kind: number]: BashProcessEvent["kind"] } = {
  [KIND.BASH_END]: "end",
  [KIND.BASH_FORK]: "fork",
  [KIND.BASH_EXEC]: "exec",
  [KIND.BASH_EXIT]: "exit",
};

/** Decodes the event at `offset` (of `length` bytes) in `view`, of either kind. */
export function decodeBashEvent(
  view: DataView,
  offset: number,
  length: number,
): BashEvent | BashProcessEvent {
  const H = BASH_EVENT_HEAD.offsets;
  if (length < BASH_EVENT_HEAD.size) {
    throw new DecodeError(`bash event of ${length} bytes, shorter than its header`);
  }
  const kind = view.getUint32(offset + H.kind, true);
  if (kind === KIND.BASH_LINE) return decodeLine(view, offset, length);
  const processKind = PROCESS_KINDS[kind];
  if (!processKind) throw new DecodeError(`bash event of unknown kind ${kind}`);
  if (length < BASH_PROCESS_EVENT.size) {
    throw new DecodeError(
      `bash ${processKind} event of ${length} bytes, not ${BASH_PROCESS_EVENT.size}`,
    );
  }
  const P = BASH_PROCESS_EVENT.offsets;
  const comm = new Uint8Array(view.buffer, view.byteOffset + offset + P.comm, 16);
  const nul = comm.indexOf(0);
  return {
    kind: processKind,
    bootNs: view.getBigUint64(offset + H.boot_ns, true),
    cmdBootNs: view.getBigUint64(offset + H.cmd_boot_ns, true),
    shellPid: view.getUint32(offset + H.shell_pid, true),
    pid: view.getUint32(offset + P.pid, true),
    exitCode: view.getInt32(offset + P.exit_code, true),
    comm: decoder.decode(comm.subarray(0, nul < 0 ? 16 : nul)),
  };
}

function decodeLine(view: DataView, offset: number, length: number): BashEvent {
  const L = BASH_EVENT.offsets, H = BASH_EVENT_HEAD.offsets;
  if (length < L.cmd) {
    throw new DecodeError(`bash event of ${length} bytes, shorter than its header`);
  }
  const cmdBytes = view.getUint32(offset + L.cmd_bytes, true);
  if (cmdBytes > length - L.cmd || cmdBytes > BASH_CMD_MAX) {
    throw new DecodeError(
      `bash event says ${cmdBytes} command bytes but carries ${length - L.cmd}`,
    );
  }
  return {
    kind: "line",
    bootNs: view.getBigUint64(offset + H.boot_ns, true),
    cmdBootNs: view.getBigUint64(offset + H.cmd_boot_ns, true),
    cgroupId: view.getBigUint64(offset + L.cgroup_id, true),
    pid: view.getUint32(offset + H.shell_pid, true),
    uid: view.getUint32(offset + L.uid, true),
    cmdLen: view.getUint32(offset + L.cmd_len, true),
    cmd: new Uint8Array(view.buffer, view.byteOffset + offset + L.cmd, cmdBytes),
  };
}

/**
 * The longest prefix of UTF-8 `bytes` of at most `max` bytes that ends on a character
 * boundary, so a cut never splits a character.
 */
export function cutUtf8(bytes: Uint8Array, max: number): Uint8Array {
  if (bytes.length <= max) return bytes;
  let end = max;
  // Step back over continuation bytes (10xxxxxx) to the start of the character being cut.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/** `bytes` without an incomplete last UTF-8 character (text someone else cut off). */
function withoutPartialTail(bytes: Uint8Array): Uint8Array {
  let start = bytes.length - 1; // where the last character starts
  while (start > 0 && bytes.length - start < 4 && (bytes[start] & 0xc0) === 0x80) start--;
  if (start < 0) return bytes;
  const lead = bytes[start];
  const size = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return start + size > bytes.length ? bytes.subarray(0, start) : bytes;
}

const decoder = new TextDecoder(); // invalid UTF-8 becomes U+FFFD rather than failing

/** What a bash record needs besides the event. */
export interface BashRecordContext {
  host: string;
  /** Added to boot_ns to get wall-clock ns. */
  bootToRealtimeNs: bigint;
  /** Login name of a uid. */
  userName(uid: number): string;
  /** Longest command kept, in bytes; longer ones are cut and flagged. */
  maxCmdBytes: number;
}

/**
 * Builds the `bash` record: tags host and source; fields cmd, message, pid (a string, as in
 * DataKit), user and cmd_id (the command the line belongs to, see {@linkcode commandId}); `cgroup_id` (an integer, for the `container` transform) when the kernel
 * gave one; plus `truncated: true` and `cmd_length` (the full length in bytes) when the command
 * was cut.
 */
export function bashRecord(event: BashEvent, ctx: BashRecordContext): Record {
  // The kernel's own cut (at BASH_CMD_MAX) may have split the last character.
  const captured = event.cmd.length < event.cmdLen ? withoutPartialTail(event.cmd) : event.cmd;
  const kept = cutUtf8(captured, ctx.maxCmdBytes);
  const cmd = decoder.decode(kept);
  const time = event.bootNs + ctx.bootToRealtimeNs;
  const pid = String(event.pid);
  const user = ctx.userName(event.uid);
  const record: Record = {
    measurement: "bash",
    tags: { host: ctx.host, source: "bash" },
    fields: { cmd, message: bashMessage(time, pid, user, cmd), pid, user },
    time,
  };
  if (event.cmdBootNs) record.fields.cmd_id = commandId(event.pid, event.cmdBootNs);
  if (event.cgroupId) record.fields.cgroup_id = event.cgroupId;
  if (kept.length < event.cmdLen) {
    record.fields.truncated = true;
    record.fields.cmd_length = BigInt(event.cmdLen);
  }
  return record;
}

/** DataKit's one-line shape: ``<RFC3339> pid:`<pid>` user:`<user>` cmd:`<cmd>` ``. */
export function bashMessage(timeNs: bigint, pid: string, user: string, cmd: string): string {
  const iso = new Date(Number(timeNs / 1_000_000n)).toISOString();
  return `${iso} pid:\`${pid}\` user:\`${user}\` cmd:\`${cmd}\``;
}

/**
 * The side record of a command's process event (only `command_activity` reads them):
 * measurement `bash_process`, fields `event` (end, fork, exec, exit), `cmd_id`, `pid` (a
 * string, as in `bash`), `exit_code` (end: bash's `$?`, -1 unknown; exit: the process's
 * status) and `program` (exec: the program's name).
 */
export function bashProcessRecord(event: BashProcessEvent, ctx: BashRecordContext): Record {
  const record: Record = {
    measurement: "bash_process",
    tags: { host: ctx.host, source: "bash" },
    fields: {
      event: event.kind,
      cmd_id: commandId(event.shellPid, event.cmdBootNs),
      pid: String(event.pid),
    },
    time: event.bootNs + ctx.bootToRealtimeNs,
  };
  if (event.kind === "end" || event.kind === "exit") {
    record.fields.exit_code = BigInt(event.exitCode);
  }
  if (event.kind === "exec") record.fields.program = event.comm;
  return record;
}

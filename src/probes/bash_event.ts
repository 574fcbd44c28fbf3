/**
 * Decodes `struct bash_event` (bpf/bash.h) and turns it into a `bash` record. Pure: no kernel,
 * so it is tested on hand-built bytes. src/probes/layout_test.ts checks its layouts against
 * the compiled object's BTF, so the two cannot drift.
 */
import type { Record } from "../record.ts";
import { cStruct } from "./layout.ts";

/** Bytes of command text the kernel captures (BASH_CMD_MAX). */
export const BASH_CMD_MAX = 16384;

/** `struct bash_event` (bpf/bash.h): a header, then the command's bytes. */
export const BASH_EVENT = cStruct("bash_event", 16424, {
  boot_ns: [0, 8],
  cgroup_id: [8, 8],
  pid: [16, 4],
  uid: [20, 4],
  cmd_len: [24, 4],
  cmd_bytes: [28, 4],
  cmd: [32, BASH_CMD_MAX + 1],
});

/** `struct bash_settings` (bpf/bash.h): the `settings` rodata written before load. */
export const BASH_SETTINGS = cStruct("bash_settings", 8, {
  require_bash_comm: [0, 4],
  _pad: [4, 4],
});

/** One decoded event; `cmd` is a view into the ring: copy or decode it before the call returns. */
export interface BashEvent {
  bootNs: bigint;
  /** The bash's cgroup v2 id, read in its own context (0: unknown). */
  cgroupId: bigint;
  pid: number;
  uid: number;
  /** Full length of the line in bytes. */
  cmdLen: number;
  cmd: Uint8Array;
}

/** Thrown for a record whose size does not fit the layout (a corrupt or foreign record). */
export class DecodeError extends Error {
  override name = "DecodeError";
}

/** Decodes the event at `offset` (of `length` bytes) in `view`. */
export function decodeBashEvent(view: DataView, offset: number, length: number): BashEvent {
  const L = BASH_EVENT.offsets;
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
    bootNs: view.getBigUint64(offset + L.boot_ns, true),
    cgroupId: view.getBigUint64(offset + L.cgroup_id, true),
    pid: view.getUint32(offset + L.pid, true),
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
 * DataKit) and user; `cgroup_id` (an integer, for the `container` transform) when the kernel
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

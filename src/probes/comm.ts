/**
 * A task's name (`comm`) as every probe reports it in `process_name`. The kernel keeps the bytes
 * a process set (prctl, exec's file name): UTF-8 on any current system, at most 15 bytes and a
 * NUL (TASK_COMM_LEN), cut wherever byte 15 falls. Decoded as UTF-8 with replacement, so a
 * character cut at the end, or a byte that is not UTF-8, becomes U+FFFD instead of failing.
 */

/** TASK_COMM_LEN: the bytes of a `char comm[16]`, its NUL included. */
export const COMM_LEN = 16;

const utf8 = new TextDecoder("utf-8"); // not fatal: bad bytes become U+FFFD

/** The name in the NUL-padded `char[16]` at `at` of `bytes` (all 16 bytes when no NUL). */
export function decodeComm(bytes: Uint8Array, at = 0): string {
  const field = bytes.subarray(at, at + COMM_LEN);
  const end = field.indexOf(0);
  return utf8.decode(end < 0 ? field : field.subarray(0, end));
}

/** Names by pid, so a busy process's name is decoded once (checked against its bytes). */
const byPid = new Map<number, { bytes: Uint8Array; name: string }>();
/** Pids remembered at most; then the cache starts afresh (a few KiB). */
const PIDS_MAX = 1024;

/**
 * {@linkcode decodeComm} of `pid`'s comm, remembered: for paths that see the same process on
 * every message (dns). The bytes are compared, so a process that renamed itself or exec'd is
 * decoded again.
 */
export function decodeCommOf(pid: number, bytes: Uint8Array, at = 0): string {
  const cached = byPid.get(pid);
  if (cached !== undefined) {
    let same = true;
    for (let i = 0; i < COMM_LEN && same; i++) same = bytes[at + i] === cached.bytes[i];
    if (same) return cached.name;
  }
  const name = decodeComm(bytes, at);
  if (byPid.size >= PIDS_MAX) byPid.clear();
  byPid.set(pid, { bytes: bytes.slice(at, at + COMM_LEN), name });
  return name;
}

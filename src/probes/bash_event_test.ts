import assert from "node:assert/strict";
import {
  BASH_CMD_MAX,
  type BashEvent,
  bashProcessRecord,
  bashRecord,
  type BashRecordContext,
  cutUtf8,
  decodeBashEvent as decodeAnyBashEvent,
  DecodeError,
} from "./bash_event.ts";

const encoder = new TextEncoder();

/** Decodes an event that must be a line (what these fixtures write). */
function decodeBashEvent(view: DataView, offset: number, length: number): BashEvent {
  const event = decodeAnyBashEvent(view, offset, length);
  assert.equal(event.kind, "line");
  return event as BashEvent;
}
const fatal = new TextDecoder("utf-8", { fatal: true }); // throws on a split character

// Offsets written out from `struct bash_event` in bpf/bash.h, not taken from BASH_EVENT.offsets,
// so a wrong layout constant fails here.
const HEADER = 48;

interface Fixture {
  bootNs: bigint;
  cmdBootNs?: bigint;
  cgroupId?: bigint;
  pid: number;
  uid: number;
  cmdLen: number;
  cmdBytes: number;
  cmd: Uint8Array;
}

/**
 * A ring-like buffer: garbage (0xAA) everywhere, one `struct bash_event` written at `at`, and a
 * DataView that itself starts 64 bytes into the buffer (as a view on a mapped ring may).
 */
function ring(at: number, f: Fixture, size = 8192): DataView {
  const buffer = new ArrayBuffer(size);
  new Uint8Array(buffer).fill(0xaa);
  const view = new DataView(buffer, 64);
  view.setBigUint64(at + 0, f.bootNs, true);
  view.setBigUint64(at + 8, f.cmdBootNs ?? 0n, true);
  view.setUint32(at + 16, 0, true); // BASH_LINE
  view.setUint32(at + 20, f.pid, true);
  view.setBigUint64(at + 24, f.cgroupId ?? 0n, true);
  view.setUint32(at + 32, f.uid, true);
  view.setUint32(at + 36, f.cmdLen, true);
  view.setUint32(at + 40, f.cmdBytes, true);
  new Uint8Array(buffer, 64 + at + HEADER, f.cmd.length).set(f.cmd);
  return view;
}

Deno.test("decodeBashEvent() reads every field of an event at a non-zero offset in a larger view", () => {
  const cmd = encoder.encode("ls -l /tmp");
  const view = ring(136, {
    bootNs: 0x8000_0000_0000_0001n, // needs all 64 unsigned bits
    cgroupId: 0x9000_0000_0000_2a2an,
    pid: 4242,
    uid: 4_000_000_000, // above 2^31: must be read unsigned
    cmdLen: cmd.length,
    cmdBytes: cmd.length,
    cmd,
  });

  const event = decodeBashEvent(view, 136, HEADER + cmd.length);

  assert.equal(event.bootNs, 0x8000_0000_0000_0001n);
  assert.equal(event.cgroupId, 0x9000_0000_0000_2a2an);
  assert.equal(event.pid, 4242);
  assert.equal(event.uid, 4_000_000_000);
  assert.equal(event.cmdLen, cmd.length);
  assert.deepEqual([...event.cmd], [...cmd]); // exactly the command: no header, no trailing 0xAA
});

Deno.test("decodeBashEvent() accepts a record longer than its command and takes cmd_bytes of it", () => {
  const cmd = encoder.encode("pwd");
  const view = ring(8, {
    bootNs: 1n,
    pid: 1,
    uid: 0,
    cmdLen: 3,
    cmdBytes: 3,
    cmd,
  });

  // Ring records are padded to 8 bytes: the length may exceed header + cmd_bytes.
  const event = decodeBashEvent(view, 8, HEADER + 8);

  assert.equal(new TextDecoder().decode(event.cmd), "pwd");
});

Deno.test("decodeBashEvent() rejects a record shorter than its header with a DecodeError", () => {
  const view = ring(0, {
    bootNs: 1n,
    pid: 1,
    uid: 0,
    cmdLen: 0,
    cmdBytes: 0,
    cmd: new Uint8Array(),
  });

  assert.throws(() => decodeBashEvent(view, 0, HEADER - 1), (e) => {
    assert.ok(e instanceof DecodeError);
    assert.match(e.message, /47 bytes/);
    return true;
  });
  // The boundary itself is fine: a header and an empty command.
  assert.equal(decodeBashEvent(view, 0, HEADER).cmd.length, 0);
});

Deno.test("decodeBashEvent() rejects a cmd_bytes larger than the record with a DecodeError", () => {
  const cmd = encoder.encode("echo hi");
  const view = ring(16, { bootNs: 1n, pid: 1, uid: 0, cmdLen: 7, cmdBytes: 8, cmd });

  assert.throws(() => decodeBashEvent(view, 16, HEADER + 7), (e) => {
    assert.ok(e instanceof DecodeError);
    assert.match(e.message, /8 command bytes but carries 7/);
    return true;
  });
});

Deno.test("decodeBashEvent() rejects a cmd_bytes above BASH_CMD_MAX even when the record is long enough", () => {
  const length = HEADER + BASH_CMD_MAX + 8;
  const fixture = { bootNs: 1n, pid: 1, uid: 0, cmd: new Uint8Array() };
  const view = ring(
    0,
    { ...fixture, cmdLen: BASH_CMD_MAX + 1, cmdBytes: BASH_CMD_MAX + 1 },
    64 + length,
  );

  assert.throws(() => decodeBashEvent(view, 0, length), DecodeError);
  // The same record with exactly BASH_CMD_MAX bytes is fine.
  const full = ring(0, { ...fixture, cmdLen: BASH_CMD_MAX, cmdBytes: BASH_CMD_MAX }, 64 + length);
  assert.equal(decodeBashEvent(full, 0, length).cmd.length, BASH_CMD_MAX);
});

Deno.test("cutUtf8() keeps ASCII exact: the first max bytes, or all of a short input", () => {
  const bytes = encoder.encode("hello world");

  assert.equal(fatal.decode(cutUtf8(bytes, 5)), "hello");
  assert.equal(fatal.decode(cutUtf8(bytes, 11)), "hello world");
  assert.equal(fatal.decode(cutUtf8(bytes, 100)), "hello world");
  assert.equal(cutUtf8(bytes, 0).length, 0);
});

Deno.test("cutUtf8() never splits a 2-, 3- or 4-byte character", () => {
  // "a" then a 2-byte (é), 3-byte (世) and 4-byte (🎉) character, then "b".
  const text = "aé世🎉b";
  const bytes = encoder.encode(text);
  assert.equal(bytes.length, 1 + 2 + 3 + 4 + 1);

  for (let max = 0; max <= bytes.length + 1; max++) {
    // Expected: the longest prefix of whole characters that fits in max bytes.
    let expected = "";
    for (const ch of text) {
      if (encoder.encode(expected + ch).length > max) break;
      expected += ch;
    }
    assert.equal(fatal.decode(cutUtf8(bytes, max)), expected, `max ${max}`);
  }
});

Deno.test("cutUtf8() drops a character that straddles the cut rather than keep part of it", () => {
  assert.equal(fatal.decode(cutUtf8(encoder.encode("aé"), 2)), "a");
  assert.equal(fatal.decode(cutUtf8(encoder.encode("a世"), 3)), "a");
  assert.equal(fatal.decode(cutUtf8(encoder.encode("a🎉"), 4)), "a");
});

const CONTEXT: BashRecordContext = {
  host: "web-1",
  bootToRealtimeNs: 1_764_085_459_123_456_789n,
  userName: (uid) => uid === 1000 ? "alice" : `unknown-${uid}`,
  maxCmdBytes: BASH_CMD_MAX,
};

/** An event as the decoder gives it: `captured` is what the kernel copied, `cmdLen` the full length. */
function event(captured: string | Uint8Array, cmdLen?: number): BashEvent {
  const cmd = typeof captured === "string" ? encoder.encode(captured) : captured;
  return {
    kind: "line",
    bootNs: 5_000_000_000n,
    cmdBootNs: 4_000_000_000n, // a continuation line: its command began earlier
    cgroupId: 0n,
    pid: 4242,
    uid: 1000,
    cmdLen: cmdLen ?? cmd.length,
    cmd,
  };
}

Deno.test("bashRecord() builds the bash record with DataKit's tags, fields and message", () => {
  const record = bashRecord(event("ls -l"), CONTEXT);

  assert.deepEqual(record, {
    measurement: "bash",
    tags: { host: "web-1", source: "bash" },
    fields: {
      cmd: "ls -l",
      message: "2025-11-25T15:44:24.123Z pid:`4242` user:`alice` cmd:`ls -l`",
      pid: "4242",
      user: "alice",
      cmd_id: "4242-4000000000", // the bash's pid and its command's first line's boot ns
    },
    time: 1_764_085_464_123_456_789n, // boot_ns + offset, exact past 2^53
  });
  assert.equal(typeof record.fields.pid, "string");
  assert.equal(typeof record.time, "bigint");
});

Deno.test("bashRecord() carries the kernel's cgroup id as the integer field cgroup_id", () => {
  const record = bashRecord({ ...event("ls"), cgroupId: 12_345n }, CONTEXT);

  assert.equal(record.fields.cgroup_id, 12_345n);
  assert.equal(record.tags.cgroup_id, undefined); // a field, never a series dimension
});

Deno.test("bashRecord() names the user by the event's uid", () => {
  const record = bashRecord({ ...event("id"), uid: 0 }, {
    ...CONTEXT,
    userName: (uid) => uid === 0 ? "root" : "wrong",
  });

  assert.equal(record.fields.user, "root");
  assert.match(String(record.fields.message), / user:`root` /);
});

Deno.test("bashRecord() gives a non-truncated command neither truncated nor cmd_length", () => {
  const record = bashRecord(event("echo done"), CONTEXT);

  assert.equal("truncated" in record.fields, false);
  assert.equal("cmd_length" in record.fields, false);
});

Deno.test("bashRecord() cuts a command longer than maxCmdBytes at a character boundary and flags it", () => {
  // "echo " is 5 bytes, 世 and 界 3 each: 7 bytes ends inside 世.
  const record = bashRecord(event("echo 世界"), { ...CONTEXT, maxCmdBytes: 7 });

  assert.equal(record.fields.cmd, "echo ");
  assert.equal(record.fields.truncated, true);
  assert.equal(record.fields.cmd_length, 11n); // the full length in bytes, as an integer field
  assert.equal(
    record.fields.message,
    "2025-11-25T15:44:24.123Z pid:`4242` user:`alice` cmd:`echo `",
  );
});

Deno.test("bashRecord() flags a command the kernel already cut (cmd_len beyond the captured bytes)", () => {
  const record = bashRecord(event("x".repeat(100), 20_000), CONTEXT);

  assert.equal(record.fields.cmd, "x".repeat(100));
  assert.equal(record.fields.truncated, true);
  assert.equal(record.fields.cmd_length, 20_000n);
});

Deno.test("bashRecord() drops a character the kernel's cut split, instead of ending in U+FFFD", () => {
  // The kernel captured "echo " and the first two of 世's three bytes; the line goes on.
  const captured = encoder.encode("echo 世").subarray(0, 7);
  const record = bashRecord(event(captured, 11), CONTEXT);

  assert.equal(record.fields.cmd, "echo ");
  assert.equal(record.fields.truncated, true);
  assert.equal(record.fields.cmd_length, 11n);
});

Deno.test("bashRecord() keeps a complete last character of a kernel-cut command", () => {
  const captured = encoder.encode("echo 世🎉");
  const record = bashRecord(event(captured, captured.length + 50), CONTEXT);

  assert.equal(record.fields.cmd, "echo 世🎉");
  assert.equal(record.fields.truncated, true);
});

Deno.test("bashRecord() keeps non-ASCII commands intact", () => {
  const cmd = "echo héllo 世界 🎉";
  const record = bashRecord(event(cmd), CONTEXT);

  assert.equal(record.fields.cmd, cmd);
  assert.ok(String(record.fields.message).endsWith(` cmd:\`${cmd}\``));
  assert.equal("truncated" in record.fields, false);
});

/** A `struct bash_process_event` (48 bytes) at `at`, written out from bpf/bash.h. */
function processEvent(at: number, kind: number, comm = ""): DataView {
  const buffer = new ArrayBuffer(256);
  new Uint8Array(buffer).fill(0xaa);
  const view = new DataView(buffer);
  view.setBigUint64(at + 0, 7_000_000_000n, true);
  view.setBigUint64(at + 8, 4_000_000_000n, true);
  view.setUint32(at + 16, kind, true);
  view.setUint32(at + 20, 4242, true);
  view.setUint32(at + 24, 4300, true);
  view.setInt32(at + 28, kind === 1 ? -1 : 130, true);
  const name = new Uint8Array(buffer, at + 32, 16);
  name.fill(0);
  name.set(encoder.encode(comm));
  return view;
}

Deno.test("decodeBashEvent() reads a command's end and its processes' events", () => {
  const exec = decodeAnyBashEvent(processEvent(8, 3, "curl"), 8, 48);
  assert.deepEqual(exec, {
    kind: "exec",
    bootNs: 7_000_000_000n,
    cmdBootNs: 4_000_000_000n,
    shellPid: 4242,
    pid: 4300,
    exitCode: 130,
    comm: "curl",
  });
  const end = decodeAnyBashEvent(processEvent(0, 1), 0, 48);
  assert.equal(end.kind, "end");
  assert.equal((end as { exitCode: number }).exitCode, -1, "read signed: -1 is unknown");
  assert.throws(() => decodeAnyBashEvent(processEvent(0, 9), 0, 48), /unknown kind 9/);
  assert.throws(() => decodeAnyBashEvent(processEvent(0, 2), 0, 40), /40 bytes, not 48/);
});

Deno.test("bashProcessRecord() gives command_activity the command's id and what happened", () => {
  const exec = decodeAnyBashEvent(processEvent(0, 3, "curl"), 0, 48);
  assert.deepEqual(bashProcessRecord(exec as Parameters<typeof bashProcessRecord>[0], CONTEXT), {
    measurement: "bash_process",
    tags: { host: "web-1", source: "bash" },
    fields: { event: "exec", cmd_id: "4242-4000000000", pid: "4300", program: "curl" },
    time: 1_764_085_466_123_456_789n,
  });
  const end = decodeAnyBashEvent(processEvent(0, 1), 0, 48);
  const record = bashProcessRecord(end as Parameters<typeof bashProcessRecord>[0], CONTEXT);
  assert.equal(record.fields.exit_code, -1n);
});

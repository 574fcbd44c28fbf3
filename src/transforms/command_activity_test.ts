import assert from "node:assert/strict";
import { buildStage } from "../pipeline/testing.ts";
import type { Record } from "../record.ts";
import { commandActivityTransform } from "./command_activity.ts";

const T = 1_764_000_000_000_000_000n; // buildStage's clock starts here
const S = 1_000_000_000n;

function line(cmdId: string, cmd: string, time: bigint, pid = "100"): Record {
  return {
    measurement: "bash",
    tags: { host: "test-host", source: "bash", container_id: "c0ffee" },
    fields: { cmd, cmd_id: cmdId, pid, user: "alice", message: "..." },
    time,
  };
}

function event(
  cmdId: string,
  kind: string,
  pid: string,
  time: bigint,
  extra: Record["fields"] = {},
): Record {
  return {
    measurement: "bash_process",
    tags: { host: "test-host", source: "bash" },
    fields: { event: kind, cmd_id: cmdId, pid, ...extra },
    time,
  };
}

/** A netflow record; `cmdId`: the command the kernel stamped (undefined: none). */
function flow(
  cmdId: string | undefined,
  time: bigint,
  fields: Record["fields"],
  domain = "",
): Record {
  return {
    measurement: "netflow",
    tags: { host: "test-host", source: "netflow", direction: "outgoing", dst_domain: domain },
    fields: cmdId === undefined ? fields : { ...fields, cmd_id: cmdId },
    time,
  };
}

const build = (options: { [key: string]: unknown } = {}) =>
  buildStage(commandActivityTransform, { events_from: "bash", ...options });

Deno.test("command_activity reports a command once it ended and its grace passed", async () => {
  const { stage, emitted, clock } = await build({ grace: "5s" });
  const id = "100-42";
  stage.push(line(id, "ls / | wc -l | cat", T));
  for (const [pid, program] of [["101", "ls"], ["102", "wc"], ["103", "cat"]]) {
    stage.side!("events_from", event(id, "fork", pid, T + 1n));
    stage.side!("events_from", event(id, "exec", pid, T + 2n, { program }));
  }
  stage.push(flow(id, T + S, { bytes_read: 10n, bytes_written: 20n, tcp_established: 1n }));
  for (const pid of ["101", "102", "103"]) {
    stage.side!("events_from", event(id, "exit", pid, T + S, { exit_code: 0n }));
  }
  stage.side!("events_from", event(id, "end", "100", T + 2n * S, { exit_code: 3n }));
  // A flow of an exited process, polled later: still the command's within the grace.
  stage.push(flow(id, T + 4n * S, { bytes_read: 1n, bytes_written: 2n }, "example.com"));
  stage.push({
    measurement: "dnsflow",
    tags: { host: "test-host", direction: "outgoing", dst_domain: "example.com" },
    fields: { count: 2n, cmd_id: id },
    time: T + 4n * S,
  });
  stage.push(flow(undefined, T + 4n * S, { bytes_read: 1000n, bytes_written: 0n })); // no command
  clock.advance(T + 6n * S);
  assert.equal(emitted.length, 0, "not before the grace passed");
  clock.advance(T + 8n * S);
  assert.equal(emitted.length, 1);
  const [r] = emitted;
  assert.equal(r.measurement, "bash_activity");
  assert.deepEqual(r.tags, {
    host: "test-host",
    source: "bash",
    container_id: "c0ffee",
    user: "alice",
  });
  assert.equal(r.time, T + 2n * S, "stamped when the command ended");
  assert.deepEqual(r.fields, {
    cmd: "ls / | wc -l | cat",
    cmd_id: id,
    pid: "100",
    final: true,
    exit_code: 3n,
    duration: 2n * S,
    processes: 3n,
    programs: "ls,wc,cat",
    bytes_read: 11n,
    bytes_written: 22n,
    connections: 1n,
    connect_failures: 0n,
    dns_queries: 2n,
    domains: "example.com",
  });
});

Deno.test("command_activity joins PS2 lines and leaves other commands' traffic alone", async () => {
  const { stage, emitted, clock } = await build({ grace: "1s" });
  stage.push(line("100-1", "for i in 1 2; do", T));
  stage.push(line("100-1", "true; done", T + 1n));
  stage.push(line("200-5", "sleep 1", T, "200"));
  stage.side!("events_from", event("200-5", "fork", "201", T + 2n));
  stage.push(flow("200-5", T + 3n, { bytes_read: 5n, bytes_written: 0n }));
  stage.push(flow(undefined, T + 3n, { bytes_read: 7n, bytes_written: 0n })); // no command's
  stage.side!("events_from", event("100-1", "end", "100", T + S, { exit_code: 0n }));
  stage.side!("events_from", event("200-5", "exit", "201", T + S, { exit_code: 0n }));
  stage.side!("events_from", event("200-5", "end", "200", T + S, { exit_code: 0n }));
  clock.advance(T + 3n * S);
  const byId = new Map(emitted.map((r) => [r.fields.cmd_id, r]));
  assert.equal(byId.get("100-1")?.fields.cmd, "for i in 1 2; do\ntrue; done");
  assert.equal(byId.get("100-1")?.fields.bytes_read, 0n);
  assert.equal(byId.get("200-5")?.fields.bytes_read, 5n);
  assert.equal(emitted.length, 2);
});

Deno.test("command_activity: a background job reports deltas until its last process exits", async () => {
  const { stage, emitted, clock } = await build({ grace: "1s", every: "10s" });
  const id = "100-7";
  stage.push(line(id, "sleep 100 &", T));
  stage.side!("events_from", event(id, "fork", "101", T + 1n));
  stage.side!("events_from", event(id, "end", "100", T + 2n, { exit_code: 0n }));
  stage.push(flow(id, T + S / 2n, { bytes_read: 0n, bytes_written: 100n }));
  clock.advance(T + 2n * S);
  assert.equal(emitted.length, 1);
  assert.equal(emitted[0].fields.final, false);
  assert.equal(emitted[0].fields.bytes_written, 100n);
  assert.equal(emitted[0].fields.exit_code, 0n);
  stage.push(flow(id, T + 5n * S, { bytes_read: 0n, bytes_written: 50n }));
  clock.advance(T + 13n * S);
  assert.equal(emitted.length, 2);
  assert.equal(emitted[1].fields.final, false);
  assert.equal(emitted[1].fields.bytes_written, 50n, "a delta: no double counting");
  assert.equal(emitted[1].fields.exit_code, undefined, "exit code and duration once");
  stage.side!("events_from", event(id, "exit", "101", T + 14n * S, { exit_code: 0n }));
  clock.advance(T + 16n * S);
  assert.equal(emitted.length, 3);
  assert.equal(emitted[2].fields.final, true);
  const sum = emitted.reduce((n, r) => n + (r.fields.bytes_written as bigint), 0n);
  assert.equal(sum, 150n);
});

Deno.test("command_activity gives up on a command after max_age", async () => {
  const { stage, emitted, clock, counters } = await build({
    grace: "1s",
    every: "10s",
    max_age: "30s",
  });
  stage.push(line("100-9", "nohup daemon", T));
  stage.side!("events_from", event("100-9", "fork", "101", T + 1n));
  stage.side!("events_from", event("100-9", "end", "100", T + 2n, { exit_code: 0n }));
  clock.advance(T + 40n * S);
  assert.equal(emitted.at(-1)?.fields.final, true);
  stage.push(flow("100-9", T + 41n * S, { bytes_read: 0n, bytes_written: 1n }));
  clock.advance(T + 80n * S);
  assert.equal(emitted.filter((r) => r.fields.final === true).length, 1, "reported final once");
  assert.equal(counters.get("activity_unmatched", { stage: "command_activity" }), 1n);
});

Deno.test("command_activity: without end events a command ends when the next begins", async () => {
  const { stage, emitted, clock } = await build({ grace: "1s" });
  stage.push(line("100-1", "true", T));
  stage.push(line("100-2", "false", T + S));
  clock.advance(T + 3n * S);
  assert.equal(emitted.length, 1);
  assert.equal(emitted[0].fields.cmd_id, "100-1");
  assert.equal(emitted[0].fields.exit_code, -1n);
  assert.equal(emitted[0].fields.duration, S);
});

Deno.test("command_activity counts the commands beyond max_commands and reports at shutdown", async () => {
  const { stage, emitted, counters } = await build({ max_commands: 1 });
  stage.push(line("100-1", "true", T));
  stage.push(line("200-1", "true", T, "200"));
  assert.equal(counters.get("commands_dropped", { stage: "command_activity" }), 1n);
  await stage.flush("shutdown");
  assert.equal(emitted.length, 1, "the held command goes out at shutdown");
  assert.equal(emitted[0].fields.final, false, "it had not ended");
});

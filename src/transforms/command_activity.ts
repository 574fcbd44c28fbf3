/**
 * The `command_activity` transform: what each typed command did, one `bash_activity` record
 * per command, joined from the `bash` probe's records and the netflow and dnsflow records.
 *
 * ```yaml
 * transforms:
 *   activity:
 *     type: command_activity
 *     inputs: [bash_containers, netflow_containers, dns_containers]
 *     events_from: bash   # a side input: the bash probe's process events
 * ```
 *
 * - `bash` records (their `cmd_id`) start a command, and give it its text (PS2 continuation
 *   lines are joined with a newline), `pid`, `user` and tags (`host`, `container_id`, k8s).
 * - The bash probe's side records (`bash_process`: `event` end, fork, exec, exit) end it
 *   (`exit_code`: bash's `$?`; `duration`: from its first line to bash reading the next) and
 *   count its processes (`processes`, started) and programs (`programs`, distinct names).
 * - `netflow` and `dnsflow` records count to the command their `cmd_id` field names (the
 *   kernel stamps it from the bash probe's shared map: processes bash forks for a command
 *   inherit it; PROMPT_COMMAND and completion belong to none): `bytes_read`, `bytes_written`,
 *   `connections` (TCP handshakes), `connect_failures` (the netflow `tcp_connect_*` fields),
 *   `dns_queries` (its processes' requests: also those a DNS server of it answered, when the
 *   dns probe watches `sides: [incoming]`) and `domains` (names looked up or connected to). One
 *   that names a command already reported final, or never seen, is counted as
 *   `activity_unmatched` (raise `grace` when it grows).
 *
 * A command is reported `grace` after it ended (flows arrive up to a poll later), with
 * `final: true`, or `final: false` when processes of it still run (`sleep 100 &`, a daemon):
 * then, every `every`, a record with what they did since (deltas; `exit_code` and `duration`
 * only on the first record, so a window summing them counts each once) until the last one
 * exited (`final: true`) or `max_age` passed since the command began. At shutdown every
 * command is reported as it stands. Commands beyond `max_commands` are dropped and counted
 * (`commands_dropped`); the gauge `commands_tracked` says how many are held.
 */
import { TCP_FAILURES } from "../probes/netflow_fields.ts";
import type { Stage, StageDef } from "../pipeline/stage.ts";
import type { FieldValue, Record } from "../record.ts";
import { formatDuration } from "../units.ts";

/** Options of a `command_activity` transform. */
export interface CommandActivityConfig {
  /** The bash probe whose side records are its commands' process events. */
  events_from: string;
  /** How long after a command (or a process of it) ended its flows still count, in ms. */
  grace: number;
  /** How often a command whose processes outlived it reports what they did, in ms. */
  every: number;
  /** The longest a command is followed, from its start, in ms. */
  max_age: number;
  /** The most commands held at once. */
  max_commands: number;
}

/** The measurement of the bash probe's side records this stage reads. */
export const BASH_PROCESS = "bash_process";

/** The most names `programs` and `domains` list. */
const MAX_NAMES = 16;

const NS_PER_MS = 1_000_000n;

/** What one command did since its last report. */
interface Activity {
  processes: bigint;
  programs: Set<string>;
  bytesRead: bigint;
  bytesWritten: bigint;
  connections: bigint;
  connectFailures: bigint;
  dnsQueries: bigint;
  domains: Set<string>;
}

interface Command {
  id: string;
  startNs: bigint;
  /** From its bash record (undefined until it came). */
  cmd?: string;
  pid?: string;
  user?: string;
  tags: { [key: string]: string };
  endNs?: bigint;
  exitCode?: bigint;
  /** Its processes still running (the bash itself not included). */
  live: Set<string>;
  /** When its last process exited (or it ended with none). */
  quietSinceNs?: bigint;
  reported: boolean;
  lastReportNs: bigint;
  activity: Activity;
}

function emptyActivity(): Activity {
  return {
    processes: 0n,
    programs: new Set(),
    bytesRead: 0n,
    bytesWritten: 0n,
    connections: 0n,
    connectFailures: 0n,
    dnsQueries: 0n,
    domains: new Set(),
  };
}

/** Adds `name` to a set of at most MAX_NAMES. */
function addName(names: Set<string>, name: unknown): void {
  if (typeof name === "string" && name !== "" && names.size < MAX_NAMES) names.add(name);
}

const int = (v: FieldValue | undefined): bigint => typeof v === "bigint" ? v : 0n;

/** The tags a `bash_activity` record takes from its `bash` record. */
const KEPT_TAGS = ["host", "container_id", "k8s_namespace", "k8s_pod", "k8s_container"];

/** netflow's failed connects (not its resets): a command's `connect_failures`. */
const CONNECT_FAILURES = TCP_FAILURES.map(([field]) => field)
  .filter((field) => field.startsWith("tcp_connect_"));

/** `type: command_activity`: one `bash_activity` record per typed command. */
export const commandActivityTransform: StageDef<CommandActivityConfig> = {
  type: "command_activity",
  kind: "transform",
  describe:
    "Joins bash commands with their processes, flows and DNS queries: one bash_activity record per command.",
  schema: {
    events_from: {
      type: "stage",
      required: true,
      doc: "The bash probe whose process events (a side input) end commands and count processes.",
    },
    grace: {
      type: "duration",
      default: "15s",
      doc:
        "How long after a command, or a process of it, ended its flows still count (plus the inputs' poll).",
    },
    every: {
      type: "duration",
      default: "60s",
      doc: "How often a command whose processes outlived it reports what they did since.",
    },
    max_age: {
      type: "duration",
      default: "1h",
      doc: "The longest a command is followed, from its start: then it is reported final.",
    },
    max_commands: {
      type: "integer",
      default: 10_000,
      min: 1,
      doc: "The most commands held at once; more are dropped and counted (commands_dropped).",
    },
  },
  losses: [{
    counter: "commands_dropped",
    what: "commands not reported",
    why: "more commands at once than max_commands",
  }, {
    counter: "activity_unmatched",
    what: "flow or DNS records not joined",
    why: "their command was reported before they came: raise grace",
  }],
  build(config, ctx): Stage {
    // A flow record sums a poll: its process may have exited that long before it came.
    const grace = BigInt(config.grace + ctx.inputSpanMs) * NS_PER_MS;
    const every = BigInt(config.every) * NS_PER_MS;
    const maxAge = BigInt(config.max_age) * NS_PER_MS;
    const commands = new Map<string, Command>();
    const dropped = ctx.counters.handle("commands_dropped");
    const unmatched = ctx.counters.handle("activity_unmatched");
    const gauge = () => ctx.counters.set("commands_tracked", commands.size);
    gauge();

    const command = (id: string, timeNs: bigint): Command | undefined => {
      let c = commands.get(id);
      if (c) return c;
      if (commands.size >= config.max_commands) {
        dropped.inc();
        return undefined;
      }
      c = {
        id,
        startNs: timeNs,
        tags: {},
        live: new Set(),
        reported: false,
        lastReportNs: timeNs,
        activity: emptyActivity(),
      };
      commands.set(id, c);
      gauge();
      return c;
    };

    /** The command a flow record counts to: the one its cmd_id names, if still held. */
    const commandOfFlow = (record: Record): Command | undefined => {
      const id = record.fields.cmd_id;
      if (typeof id !== "string") return undefined; // in no typed command
      const c = commands.get(id);
      if (!c) unmatched.inc();
      return c;
    };

    /** Each bash's latest command: a bash without parse_command ends one when the next begins. */
    const latest = new Map<string, Command>();

    const onBash = (record: Record) => {
      const id = record.fields.cmd_id;
      if (typeof id !== "string") return;
      const shell = String(record.fields.pid ?? "");
      const previous = latest.get(shell);
      if (previous && previous.id !== id && previous.endNs === undefined) {
        previous.endNs = record.time; // its exit code stays unknown (-1)
        if (previous.live.size === 0) previous.quietSinceNs = record.time;
      }
      const c = command(id, record.time);
      if (!c) return;
      latest.set(shell, c);
      const line = String(record.fields.cmd ?? "");
      c.cmd = c.cmd === undefined ? line : `${c.cmd}\n${line}`;
      if (c.pid === undefined) {
        c.pid = String(record.fields.pid ?? "");
        c.user = String(record.fields.user ?? "");
        for (const key of KEPT_TAGS) {
          if (record.tags[key] !== undefined) c.tags[key] = record.tags[key];
        }
        c.startNs = record.time < c.startNs ? record.time : c.startNs;
      }
    };

    const onFlow = (record: Record) => {
      const c = commandOfFlow(record);
      if (!c) return;
      const a = c.activity, f = record.fields;
      if (record.measurement === "netflow") {
        a.bytesRead += int(f.bytes_read);
        a.bytesWritten += int(f.bytes_written);
        a.connections += int(f.tcp_established);
        for (const name of CONNECT_FAILURES) a.connectFailures += int(f[name]);
      } else {
        a.dnsQueries += int(f.count);
      }
      addName(a.domains, record.tags.dst_domain);
    };

    const report = (c: Command, nowNs: bigint, final: boolean) => {
      const a = c.activity;
      const fields: { [name: string]: FieldValue } = {
        cmd: c.cmd ?? "",
        cmd_id: c.id,
        pid: c.pid ?? c.id.split("-")[0],
        final,
        processes: a.processes,
        programs: [...a.programs].join(","),
        bytes_read: a.bytesRead,
        bytes_written: a.bytesWritten,
        connections: a.connections,
        connect_failures: a.connectFailures,
        dns_queries: a.dnsQueries,
        domains: [...a.domains].join(","),
      };
      if (!c.reported) {
        fields.exit_code = c.exitCode ?? -1n;
        if (c.endNs !== undefined) fields.duration = c.endNs - c.startNs;
      }
      const tags: { [key: string]: string } = { host: ctx.host, ...c.tags, source: "bash" };
      if (c.user) tags.user = c.user;
      ctx.emit({
        measurement: "bash_activity",
        tags,
        fields,
        time: c.reported ? nowNs : c.endNs ?? nowNs,
      });
      c.reported = true;
      c.lastReportNs = nowNs;
      c.activity = emptyActivity();
      if (final) forget(c);
    };

    const forget = (c: Command) => {
      commands.delete(c.id);
      if (c.pid !== undefined && latest.get(c.pid) === c) latest.delete(c.pid);
      gauge();
    };

    /** Reports what is due at `nowNs`. */
    const tick = (nowNs: bigint) => {
      for (const c of [...commands.values()]) {
        if (nowNs - c.startNs >= maxAge) {
          report(c, nowNs, true);
          continue;
        }
        if (c.endNs === undefined) continue;
        if (c.live.size === 0) {
          const quiet = c.quietSinceNs ?? c.endNs;
          if (nowNs - quiet >= grace) report(c, nowNs, true);
        } else if (!c.reported ? nowNs - c.endNs >= grace : nowNs - c.lastReportNs >= every) {
          report(c, nowNs, false);
        }
      }
    };

    const timer = ctx.clock.every(1000, tick);

    return {
      push(record: Record) {
        if (record.measurement === "bash") onBash(record);
        else if (record.measurement === "netflow" || record.measurement === "dnsflow") {
          onFlow(record);
        }
      },
      side(_key, record) {
        if (record.measurement !== BASH_PROCESS) return;
        const id = record.fields.cmd_id, pid = String(record.fields.pid ?? "");
        if (typeof id !== "string") return;
        const c = command(id, record.time);
        if (!c) return;
        switch (record.fields.event) {
          case "fork":
            c.activity.processes++;
            c.live.add(pid);
            break;
          case "exec":
            addName(c.activity.programs, record.fields.program);
            break;
          case "exit": {
            c.live.delete(pid);
            if (c.live.size === 0) c.quietSinceNs = record.time;
            break;
          }
          case "end": {
            c.endNs = record.time;
            c.exitCode = int(record.fields.exit_code);
            if (c.live.size === 0) c.quietSinceNs = record.time;
            break;
          }
        }
      },
      flush(reason) {
        // A reload keeps the commands; at shutdown each is reported as it stands.
        if (reason !== "shutdown") return;
        const now = ctx.clock.now();
        for (const c of [...commands.values()]) {
          report(c, now, c.endNs !== undefined && c.live.size === 0);
        }
      },
      close() {
        timer.cancel();
        commands.clear();
        latest.clear();
      },
    };
  },
  explain(config) {
    return {
      details: [
        `bash_activity per command from the side records of ${config.events_from}, ` +
        `reported ${formatDuration(config.grace)} (plus the inputs' poll) after it ends; ` +
        `commands outliving the prompt every ${formatDuration(config.every)}, ` +
        `for at most ${formatDuration(config.max_age)}`,
      ],
    };
  },
  example: { events_from: "bash", grace: "15s", every: "60s", max_age: "1h" },
  // It never reads ports or direction, and passes no flow on: netflow and dns may still fold
  // client ports in the kernel (pushdown.ts).
  tagsUsed: () => ["dst_domain", ...KEPT_TAGS],
  emitsOnlyOwnRecords: true,
};

/**
 * How the netflow poll's cost grows with open connections: the collector (netflow polling every
 * second, its own `collector` report every second) watches while `n` idle connections are
 * opened and held; from its reports, once the new sockets are absorbed, the mean poll time, the
 * collector's CPU per poll and its RSS.
 */
import { sleep } from "./child.ts";
import { Collector } from "./collector.ts";
import { holdIdleConnections } from "./idle_conns.ts";
import type { Tree } from "./tree.ts";

const PIPELINE = `version: 1
probes:
  netflow: { type: netflow, poll: 1s }
  self: { type: collector, every: 1s }
outputs:
  console: { type: stdout, inputs: [netflow, self], format: json }
`;

/** Reports to wait for once the connections are open, before measuring. */
const SETTLE_REPORTS = 3;

export interface ScalingResult {
  /** The checkout whose collector ran (`Tree.label`). */
  tree: string;
  connections: number;
  /** Sockets the probe follows in user space (both ends of each connection, and the rest). */
  trackedSockets: number;
  pollMs: number;
  cpuMsPerPoll: number;
  rssMiB: number;
  socketsFull: number;
  attachMs: number;
}

/** One `ebpf_collector` report: the netflow stage's counters and the process's figures. */
interface Report {
  polls: number;
  pollTimeUs: number;
  trackedSockets: number;
  socketsFull: number;
  cpuUs: number;
  rssBytes: number;
}

/** Reads the collector's reports from its stdout as it grows, each line once. */
class ReportReader {
  #at = 0;
  readonly #byTime = new Map<number, Partial<Report>>();

  constructor(readonly collector: Collector) {}

  /** The complete reports so far, oldest first. */
  read(): Report[] {
    const stdout = this.collector.child.stdout;
    const end = stdout.lastIndexOf("\n") + 1;
    for (const line of stdout.slice(this.#at, end).split("\n")) {
      if (line.includes('"ebpf_collector"')) this.#add(JSON.parse(line));
    }
    this.#at = Math.max(this.#at, end);
    return [...this.#byTime.values()].filter((r): r is Report =>
      r.polls !== undefined && r.cpuUs !== undefined
    );
  }

  // deno-lint-ignore no-explicit-any
  #add(r: any) {
    const report = this.#byTime.get(r.time) ?? {};
    this.#byTime.set(r.time, report);
    if (r.tags.stage === "netflow") {
      report.polls = r.fields.polls;
      report.pollTimeUs = r.fields.poll_time_us;
      report.trackedSockets = r.fields.tracked_tcp_sockets;
      report.socketsFull = r.fields.sockets_full;
    } else if (r.tags.stage === "_process") {
      report.cpuUs = r.fields.cpu_user_us + r.fields.cpu_system_us;
      report.rssBytes = r.fields.rss_bytes;
    }
  }

  /** Waits until there are `count` reports. */
  async waitFor(count: number): Promise<Report[]> {
    while (this.read().length < count) {
      if (this.collector.child.exited) {
        throw new Error(`the collector exited:\n${this.collector.child.stderr}`);
      }
      await sleep(100);
    }
    return this.read();
  }
}

/**
 * Opens `connections` idle connections under a running collector of `tree` and measures
 * `seconds` of polls.
 */
export async function measureScaling(
  connections: number,
  seconds: number,
  tree: Tree,
): Promise<ScalingResult> {
  await using collector = await Collector.start(tree.pipeline(PIPELINE), {
    readStdout: true,
    expectProbes: ["netflow"],
    tree,
  });
  await using holder = await holdIdleConnections(connections);
  const reader = new ReportReader(collector);
  const ready = reader.read().length;
  const first = (await reader.waitFor(ready + SETTLE_REPORTS)).at(-1)!;
  const last = (await reader.waitFor(ready + SETTLE_REPORTS + Math.max(seconds, 3))).at(-1)!;
  await holder.close();
  const polls = last.polls - first.polls;
  const summary = await collector.stop();
  return {
    tree: tree.label,
    connections,
    trackedSockets: last.trackedSockets,
    pollMs: (last.pollTimeUs - first.pollTimeUs) / polls / 1000,
    cpuMsPerPoll: (last.cpuUs - first.cpuUs) / polls / 1000,
    rssMiB: last.rssBytes / 2 ** 20,
    socketsFull: summary.get("sockets_full", "netflow"),
    attachMs: collector.attachMs,
  };
}

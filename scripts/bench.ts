/**
 * `deno task bench`: what the collector costs the machine it watches. Each workload runs with
 * the collector off and on, in pairs (off, on, off, on, ...), --pairs times; the on/off ratio of
 * each pair is summarised as a median and its spread (quartiles, min-max), next to its target.
 *
 * Workloads (`--only` takes these names): `iperf3` (TCP throughput, one stream, 127.0.0.1),
 * `udp` (a 64-byte UDP flood: iperf3 -u -l 64 -b 0), `short_tcp` (short TCP connections a
 * second), `dns` (queries a second against a local dnsmasq), `bash` (commands a second typed
 * into bash on a pty) and `scaling` (1k, 10k, 50k idle connections: netflow poll time, CPU per
 * poll, RSS).
 *
 * The collector is started as `deno task run` starts it, with the default pipeline.yaml (its
 * `dns` probe also watching the benchmark dnsmasq's port), stdout to /dev/null, and stopped
 * with SIGINT after each on run. For the on runs: its CPU (/proc/<pid>/stat), RSS at the end
 * of the run and peak (VmRSS, VmHWM) against an empty `deno run` with the same flags, the BPF
 * map memory it holds (memlock in fdinfo), records/s its probes emitted, events lost (the
 * counters of its exit summary) and its attach time. Then, unless --no-profile, one more on run
 * per workload with kernel.bpf_stats_enabled=1 gives each BPF program's runs/s and ns/run.
 *
 * Run as root (noise on this shared 2-core machine is about ±10% a run: keep --pairs ≥ 10):
 *
 *   deno task bench [--pairs 10] [--seconds 3] [--only iperf3,udp,...] [--json build/bench.json]
 *                   [--scale 1000,10000,50000] [--no-profile]
 */
import { parseArgs } from "node:util";
import { ROOT, runTaskArgs } from "../test/_run_command.ts";
import { bashCommands, startBash } from "./bench/bash_pty.ts";
import { enableBpfStats, type ProgramCost, programCosts } from "./bench/bpf_stats.ts";
import { freePort } from "../test/_server_process.ts";
import { Child, requireTool, sleep, StartError } from "./bench/child.ts";
import { Collector, defaultPipelineWithDnsPort, LOSS_COUNTERS } from "./bench/collector.ts";
import { dnsRate, startDnsmasq } from "./bench/dns.ts";
import { iperfThroughput, startIperfServer, udpFlood } from "./bench/iperf.ts";
import {
  bpfMapMemlock,
  clockTicksPerSecond,
  memoryKb,
  type Usage,
  withUsage,
} from "./bench/proc.ts";
import { measureScaling, type ScalingResult } from "./bench/scaling.ts";
import { shortConnections } from "./bench/short_tcp.ts";
import {
  PERF_DENO_FLAGS,
  perfAvailable,
  perfProfile,
  type PerfSummary,
} from "./bench/perf_profile.ts";
import { format, median, type Spread, spread, table } from "./bench/stats.ts";
import type { Measurement } from "./bench/workload.ts";

/** Quiet time before each measured run, so one run's tail (or the collector's start) is not in the next. */
const SETTLE_MS = 1000;
/** The probes whose records_out count as events the collector saw. */
const PROBES = ["bash", "netflow", "dns"];
const MiB = 1024;

interface Workload {
  id: string;
  name: string;
  unit: string;
  digits: number;
  /** The lowest acceptable median on/off ratio. */
  target?: number;
  run(seconds: number): Promise<Measurement>;
}

/** What one on run saw of the collector. */
interface OnRun extends Usage {
  attachMs: number;
  probeAttachMs: { [probe: string]: number };
  mapBytes: number;
  recordsPerSecond: number;
  lost: { [counter: string]: number };
}

interface WorkloadResult {
  workload: Workload;
  off: number[];
  on: number[];
  ratios: number[];
  onRuns: OnRun[];
  profile?: {
    eventsPerSecond: number;
    cpuPercent: number;
    programs: ProgramCost[];
    /** Where the collector's CPU went during the workload (perf), if perf is installed. */
    cpu?: PerfSummary;
  };
}

function options() {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      pairs: { type: "string", default: "10" },
      seconds: { type: "string", default: "3" },
      only: { type: "string" },
      json: { type: "string", default: "build/bench.json" },
      scale: { type: "string", default: "1000,10000,50000" },
      "no-profile": { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  });
  const pairs = Number(values.pairs), seconds = Number(values.seconds);
  if (!Number.isInteger(pairs) || pairs < 1) throw new Error("--pairs: a whole number >= 1");
  if (!(seconds >= 1)) throw new Error("--seconds: a number >= 1");
  const scale = values.scale.split(",").map(Number);
  if (scale.some((n) => !Number.isInteger(n) || n < 1 || n > 200_000)) {
    throw new Error("--scale: connection counts from 1 to 200000, comma-separated");
  }
  return {
    help: values.help,
    pairs,
    seconds,
    only: values.only?.split(","),
    json: values.json,
    scale,
    profile: !values["no-profile"],
  };
}

/** An empty `deno run` with the collector's flags: its RSS after a second, and its peak. */
async function emptyDenoKb(): Promise<{ rss: number; hwm: number }> {
  const script = Deno.makeTempFileSync({ dir: `${ROOT}build/tmp`, suffix: ".ts" });
  Deno.writeTextFileSync(script, "setTimeout(() => {}, 1500);\n");
  try {
    const flags = runTaskArgs().slice(0, -1);
    await using child = new Child(Deno.execPath(), [...flags, script], { discardStdout: true });
    await sleep(1000);
    return memoryKb(child.pid);
  } finally {
    Deno.removeSync(script);
  }
}

async function main(): Promise<number> {
  const opts = options();
  if (opts.help) {
    console.log(
      "usage (as root): deno task bench [--pairs N] [--seconds S] [--only LIST] [--json FILE]" +
        " [--scale N,N,...] [--no-profile]",
    );
    return 0;
  }
  if (Deno.uid() !== 0) throw new Error("run as root: the collector attaches BPF programs");
  await requireTool("iperf3", ["--version"], "apt-get install -y iperf3");
  await requireTool("python3", ["--version"], "apt-get install -y python3");
  await requireTool("dnsmasq", ["--version"], "apt-get install -y dnsmasq-base");
  await requireTool("tmux", ["-V"], "apt-get install -y tmux");
  await requireTool("bpftool", ["version"], "apt-get install -y bpftool");
  const ticksPerSecond = await clockTicksPerSecond();
  Deno.mkdirSync(`${ROOT}build/tmp`, { recursive: true });

  await using stack = new AsyncDisposableStack();
  // Ctrl-C or SIGTERM would otherwise leave the servers, tmux and a collector running.
  const interrupted = () => {
    void Promise.allSettled([Collector.stopAll(), stack.disposeAsync()]).then(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", interrupted);
  Deno.addSignalListener("SIGTERM", interrupted);
  const iperf = await startIperfServer();
  stack.use(iperf.server);
  const dnsPort = freePort();
  stack.use(await startDnsmasq(dnsPort));
  const bash = stack.use(await startBash());
  const pipeline = defaultPipelineWithDnsPort(dnsPort);

  const all: Workload[] = [
    {
      id: "iperf3",
      name: "iperf3 TCP throughput",
      unit: "Gbit/s",
      digits: 2,
      target: 0.99,
      run: (s) => iperfThroughput(iperf.port, s),
    },
    {
      id: "udp",
      name: "UDP 64 B flood received",
      unit: "dgram/s",
      digits: 0,
      target: 0.90,
      run: (s) => udpFlood(iperf.port, s),
    },
    {
      id: "short_tcp",
      name: "short TCP connections",
      unit: "conn/s",
      digits: 0,
      target: 0.97,
      run: shortConnections,
    },
    {
      id: "dns",
      name: "DNS queries (dnsmasq)",
      unit: "query/s",
      digits: 0,
      target: 0.98,
      run: (s) => dnsRate(dnsPort, s),
    },
    {
      id: "bash",
      name: "bash commands on a pty",
      unit: "cmd/s",
      digits: 0,
      run: (s) => bashCommands(bash, s),
    },
  ];
  const selected = (id: string) => !opts.only || opts.only.includes(id);
  const unknown = opts.only?.filter((id) => id !== "scaling" && !all.some((w) => w.id === id));
  if (unknown?.length) throw new Error(`--only: unknown workload(s) ${unknown.join(", ")}`);
  const results: WorkloadResult[] = all.filter((w) => selected(w.id)).map((workload) => ({
    workload,
    off: [],
    on: [],
    ratios: [],
    onRuns: [],
  }));

  const kernel = Deno.readTextFileSync("/proc/sys/kernel/osrelease").trim();
  const load = Deno.loadavg().map((l) => l.toFixed(2)).join(" ");
  console.log(
    `bench: ${opts.pairs} pair(s) of ${opts.seconds} s runs, ${navigator.hardwareConcurrency} ` +
      `CPUs, load ${load}, kernel ${kernel}, deno ${Deno.version.deno}`,
  );
  const emptyDeno = await emptyDenoKb();
  console.log(
    `empty deno run: RSS ${(emptyDeno.rss / MiB).toFixed(1)} MiB (peak ${
      (emptyDeno.hwm / MiB).toFixed(1)
    })`,
  );

  for (let pair = 1; pair <= opts.pairs; pair++) {
    for (const r of results) {
      const w = r.workload;
      await sleep(SETTLE_MS);
      const off = await w.run(opts.seconds);
      await using collector = await Collector.start(pipeline, { expectProbes: PROBES });
      await sleep(SETTLE_MS);
      const [on, used] = await withUsage(collector.pid, ticksPerSecond, () => w.run(opts.seconds));
      const mapBytes = bpfMapMemlock(collector.pid);
      const summary = await collector.stop();
      const lost = Object.fromEntries(LOSS_COUNTERS.map((c) => [c, summary.get(c)]));
      const records = PROBES.reduce((sum, p) => sum + summary.get("records_out", p), 0);
      r.off.push(off.value);
      r.on.push(on.value);
      r.ratios.push(on.value / off.value);
      r.onRuns.push({
        ...used,
        attachMs: collector.attachMs,
        probeAttachMs: collector.probeAttachMs,
        mapBytes,
        recordsPerSecond: records / opts.seconds,
        lost,
      });
      const lostText = Object.entries(lost).filter(([, n]) => n).map(([c, n]) => `${c}=${n}`);
      console.log(
        `  pair ${pair} ${w.id}: off ${format(off.value, w.digits)}, on ${
          format(on.value, w.digits)
        } ${w.unit} (${(on.value / off.value).toFixed(3)}); collector ${
          used.cpuPercent.toFixed(1)
        }% CPU, ${(used.rssKb / MiB).toFixed(0)} MiB, attach ${collector.attachMs} ms` +
          (lostText.length ? `, LOST ${lostText.join(" ")}` : "") +
          (on.note ? ` (on: ${on.note})` : ""),
      );
    }
  }

  if (opts.profile) {
    using _stats = stack.use(enableBpfStats()); // the stack: also when interrupted
    const perf = await perfAvailable();
    if (!perf) console.log("perf not found (apt-get install linux-perf): no CPU profile");
    for (const r of results) {
      await sleep(SETTLE_MS);
      await using collector = await Collector.start(pipeline, {
        denoFlags: perf ? PERF_DENO_FLAGS : [],
        expectProbes: PROBES,
      });
      await sleep(SETTLE_MS);
      const run = () =>
        withUsage(collector.pid, ticksPerSecond, () => r.workload.run(opts.seconds));
      const profiled = (): Promise<[[Measurement, Usage], PerfSummary | undefined]> =>
        perf ? perfProfile(collector.pid, r.workload.id, run) : run().then((u) => [u, undefined]);
      const [[[, used], cpu], programs] = await programCosts(collector.pid, profiled);
      await collector.stop();
      r.profile = {
        eventsPerSecond: programs.reduce((sum, p) => sum + p.runsPerSecond, 0),
        cpuPercent: used.cpuPercent,
        programs,
        cpu,
      };
    }
  }

  const scaling: ScalingResult[] = [];
  if (selected("scaling")) {
    for (const n of opts.scale) {
      const s = await measureScaling(n, Math.max(opts.seconds, 5));
      console.log(
        `  scaling ${n} connections: poll ${s.pollMs.toFixed(1)} ms, CPU ${
          s.cpuMsPerPoll.toFixed(1)
        } ms/poll, RSS ${s.rssMiB.toFixed(0)} MiB`,
      );
      scaling.push(s);
    }
  }

  report(results, scaling, emptyDeno, opts.pairs);
  const json = {
    date: new Date().toISOString(),
    load_at_start: load,
    load_at_end: Deno.loadavg().map((l) => l.toFixed(2)).join(" "),
    cpus: navigator.hardwareConcurrency,
    kernel,
    deno: Deno.version.deno,
    pairs: opts.pairs,
    seconds: opts.seconds,
    empty_deno_kib: emptyDeno,
    workloads: results.map((r) => ({
      id: r.workload.id,
      name: r.workload.name,
      unit: r.workload.unit,
      target: r.workload.target,
      off: r.off,
      on: r.on,
      ratio: spread(r.ratios),
      collector: {
        cpu_percent: spread(r.onRuns.map((u) => u.cpuPercent)),
        rss_kib: spread(r.onRuns.map((u) => u.rssKb)),
        peak_rss_kib: Math.max(...r.onRuns.map((u) => u.hwmKb)),
        bpf_map_bytes: median(r.onRuns.map((u) => u.mapBytes)),
        attach_ms: spread(r.onRuns.map((u) => u.attachMs)),
        probe_attach_ms: Object.fromEntries(
          Object.keys(r.onRuns[0]?.probeAttachMs ?? {}).map((
            p,
          ) => [p, median(r.onRuns.map((u) => u.probeAttachMs[p]))]),
        ),
        records_per_second: median(r.onRuns.map((u) => u.recordsPerSecond)),
        lost: sumLost(r.onRuns),
      },
      profile: r.profile,
    })),
    scaling,
  };
  const path = opts.json.startsWith("/") ? opts.json : `${ROOT}${opts.json}`;
  Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  Deno.writeTextFileSync(path, JSON.stringify(json, null, 2) + "\n");
  console.log(`\nwritten: ${opts.json}`);
  return 0;
}

function sumLost(runs: OnRun[]): { [counter: string]: number } {
  return Object.fromEntries(
    LOSS_COUNTERS.map((c) => [c, runs.reduce((sum, r) => sum + r.lost[c], 0)]),
  );
}

function ratioText(s: Spread): string {
  return `${s.median.toFixed(3)} [${s.q1.toFixed(3)}-${s.q3.toFixed(3)}] (${s.min.toFixed(3)}-${
    s.max.toFixed(3)
  })`;
}

const passFail = (ok: boolean) => ok ? "pass" : "FAIL";

/** Prints the tables: ratios against targets, the collector's use, BPF costs, scaling. */
function report(
  results: WorkloadResult[],
  scaling: ScalingResult[],
  emptyDeno: { rss: number; hwm: number },
  pairs: number,
): void {
  console.log(`\non/off, median [quartiles] (min-max) of ${pairs} pair(s):\n`);
  console.log(table([
    ["workload", "off (median)", "on (median)", "on/off", "target", ""],
    ...results.map((r) => {
      const w = r.workload, ratio = spread(r.ratios);
      return [
        `${w.name} (${w.unit})`,
        format(median(r.off), w.digits),
        format(median(r.on), w.digits),
        ratioText(ratio),
        w.target ? `≥ ${w.target.toFixed(2)}` : "-",
        w.target ? passFail(ratio.median >= w.target) : "",
      ];
    }),
  ]));

  console.log("\nthe collector during the on runs (medians; peak RSS: the highest VmHWM):\n");
  console.log(table([
    ["workload", "CPU %", "RSS MiB", "peak MiB", "maps MiB", "attach ms", "records/s", "lost"],
    ...results.map((r) => {
      const runs = r.onRuns, lost = sumLost(runs);
      const lostText = Object.entries(lost).filter(([, n]) => n).map(([c, n]) => `${c}=${n}`);
      return [
        r.workload.name,
        median(runs.map((u) => u.cpuPercent)).toFixed(1),
        (median(runs.map((u) => u.rssKb)) / MiB).toFixed(1),
        (Math.max(...runs.map((u) => u.hwmKb)) / MiB).toFixed(1),
        (median(runs.map((u) => u.mapBytes)) / 2 ** 20).toFixed(1),
        median(runs.map((u) => u.attachMs)).toFixed(0),
        format(median(runs.map((u) => u.recordsPerSecond))),
        lostText.join(" ") || "0",
      ];
    }),
  ]));

  const profiled = results.filter((r) => r.profile);
  for (const r of profiled) {
    const p = r.profile!;
    console.log(
      `\nBPF programs during ${r.workload.name} (bpf_stats): ${
        format(p.eventsPerSecond)
      } runs/s in all, collector ${p.cpuPercent.toFixed(1)}% CPU`,
    );
    console.log(table([
      ["program", "runs/s", "ns/run", "% of a core"],
      ...p.programs.slice(0, 6).map((c) => [
        c.name,
        format(c.runsPerSecond),
        format(c.nsPerRun),
        c.cpuPercent.toFixed(2),
      ]),
    ]));
    if (p.cpu) {
      console.log(`the collector's CPU (perf, ${p.cpu.samples} samples), by function and callees:`);
      console.log(table([
        ["function", "% total", "% self"],
        ...p.cpu.byTotal.slice(0, 10).map((f) => [
          f.where,
          f.totalPercent.toFixed(1),
          f.selfPercent.toFixed(1),
        ]),
      ]));
    }
  }

  if (scaling.length) {
    console.log("\nnetflow poll (every 1 s) with idle connections held open:\n");
    console.log(table([
      [
        "connections",
        "sockets tracked",
        "poll ms",
        "CPU ms/poll",
        "RSS MiB",
        "sockets_full",
        "attach ms",
      ],
      ...scaling.map((s) => [
        format(s.connections),
        format(s.trackedSockets),
        s.pollMs.toFixed(2),
        s.cpuMsPerPoll.toFixed(2),
        s.rssMiB.toFixed(1),
        format(s.socketsFull),
        format(s.attachMs),
      ]),
    ]));
  }

  const onRuns = results.flatMap((r) => r.onRuns);
  if (onRuns.length === 0) return;
  const steadyMiB = Math.max(...results.map((r) => median(r.onRuns.map((u) => u.rssKb)))) / MiB;
  const budgetMiB = emptyDeno.rss / MiB + 30;
  const attach = median(onRuns.map((u) => u.attachMs));
  const lostTotal = Object.values(sumLost(onRuns)).reduce((a, b) => a + b, 0);
  const peakEvents = Math.max(0, ...profiled.map((r) => r.profile!.eventsPerSecond));
  console.log("\ntargets:\n");
  console.log(table([
    ["target", "measured", ""],
    [
      "0 lost at 200k events/s",
      `${lostTotal} lost; ${profiled.length ? format(peakEvents) : "?"} BPF runs/s at most`,
      passFail(lostTotal === 0 && peakEvents >= 200_000),
    ],
    [
      "RSS ≤ empty deno + 30 MiB",
      `${steadyMiB.toFixed(1)} ≤ ${budgetMiB.toFixed(1)} MiB (highest median)`,
      passFail(steadyMiB <= budgetMiB),
    ],
    ["attach ≤ 500 ms", `${attach.toFixed(0)} ms (median)`, passFail(attach <= 500)],
  ]));
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    if (e instanceof StartError) {
      console.error(`${e.message}; its stderr, exactly:\n${e.stderr}`);
    } else {
      console.error(`bench: ${e instanceof Error ? e.message : e}`);
    }
    Deno.exit(1);
  }
}

/**
 * `deno task bench`: what the collector costs the machine it watches. Each workload runs with
 * the collector off and on, in pairs (off, on, off, on, ...), --pairs times; the on/off ratio of
 * each pair is summarised as a median and its spread (quartiles, min-max), next to its target.
 *
 * Workloads (`--only` takes these names): `iperf3` (TCP throughput, one stream, 127.0.0.1),
 * `udp` (a 64-byte UDP flood: iperf3 -u -l 64 -b 0; it overflows its receiver's buffer, so
 * netdrop's on_drop runs once per dropped datagram: its ns/run in the bpf_stats table is the
 * BPF cost of a drop, and the note says how many there were), `short_tcp` (short TCP connections a
 * second), `dns` (queries a second against a local dnsmasq), `bash` (commands a second typed
 * into bash on a pty), `scaling` (1k, 10k, 50k idle connections: netflow poll time, CPU per
 * poll, RSS) and `memory` (where the collector's RSS above an empty `deno run` goes).
 *
 * The collector is started as `deno task run` starts it, with the default pipeline.yaml (its
 * `dns` probe also watching the benchmark dnsmasq's port), stdout to /dev/null, and stopped
 * with SIGINT after each on run. For the on runs: its CPU (/proc/<pid>/stat) and that CPU per
 * workload event, RSS at the end of the run and peak (VmRSS, VmHWM) against an empty `deno run`
 * with the same flags, the BPF map memory it holds (memlock in fdinfo), records/s its probes
 * emitted, events lost (the counters of its exit summary) and its attach time. Then, unless
 * --no-profile, --profile-runs more on runs per workload with kernel.bpf_stats_enabled=1 give
 * each BPF program's runs/s and ns/run, and the CPU a workload event costs: the run time of all
 * the collector's BPF programs, and its utime+stime, each divided by the workload's events
 * (datagrams received, connections, answered queries, commands, MiB for iperf3). The first of
 * them also runs perf on the collector, if installed.
 *
 * Variants, each an on run beside every off run (their order turns each pair):
 * - `--probes`: besides all of them, each kernel probe of the pipeline alone, with what the
 *   pipeline puts after it (its transforms, windows and the stdout output; a stage that needs
 *   another probe, like dns_domain's answers, left out): scripts/bench/probe_alone.ts. The
 *   memory breakdown then also reads the collector with no BPF probe and with each alone.
 * - `--collector-root DIR`: the collector of another checkout of this project (a worktree of an
 *   older commit, built: `deno install && deno task build`), with that tree's own deno.json task,
 *   pipeline.yaml and BPF objects, instead of this one's.
 * - `--compare DIR`: that tree's collector as well (off, on, on DIR, off, on DIR, on, ...):
 *   both ratios side by side, and scaling and memory for each tree.
 *
 * Writes the figures as JSON (--json; its shape: scripts/bench/results.ts) and a chart beside
 * it (--svg, build/bench.svg by default: on/off per workload with its spread and target, poll
 * time against open connections, CPU per event, memory by kind); scripts/bench_chart.ts draws it
 * again from a saved JSON.
 *
 * Run as root (noise on this shared 2-core machine is about ±10% a run: keep --pairs ≥ 10):
 *
 *   deno task bench [--pairs 10] [--seconds 3] [--only iperf3,udp,...] [--json build/bench.json]
 *                   [--svg build/bench.svg] [--scale 1000,10000,50000] [--no-profile]
 *                   [--profile-runs 1] [--probes] [--collector-root DIR | --compare DIR]
 */
import { parseArgs } from "node:util";
import { parse } from "yaml";
import { REGISTRY } from "../src/pipeline/registry.ts";
import { bashCommands, startBash } from "./bench/bash_pty.ts";
import { enableBpfStats, programCosts } from "./bench/bpf_stats.ts";
import { renderChart } from "./bench/chart.ts";
import { ROOT } from "../test/_run_command.ts";
import { freePort } from "../test/_server_process.ts";
import { requireTool, sleep, StartError } from "./bench/child.ts";
import { Collector, LOSS_COUNTERS } from "./bench/collector.ts";
import { dnsQueries, dnsRate, startDnsmasq } from "./bench/dns.ts";
import { iperfThroughput, startIperfServer, udpFlood } from "./bench/iperf.ts";
import { memoryStages, waitingDeno } from "./bench/memory.ts";
import { probeAlone } from "./bench/probe_alone.ts";
import {
  bpfMapMemlock,
  clockTicksPerSecond,
  memoryKb,
  type Usage,
  withUsage,
} from "./bench/proc.ts";
import {
  PERF_DENO_FLAGS,
  perfAvailable,
  perfProfile,
  type PerfSummary,
} from "./bench/perf_profile.ts";
import { report } from "./bench/report.ts";
import type {
  BenchJson,
  CollectorJson,
  CostTarget,
  OnRun,
  ProfileJson,
  TreeJson,
  VariantJson,
} from "./bench/results.ts";
import { measureScaling, type ScalingResult } from "./bench/scaling.ts";
import { shortConnections } from "./bench/short_tcp.ts";
import { format, median, spread } from "./bench/stats.ts";
import { Tree, withDnsPort } from "./bench/tree.ts";
import type { Measurement } from "./bench/workload.ts";

/** Quiet time before each measured run, so one run's tail (or the collector's start) is not in the next. */
const SETTLE_MS = 1000;
/**
 * The kernel probes of a pipeline (a probe type with a BPF object): the probes that must attach,
 * whose records_out count as events the collector saw, and which --probes runs alone. Read from
 * each tree's own pipeline, so an older tree (--compare) is held to the probes it has.
 */
function kernelProbesOf(text: string): string[] {
  const probes = parse(text)?.probes ?? {};
  return Object.entries(probes).filter(([, stage]) =>
    REGISTRY.probes.get((stage as { type?: string })?.type ?? "")?.bpfObject !== undefined
  ).map(([name]) => name);
}
/** Light load for the memory breakdown: DNS queries a second (every probe's path, few records). */
const LIGHT_DNS_RATE = 200;
/** The runtime with no kernel probe (--probes' memory stage): only the collector's self-report. */
const SELF_ONLY = `version: 1
probes:
  self: { type: collector }
outputs:
  console: { type: stdout, inputs: [self], format: json }
`;
const MiB = 1024;

interface Workload {
  id: string;
  name: string;
  unit: string;
  digits: number;
  /** The lowest acceptable median on/off ratio. */
  target?: number;
  /** What `Measurement.events` counts. */
  event: string;
  /** Issue 17's target for the CPU an event costs, where it set one. */
  costTarget?: CostTarget;
  run(seconds: number): Promise<Measurement>;
}

/** One way of running the collector on the on runs. */
interface Variant {
  id: string;
  label: string;
  tree: Tree;
  /** The probe run alone, or every probe. */
  probe?: string;
  /** The kernel probes it runs: the one alone, or every one of its tree's pipeline. */
  probes: string[];
  /** The pipeline file, where the tree's collector may read it. */
  pipeline: string;
}

interface VariantResult {
  variant: Variant;
  on: number[];
  ratios: number[];
  onRuns: OnRun[];
  profile?: ProfileJson;
}

interface WorkloadResult {
  workload: Workload;
  off: number[];
  variants: VariantResult[];
}

function options() {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      pairs: { type: "string", default: "10" },
      seconds: { type: "string", default: "3" },
      only: { type: "string" },
      json: { type: "string", default: "build/bench.json" },
      svg: { type: "string" },
      scale: { type: "string", default: "1000,10000,50000" },
      "no-profile": { type: "boolean", default: false },
      "profile-runs": { type: "string", default: "1" },
      probes: { type: "boolean", default: false },
      "collector-root": { type: "string" },
      compare: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const pairs = Number(values.pairs), seconds = Number(values.seconds);
  const profileRuns = Number(values["profile-runs"]);
  if (!Number.isInteger(pairs) || pairs < 1) throw new Error("--pairs: a whole number >= 1");
  if (!(seconds >= 1)) throw new Error("--seconds: a number >= 1");
  if (!Number.isInteger(profileRuns) || profileRuns < 1) {
    throw new Error("--profile-runs: a whole number >= 1");
  }
  const scale = values.scale.split(",").map(Number);
  if (scale.some((n) => !Number.isInteger(n) || n < 1 || n > 200_000)) {
    throw new Error("--scale: connection counts from 1 to 200000, comma-separated");
  }
  if (!values.json.endsWith(".json")) throw new Error("--json: a file name ending in .json");
  return {
    help: values.help,
    pairs,
    seconds,
    only: values.only?.split(","),
    json: values.json,
    svg: values.svg ?? values.json.replace(/\.json$/, ".svg"),
    scale,
    profile: !values["no-profile"],
    profileRuns,
    probes: values.probes,
    collectorRoot: values["collector-root"],
    compare: values.compare,
  };
}

const USAGE =
  `usage (as root): deno task bench [--pairs N] [--seconds S] [--only LIST] [--json FILE]
                       [--svg FILE] [--scale N,N,...] [--no-profile] [--profile-runs N]
                       [--probes] [--collector-root DIR | --compare DIR]

  --only LIST            iperf3,udp,short_tcp,dns,bash,scaling,memory (default: all)
  --json FILE            the figures (default build/bench.json); the chart goes beside it
  --svg FILE             the chart (default: the JSON's name with .svg)
  --profile-runs N       bpf_stats runs per workload and variant (CPU per event: their medians)
  --probes               also run each kernel probe alone (the pipeline's own) with what the
                         pipeline puts after it, beside the all-probes run (and in memory)
  --collector-root DIR   run the collector of another checkout (built) instead of this one
  --compare DIR          run this one's and DIR's collector against the same off runs`;

/** An empty `deno run` with the collector's flags of `tree`: its RSS after a second, and its peak. */
async function emptyDenoKb(tree: Tree): Promise<{ rss: number; hwm: number }> {
  await using child = waitingDeno(tree, "");
  await sleep(1000);
  return memoryKb(child.pid);
}

/** The on runs of each tree: all probes, and each alone with --probes. */
function variantsFor(trees: Tree[], dnsPort: number, probes: boolean): Variant[] {
  const variants: Variant[] = [];
  for (const tree of trees) {
    const text = withDnsPort(tree.defaultPipelineText(), dnsPort);
    const suffix = trees.length > 1 ? ` ${tree.label}` : "";
    variants.push({
      id: trees.length > 1 ? `on@${tree.label}` : "on",
      label: `on${suffix}`,
      tree,
      probes: kernelProbesOf(text),
      pipeline: tree.pipeline(text),
    });
    if (!probes) continue;
    for (const probe of kernelProbesOf(text)) {
      variants.push({
        id: `${probe}${trees.length > 1 ? `@${tree.label}` : ""}`,
        label: `${probe} alone${suffix}`,
        tree,
        probe,
        probes: [probe],
        pipeline: tree.pipeline(probeAlone(text, probe, `${tree.root}pipeline.yaml`)),
      });
    }
  }
  return variants;
}

/** Starts the collector of `variant`, failing unless its probes attached. */
function startCollector(variant: Variant, denoFlags: string[] = []): Promise<Collector> {
  return Collector.start(variant.pipeline, {
    expectProbes: variant.probes,
    denoFlags,
    tree: variant.tree,
  });
}

async function main(): Promise<number> {
  const opts = options();
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  if (opts.collectorRoot && opts.compare) {
    throw new Error("--collector-root and --compare: one or the other (--compare runs this tree)");
  }
  const trees = [
    opts.collectorRoot ? await Tree.open(opts.collectorRoot) : await Tree.here(),
    ...(opts.compare ? [await Tree.open(opts.compare, "--compare")] : []),
  ];
  if (trees.length > 1 && trees[0].root === trees[1].root) {
    throw new Error("--compare: that is this checkout");
  }
  if (Deno.uid() !== 0) throw new Error("run as root: the collector attaches BPF programs");
  await requireTool("iperf3", ["--version"], "apt-get install -y iperf3");
  await requireTool("python3", ["--version"], "apt-get install -y python3");
  await requireTool("dnsmasq", ["--version"], "apt-get install -y dnsmasq-base");
  await requireTool("tmux", ["-V"], "apt-get install -y tmux");
  await requireTool("bpftool", ["version"], "apt-get install -y bpftool");
  const ticksPerSecond = await clockTicksPerSecond();

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
  const variants = variantsFor(trees, dnsPort, opts.probes);

  const all: Workload[] = [
    {
      id: "iperf3",
      name: "iperf3 TCP throughput",
      unit: "Gbit/s",
      digits: 2,
      target: 0.99,
      event: "MiB",
      run: (s) => iperfThroughput(iperf.port, s),
    },
    {
      id: "udp",
      name: "UDP 64 B flood received",
      unit: "dgram/s",
      digits: 0,
      target: 0.90,
      event: "datagram",
      costTarget: { of: "bpf", ns: 200 },
      run: (s) => udpFlood(iperf.port, s),
    },
    {
      id: "short_tcp",
      name: "short TCP connections",
      unit: "conn/s",
      digits: 0,
      target: 0.97,
      event: "connection",
      run: shortConnections,
    },
    {
      id: "dns",
      name: "DNS queries (dnsmasq)",
      unit: "query/s",
      digits: 0,
      target: 0.98,
      event: "answer",
      costTarget: { of: "total", ns: 2000 },
      run: (s) => dnsRate(dnsPort, s),
    },
    {
      id: "bash",
      name: "bash commands on a pty",
      unit: "cmd/s",
      digits: 0,
      event: "command",
      run: (s) => bashCommands(bash, s),
    },
  ];
  const selected = (id: string) => !opts.only || opts.only.includes(id);
  const unknown = opts.only?.filter((id) =>
    id !== "scaling" && id !== "memory" && !all.some((w) => w.id === id)
  );
  if (unknown?.length) throw new Error(`--only: unknown workload(s) ${unknown.join(", ")}`);
  const results: WorkloadResult[] = all.filter((w) => selected(w.id)).map((workload) => ({
    workload,
    off: [],
    variants: variants.map((variant) => ({ variant, on: [], ratios: [], onRuns: [] })),
  }));

  const kernel = Deno.readTextFileSync("/proc/sys/kernel/osrelease").trim();
  const load = Deno.loadavg().map((l) => l.toFixed(2)).join(" ");
  console.log(
    `bench: ${opts.pairs} pair(s) of ${opts.seconds} s runs, ${navigator.hardwareConcurrency} ` +
      `CPUs, load ${load}, kernel ${kernel}, deno ${Deno.version.deno}`,
  );
  const treesJson: TreeJson[] = [];
  for (const tree of trees) {
    const emptyDeno = await emptyDenoKb(tree);
    treesJson.push({
      label: tree.label,
      root: tree.root,
      commit: tree.commit,
      empty_deno_kib: emptyDeno,
    });
    if (trees.length > 1 || !tree.isHere) console.log(`collector of ${tree.label}: ${tree.root}`);
    console.log(
      `empty deno run${trees.length > 1 ? ` (${tree.label})` : ""}: RSS ${
        (emptyDeno.rss / MiB).toFixed(1)
      } MiB (peak ${(emptyDeno.hwm / MiB).toFixed(1)})`,
    );
  }

  for (let pair = 1; pair <= opts.pairs; pair++) {
    for (const r of results) {
      const w = r.workload;
      await sleep(SETTLE_MS);
      const off = await w.run(opts.seconds);
      r.off.push(off.value);
      if (r.variants.length > 1) {
        console.log(`  pair ${pair} ${w.id}: off ${format(off.value, w.digits)} ${w.unit}`);
      }
      // Each pair starts with the next variant, so none is always the one right after off.
      const order = r.variants.map((_, i) => r.variants[(i + pair - 1) % r.variants.length]);
      for (const v of order) {
        await using collector = await startCollector(v.variant);
        await sleep(SETTLE_MS);
        const [on, used] = await withUsage(
          collector.pid,
          ticksPerSecond,
          () => w.run(opts.seconds),
        );
        const mapBytes = bpfMapMemlock(collector.pid);
        const summary = await collector.stop();
        const lost = Object.fromEntries(LOSS_COUNTERS.map((c) => [c, summary.get(c)]));
        const records = v.variant.probes.reduce((sum, p) => sum + summary.get("records_out", p), 0);
        v.on.push(on.value);
        v.ratios.push(on.value / off.value);
        v.onRuns.push({
          ...used,
          attachMs: collector.attachMs,
          probeAttachMs: collector.probeAttachMs,
          mapBytes,
          recordsPerSecond: records / opts.seconds,
          events: on.events,
          lost,
        });
        const lostText = Object.entries(lost).filter(([, n]) => n).map(([c, n]) => `${c}=${n}`);
        const head = r.variants.length > 1
          ? `    ${v.variant.label}: on`
          : `  pair ${pair} ${w.id}: off ${format(off.value, w.digits)}, on`;
        console.log(
          `${head} ${format(on.value, w.digits)} ${w.unit} (${
            (on.value / off.value).toFixed(3)
          }); ` +
            `collector ${used.cpuPercent.toFixed(1)}% CPU, ${
              (used.rssKb / MiB).toFixed(0)
            } MiB, attach ${collector.attachMs} ms` +
            (lostText.length ? `, LOST ${lostText.join(" ")}` : "") +
            (on.note ? ` (on: ${on.note})` : ""),
        );
      }
    }
  }

  if (opts.profile) {
    using _stats = stack.use(enableBpfStats()); // the stack: also when interrupted
    const perf = await perfAvailable();
    if (!perf) console.log("perf not found (apt-get install linux-perf): no CPU profile");
    for (const r of results) {
      for (const v of r.variants) {
        v.profile = await profile(r.workload, v.variant, opts.seconds, opts.profileRuns, {
          perf,
          ticksPerSecond,
        });
      }
    }
  }

  const scaling: ScalingResult[] = [];
  if (selected("scaling")) {
    for (const n of opts.scale) {
      for (const tree of trees) {
        const s = await measureScaling(n, Math.max(opts.seconds, 5), tree);
        console.log(
          `  scaling ${n} connections${trees.length > 1 ? ` (${tree.label})` : ""}: poll ${
            s.pollMs.toFixed(1)
          } ms, CPU ${s.cpuMsPerPoll.toFixed(1)} ms/poll, RSS ${s.rssMiB.toFixed(0)} MiB`,
        );
        scaling.push(s);
      }
    }
  }

  const memory: BenchJson["memory"] = [];
  if (selected("memory")) {
    const seconds = Math.max(opts.seconds, 3);
    for (const tree of trees) {
      const text = withDnsPort(tree.defaultPipelineText(), dnsPort);
      const parts = opts.probes
        ? [
          { label: "no BPF probe, light load", text: SELF_ONLY, expectProbes: [] },
          ...kernelProbesOf(text).map((probe) => ({
            label: `${probe} alone, light load`,
            text: probeAlone(text, probe, `${tree.root}pipeline.yaml`),
            expectProbes: [probe],
          })),
        ]
        : [];
      const stages = await memoryStages(
        tree,
        { label: "all probes", text, expectProbes: kernelProbesOf(text) },
        {
          light: () => dnsQueries({ port: dnsPort, rate: LIGHT_DNS_RATE, seconds }),
          heavy: () => dnsRate(dnsPort, seconds),
        },
        parts,
      );
      memory.push({ tree: tree.label, stages });
    }
  }

  const json: BenchJson = {
    date: new Date().toISOString(),
    load_at_start: load,
    load_at_end: Deno.loadavg().map((l) => l.toFixed(2)).join(" "),
    cpus: navigator.hardwareConcurrency,
    kernel,
    deno: Deno.version.deno,
    pairs: opts.pairs,
    seconds: opts.seconds,
    empty_deno_kib: treesJson[0].empty_deno_kib,
    trees: treesJson,
    workloads: results.map((r) => {
      const variantsJson: VariantJson[] = r.variants.map((v) => ({
        id: v.variant.id,
        label: v.variant.label,
        tree: v.variant.tree.label,
        probe: v.variant.probe,
        on: v.on,
        ratio: spread(v.ratios),
        collector: collectorJson(v.onRuns),
        profile: v.profile,
      }));
      return {
        id: r.workload.id,
        name: r.workload.name,
        unit: r.workload.unit,
        target: r.workload.target,
        event: r.workload.event,
        cost_target: r.workload.costTarget,
        off: r.off,
        on: variantsJson[0].on,
        ratio: variantsJson[0].ratio,
        collector: variantsJson[0].collector,
        profile: variantsJson[0].profile,
        variants: variantsJson,
      };
    }),
    scaling,
    memory,
  };
  report(json);
  writeFile(opts.json, JSON.stringify(json, null, 2) + "\n");
  writeFile(opts.svg, renderChart(json));
  console.log(`\nwritten: ${opts.json}, ${opts.svg}`);
  return 0;
}

/**
 * `runs` on runs of `variant` with bpf_stats on (perf on the first, if there is perf): each
 * program's cost in the first, and the CPU a workload event costs, medians over all of them.
 */
async function profile(
  workload: Workload,
  variant: Variant,
  seconds: number,
  runs: number,
  env: { perf: boolean; ticksPerSecond: number },
): Promise<ProfileJson> {
  const costs: { bpf: number; collector: number }[] = [];
  let first: ProfileJson | undefined;
  for (let i = 0; i < runs; i++) {
    const perf = env.perf && i === 0;
    await sleep(SETTLE_MS);
    await using collector = await startCollector(variant, perf ? PERF_DENO_FLAGS : []);
    await sleep(SETTLE_MS);
    const run = () => withUsage(collector.pid, env.ticksPerSecond, () => workload.run(seconds));
    const profiled = (): Promise<[[Measurement, Usage], PerfSummary | undefined]> =>
      perf ? perfProfile(collector.pid, workload.id, run) : run().then((u) => [u, undefined]);
    const [[[measured, used], cpu], bpf] = await programCosts(collector.pid, profiled);
    await collector.stop();
    const events = measured.events || NaN;
    costs.push({ bpf: bpf.totalNs / events, collector: used.cpuSeconds * 1e9 / events });
    first ??= {
      eventsPerSecond: bpf.programs.reduce((sum, p) => sum + p.runsPerSecond, 0),
      cpuPercent: used.cpuPercent,
      programs: bpf.programs.map((p) => {
        const runsPerEvent = p.runsPerSecond * bpf.seconds / events;
        return { ...p, runsPerEvent, nsPerEvent: runsPerEvent * p.nsPerRun };
      }),
      cpu,
    };
  }
  return {
    ...first!,
    cost_per_event: {
      event: workload.event,
      bpf_ns: median(costs.map((c) => c.bpf)),
      collector_ns: median(costs.map((c) => c.collector)),
      total_ns: median(costs.map((c) => c.bpf + c.collector)),
      runs,
    },
  };
}

/** Writes `text` to `file` (relative to the checkout's root), making its directory. */
function writeFile(file: string, text: string): void {
  const path = file.startsWith("/") ? file : `${ROOT}${file}`;
  Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  Deno.writeTextFileSync(path, text);
}

function collectorJson(runs: OnRun[]): CollectorJson {
  return {
    cpu_percent: spread(runs.map((u) => u.cpuPercent)),
    rss_kib: spread(runs.map((u) => u.rssKb)),
    peak_rss_kib: Math.max(...runs.map((u) => u.hwmKb)),
    bpf_map_bytes: median(runs.map((u) => u.mapBytes)),
    attach_ms: spread(runs.map((u) => u.attachMs)),
    probe_attach_ms: Object.fromEntries(
      Object.keys(runs[0]?.probeAttachMs ?? {}).map((
        p,
      ) => [p, median(runs.map((u) => u.probeAttachMs[p]))]),
    ),
    records_per_second: median(runs.map((u) => u.recordsPerSecond)),
    lost: Object.fromEntries(
      LOSS_COUNTERS.map((c) => [c, runs.reduce((sum, r) => sum + r.lost[c], 0)]),
    ),
    cpu_ns_per_event: median(runs.map((u) => u.cpuSeconds * 1e9 / u.events)),
    runs,
  };
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

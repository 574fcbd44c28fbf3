import assert from "node:assert/strict";
import { renderChart } from "./chart.ts";
import type { BenchJson, VariantJson, WorkloadJson } from "./results.ts";
import { spread } from "./stats.ts";

const collector = {
  cpu_percent: spread([1]),
  rss_kib: spread([70_000]),
  peak_rss_kib: 80_000,
  bpf_map_bytes: 1,
  attach_ms: spread([300]),
  probe_attach_ms: {},
  records_per_second: 3,
  lost: {},
};

function variant(label: string, ratios: number[], cost?: [number, number]): VariantJson {
  return {
    id: label,
    label,
    tree: "t",
    on: ratios,
    ratio: spread(ratios),
    collector,
    profile: cost && {
      eventsPerSecond: 1,
      cpuPercent: 1,
      programs: [],
      cost_per_event: {
        event: "datagram",
        bpf_ns: cost[0],
        collector_ns: cost[1],
        total_ns: cost[0] + cost[1],
        runs: 1,
      },
    },
  };
}

function workload(id: string, target: number, variants: VariantJson[]): WorkloadJson {
  return {
    id,
    name: id,
    unit: "x/s",
    target,
    event: "datagram",
    cost_target: { of: "bpf", ns: 200 },
    off: [1, 1, 1],
    on: variants[0].on,
    ratio: variants[0].ratio,
    collector,
    variants,
  };
}

const JSON_NOW: BenchJson = {
  date: "2026-12-06T23:00:00.000Z",
  load_at_start: "1 1 1",
  load_at_end: "1 1 1",
  cpus: 2,
  kernel: "6.18",
  deno: "2.9.6",
  pairs: 3,
  seconds: 3,
  empty_deno_kib: { rss: 36_000, hwm: 36_000 },
  workloads: [
    workload("udp <&>", 0.9, [
      variant("on new", [0.8, 1.0, 1.2], [351, 20]),
      variant("on old", [0.7, 0.8, 0.9], [760, 25]),
    ]),
  ],
  scaling: [
    {
      tree: "new",
      connections: 1000,
      trackedSockets: 2000,
      pollMs: 10,
      cpuMsPerPoll: 1,
      rssMiB: 70,
      socketsFull: 0,
      attachMs: 1,
    },
    {
      tree: "new",
      connections: 50000,
      trackedSockets: 2000,
      pollMs: 60,
      cpuMsPerPoll: 1,
      rssMiB: 70,
      socketsFull: 0,
      attachMs: 1,
    },
    {
      tree: "old",
      connections: 1000,
      trackedSockets: 2000,
      pollMs: 20,
      cpuMsPerPoll: 1,
      rssMiB: 70,
      socketsFull: 0,
      attachMs: 1,
    },
    {
      tree: "old",
      connections: 50000,
      trackedSockets: 2000,
      pollMs: 384,
      cpuMsPerPoll: 1,
      rssMiB: 70,
      socketsFull: 5,
      attachMs: 1,
    },
  ],
};

/** Checks that every tag closes in order (the SVG is well-formed as far as tags go). */
function assertBalanced(svg: string): void {
  const open: string[] = [];
  for (const [tag, close, name, selfClosing] of svg.matchAll(/<(\/?)(\w+)[^>]*?(\/?)>/g)) {
    if (selfClosing) continue;
    if (!close) open.push(name);
    else assert.equal(open.pop(), name, `${tag} closes ${name}`);
  }
  assert.deepEqual(open, []);
}

/** The y of the gridline labelled `label` on the ratio axis (its text sits 4 px below it). */
function gridY(svg: string, label: string): number {
  const m = svg.match(
    new RegExp(`<text x="[\\d.]+" y="([\\d.]+)" text-anchor="end">${label}</text>`),
  );
  assert.ok(m, `gridline ${label}`);
  return Number(m[1]) - 4;
}

Deno.test("renderChart() draws a well-formed SVG with every variant, tree and label escaped", () => {
  const svg = renderChart(JSON_NOW);
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assertBalanced(svg);
  assert.match(svg, /udp &lt;&amp;&gt;/);
  for (const label of ["on new", "on old", "new", "old"]) {
    assert.match(svg, new RegExp(`>${label}<`));
  }
});

Deno.test("renderChart() puts the median dot and the target line at their values", () => {
  const svg = renderChart(JSON_NOW);
  // "on new" has median 1.0: its dot sits on the 1.0 gridline.
  const dots = [...svg.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)" r="3.5"/g)].map((m) =>
    Number(m[1])
  );
  assert.equal(dots[0], gridY(svg, "1.0"));
  assert.equal(dots[1], gridY(svg, "0.8"));
  // The target 0.90: a dashed red line at the 0.9 gridline.
  const target = svg.match(/<line x1="[\d.]+" y1="([\d.]+)" x2="[\d.]+" y2="\1" stroke="#d62728"/);
  assert.ok(target);
  assert.equal(Number(target[1]), gridY(svg, "0.9"));
});

Deno.test("renderChart() marks a cost over its target, and a poll map that was full", () => {
  const svg = renderChart(JSON_NOW);
  assert.match(svg, />351 \+ 20 = 371 ✗</);
  assert.match(svg, />760 \+ 25 = 785 ✗</);
  assert.match(svg, />384 ms \(full\)</);
  assert.match(svg, />60 ms</);
});

Deno.test("renderChart() draws a file from before variants and costs", () => {
  const old = structuredClone(JSON_NOW);
  const w = old.workloads[0];
  delete w.variants;
  delete w.event;
  delete w.cost_target;
  // deno-lint-ignore no-explicit-any
  for (const s of old.scaling as any[]) delete s.tree;
  const svg = renderChart(old);
  assertBalanced(svg);
  assert.match(svg, />on</);
  assert.doesNotMatch(svg, /CPU per workload event/);
});

Deno.test("renderChart() stacks each memory stage's kinds up to its RSS, with the budget", () => {
  const kinds = (mib: number) => ({
    deno_binary: mib * 1024,
    other_files: 0,
    v8_heap: 1024,
    c_heap: 1024,
    stacks: 0,
    bpf_maps: 0,
    other_anonymous: 0,
  });
  const svg = renderChart({
    ...JSON_NOW,
    memory: [{
      tree: "new",
      stages: [
        { id: "empty", label: "empty deno run", rssKib: 10 * 1024, kinds: kinds(8) },
        { id: "light", label: "collector, light load", rssKib: 40 * 1024, kinds: kinds(38) },
      ],
    }],
  });
  assertBalanced(svg);
  const bars = (label: string) =>
    [...svg.matchAll(
      new RegExp(`<rect x="([\\d.]+)" y="[\\d.]+" width="([\\d.]+)"[^>]*><title>${label}: `, "g"),
    )]
      .map((m) => [Number(m[1]), Number(m[2])]);
  const empty = bars("empty deno run"), light = bars("collector, light load");
  assert.equal(empty.length, 7);
  // Widths in proportion to MiB: the light stage's bar is 4 times the empty one's.
  const end = (b: number[][]) => b.at(-1)![0] + b.at(-1)![1] - b[0][0];
  assert.ok(Math.abs(end(light) / end(empty) - 4) < 0.01);
  // The budget (empty + 25 MiB = 35 MiB) sits at 35/40 of the light bar.
  // (the last red upright line: the cost panel's targets come before it)
  const budget = [
    ...svg.matchAll(/<line x1="([\d.]+)" y1="[\d.]+" x2="\1" y2="[\d.]+" stroke="#d62728"/g),
  ]
    .at(-1);
  assert.ok(budget);
  assert.ok(Math.abs((Number(budget[1]) - light[0][0]) / end(light) - 35 / 40) < 0.01);
  assert.match(svg, />budget at light load: empty \+ 25 MiB</);
});

import assert from "node:assert/strict";
import { report } from "./report.ts";
import type { BenchJson, CollectorJson, VariantJson } from "./results.ts";
import { spread } from "./stats.ts";

const collector: CollectorJson = {
  cpu_percent: spread([10]),
  rss_kib: spread([70_000]),
  peak_rss_kib: 80_000,
  bpf_map_bytes: 2 ** 20,
  attach_ms: spread([300]),
  probe_attach_ms: {},
  records_per_second: 100,
  lost: { ring_lost: 0 },
};

function variant(label: string, probe?: string): VariantJson {
  const cost = { event: "answer", bpf_ns: 2000, collector_ns: 6000, total_ns: 8000, runs: 1 };
  return {
    id: label,
    label,
    tree: "here",
    probe,
    on: [0.9],
    ratio: spread([0.9]),
    collector,
    profile: { eventsPerSecond: 1, cpuPercent: 1, programs: [], cost_per_event: cost },
  };
}

function bench(variants: VariantJson[]): BenchJson {
  return {
    date: "2026-12-06T23:00:00.000Z",
    load_at_start: "1",
    load_at_end: "1",
    cpus: 2,
    kernel: "6.18",
    deno: "2.9.6",
    pairs: 1,
    seconds: 3,
    empty_deno_kib: { rss: 36_000, hwm: 36_000 },
    workloads: [{
      id: "dns",
      name: "DNS queries",
      unit: "query/s",
      target: 0.98,
      event: "answer",
      cost_target: { of: "total", ns: 2000 },
      off: [1],
      on: variants[0].on,
      ratio: variants[0].ratio,
      collector,
      profile: variants[0].profile,
      variants,
    }],
    scaling: [],
  };
}

/** What `report` prints, as one string. */
function printed(json: BenchJson): string {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    report(json);
  } finally {
    console.log = log;
  }
  return lines.join("\n");
}

Deno.test("report() prints the tables as before when the collector ran one way", () => {
  const text = printed(bench([variant("on")]));
  assert.match(text, /^workload +off \(median\) +on \(median\) +on\/off +target$/m);
  assert.match(
    text,
    /^DNS queries \(query\/s\) .* 0\.900 \[0\.900-0\.900\] \(0\.900-0\.900\) +≥ 0\.98 +FAIL$/m,
  );
  assert.match(text, /^DNS queries +answer +2,000 +6,000 +8,000 +total ≤ 2,000 +FAIL$/m);
});

Deno.test("report() names each variant, and holds only the whole collector to the targets", () => {
  const text = printed(bench([variant("on"), variant("dns alone", "dns")]));
  assert.match(text, /^workload +variant +off \(median\)/m);
  assert.match(text, /^DNS queries \(query\/s\) +on .* FAIL$/m);
  assert.match(text, /^DNS queries \(query\/s\) +dns alone .* ≥ 0\.98$/m);
  assert.match(text, /^DNS queries +dns alone +answer +2,000 +6,000 +8,000 +total ≤ 2,000$/m);
});

Deno.test("report() prints no workload tables when only memory or scaling ran", () => {
  const json = { ...bench([variant("on")]), workloads: [] };
  assert.doesNotMatch(printed(json), /on\/off|the collector during/);
});

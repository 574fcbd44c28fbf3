/**
 * The bench's picture, drawn from its JSON (results.ts) as SVG text: written by hand, since three
 * simple panels do not need a charting library (and the npm ones draw in a browser DOM).
 *
 * 1. on/off per workload: for each variant (on; each probe alone with --probes; each tree with
 *    --compare) the median (dot), quartiles (bar) and min-max (whisker) of its pairs' ratios;
 *    the workload's target as a dashed red line, 1.0 as a grey one.
 * 2. netflow poll time against idle connections held open (the scaling runs), one line a tree,
 *    issue 17's target (80 ms at 50k) dashed.
 * 3. CPU per workload event (bpf_stats runs): BPF programs and the collector's own, stacked, a
 *    row a variant, the target where the workload has one.
 * 4. Memory (the `memory` runs): each stage's RSS split by what backs it, a bar a stage, with
 *    issue 17's budget at light load (empty deno run + 25 MiB).
 *
 * Older JSON files (one `on` a workload, no costs, no memory) draw what they have.
 */
import type { MemoryStage } from "./memory.ts";
import { type BenchJson, targetedNs, variantsOf, type WorkloadJson } from "./results.ts";
import type { ScalingResult } from "./scaling.ts";
import { KIND_NAMES, type MemoryKinds } from "./smaps.ts";

const WIDTH = 960;
const LEFT = 70;
const RIGHT = 24;
const PLOT_WIDTH = WIDTH - LEFT - RIGHT;
const COLORS = [
  "#4e79a7",
  "#f28e2b",
  "#59a14f",
  "#b07aa1",
  "#76b7b2",
  "#edc948",
  "#9c755f",
  "#ff9da7",
];
const TARGET = "#d62728";
const FONT = 'font-family="sans-serif" font-size="12"';
/** Issue 17: a netflow poll with 50,000 idle connections open takes at most 80 ms. */
export const POLL_TARGET = { connections: 50_000, ms: 80 };

/** The SVG document for `json`. */
export function renderChart(json: BenchJson): string {
  const parts: string[] = [];
  let y = 0;
  const trees = json.trees?.map((t) => t.label).join(" vs ") ?? "";
  parts.push(
    text(
      LEFT,
      24,
      `ebpf-collector bench ${json.date.slice(0, 16).replace("T", " ")} UTC${
        trees ? `: ${trees}` : ""
      }`,
      'font-size="16" font-weight="bold"',
    ),
  );
  parts.push(text(
    LEFT,
    42,
    `${json.pairs} pair(s) of ${json.seconds} s runs, ${json.cpus} CPUs, load ${json.load_at_start} → ${json.load_at_end}, kernel ${json.kernel}, deno ${json.deno}`,
  ));
  y = 60;
  const labels = [...new Set(json.workloads.flatMap((w) => variantsOf(w).map((v) => v.label)))];
  /** One colour a variant, the same in every panel. */
  const color = (label: string) => COLORS[labels.indexOf(label) % COLORS.length];
  if (json.workloads.length) y = ratioPanel(parts, json.workloads, labels, color, y);
  if (json.scaling.length) y = scalingPanel(parts, json.scaling, y);
  if (json.workloads.some((w) => variantsOf(w).some((v) => v.profile?.cost_per_event))) {
    y = costPanel(parts, json.workloads, color, y);
  }
  for (const m of json.memory ?? []) y = memoryPanel(parts, m.tree, m.stages, y);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${
    y + 10
  }" viewBox="0 0 ${WIDTH} ${y + 10}" ${FONT}>\n<rect width="100%" height="100%" fill="white"/>\n${
    parts.join("\n")
  }\n</svg>\n`;
}

/** Panel 1: the ratios; returns the y below it. */
function ratioPanel(
  parts: string[],
  workloads: WorkloadJson[],
  labels: string[],
  color: (label: string) => string,
  top: number,
): number {
  const height = 280;
  const values = workloads.flatMap((w) => [
    ...variantsOf(w).flatMap((v) => [v.ratio.min, v.ratio.max]),
    ...(w.target ? [w.target] : []),
  ]).filter(Number.isFinite);
  const lo = Math.floor(Math.min(0.6, ...values) * 10) / 10;
  const hi = Math.ceil(Math.max(1.2, ...values) * 10) / 10;
  parts.push(
    text(
      LEFT,
      top + 14,
      "on/off per workload (dot: median; bar: quartiles; whisker: min-max; dashed red: target)",
      'font-weight="bold"',
    ),
  );
  const plotTop = legend(parts, labels.map((l) => [l, color(l)]), top + 28) + 8;
  const yOf = (v: number) => plotTop + (hi - v) / (hi - lo) * height;

  const step = hi - lo > 1.5 ? 0.2 : 0.1;
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + 1e-9; k++) {
    const gy = yOf(k * step);
    parts.push(line(LEFT, gy, LEFT + PLOT_WIDTH, gy, "#e5e5e5", 1));
    parts.push(text(LEFT - 8, gy + 4, (k * step).toFixed(1), 'text-anchor="end"'));
  }
  parts.push(line(LEFT, yOf(1), LEFT + PLOT_WIDTH, yOf(1), "#888", 1.2, "4 3"));

  const groupWidth = PLOT_WIDTH / workloads.length;
  workloads.forEach((w, i) => {
    const variants = variantsOf(w);
    const x0 = LEFT + i * groupWidth;
    const slot = Math.min(40, groupWidth * 0.8 / variants.length);
    const first = x0 + (groupWidth - slot * variants.length) / 2;
    if (w.target) {
      const ty = yOf(w.target);
      parts.push(line(first - 6, ty, first + slot * variants.length + 6, ty, TARGET, 1.5, "6 3"));
    }
    variants.forEach((v, j) => {
      const cx = first + slot * (j + 0.5), box = slot * 0.55, r = v.ratio;
      if (!Number.isFinite(r.median)) return;
      parts.push(line(cx, yOf(r.max), cx, yOf(r.min), color(v.label), 1.2));
      parts.push(line(cx - box / 4, yOf(r.max), cx + box / 4, yOf(r.max), color(v.label), 1.2));
      parts.push(line(cx - box / 4, yOf(r.min), cx + box / 4, yOf(r.min), color(v.label), 1.2));
      parts.push(
        `<rect x="${n(cx - box / 2)}" y="${n(yOf(r.q3))}" width="${n(box)}" height="${
          n(Math.max(1, yOf(r.q1) - yOf(r.q3)))
        }" fill="${color(v.label)}" fill-opacity="0.45" stroke="${color(v.label)}"><title>${
          esc(
            `${w.name}, ${v.label}: median ${r.median.toFixed(3)}, quartiles ${r.q1.toFixed(3)}-${
              r.q3.toFixed(3)
            }, min-max ${r.min.toFixed(3)}-${r.max.toFixed(3)} (${r.n} pairs)`,
          )
        }</title></rect>`,
      );
      parts.push(`<circle cx="${n(cx)}" cy="${n(yOf(r.median))}" r="3.5" fill="#222"/>`);
    });
    parts.push(text(x0 + groupWidth / 2, plotTop + height + 18, w.name, 'text-anchor="middle"'));
    if (w.target) {
      parts.push(
        text(
          x0 + groupWidth / 2,
          plotTop + height + 33,
          `target ≥ ${w.target.toFixed(2)}`,
          `text-anchor="middle" fill="${TARGET}"`,
        ),
      );
    }
  });
  return plotTop + height + 50;
}

/** Panel 2: poll time against connections, log x; returns the y below it. */
function scalingPanel(parts: string[], scaling: ScalingResult[], top: number): number {
  const height = 220;
  const trees = [...new Set(scaling.map((s) => s.tree ?? ""))];
  const color = (tree: string) => COLORS[trees.indexOf(tree) % COLORS.length];
  const connections = [...scaling.map((s) => s.connections), POLL_TARGET.connections];
  const xLo = Math.log10(Math.min(...connections) / 1.6),
    xHi = Math.log10(Math.max(...connections) * 1.6);
  const yHi = Math.max(POLL_TARGET.ms, ...scaling.map((s) => s.pollMs)) * 1.15;
  parts.push(
    text(
      LEFT,
      top + 14,
      "netflow poll time (ms) against idle connections held open (log scale)",
      'font-weight="bold"',
    ),
  );
  const plotTop = trees.length > 1 || trees[0]
    ? legend(parts, trees.map((t) => [t, color(t)]), top + 28) + 8
    : top + 22;
  const xOf = (c: number) => LEFT + (Math.log10(c) - xLo) / (xHi - xLo) * PLOT_WIDTH;
  const yOf = (ms: number) => plotTop + (1 - ms / yHi) * height;
  for (const ms of niceSteps(yHi)) {
    parts.push(line(LEFT, yOf(ms), LEFT + PLOT_WIDTH, yOf(ms), "#e5e5e5", 1));
    parts.push(text(LEFT - 8, yOf(ms) + 4, String(ms), 'text-anchor="end"'));
  }
  for (const c of [...new Set(connections)].sort((a, b) => a - b)) {
    parts.push(line(xOf(c), plotTop, xOf(c), plotTop + height, "#f0f0f0", 1));
    parts.push(
      text(xOf(c), plotTop + height + 16, c.toLocaleString("en-US"), 'text-anchor="middle"'),
    );
  }
  parts.push(
    line(LEFT, yOf(POLL_TARGET.ms), LEFT + PLOT_WIDTH, yOf(POLL_TARGET.ms), TARGET, 1.5, "6 3"),
  );
  parts.push(
    text(
      LEFT + PLOT_WIDTH,
      yOf(POLL_TARGET.ms) - 5,
      `target ≤ ${POLL_TARGET.ms} ms at ${POLL_TARGET.connections.toLocaleString("en-US")}`,
      `text-anchor="end" fill="${TARGET}"`,
    ),
  );
  for (const tree of trees) {
    const points = scaling.filter((s) => (s.tree ?? "") === tree).sort((a, b) =>
      a.connections - b.connections
    );
    parts.push(
      `<polyline fill="none" stroke="${color(tree)}" stroke-width="2" points="${
        points.map((p) => `${n(xOf(p.connections))},${n(yOf(p.pollMs))}`).join(" ")
      }"/>`,
    );
    for (const p of points) {
      parts.push(
        `<circle cx="${n(xOf(p.connections))}" cy="${n(yOf(p.pollMs))}" r="4" fill="${
          color(tree)
        }"><title>${
          esc(
            `${tree || "poll"}: ${p.connections} connections, ${
              p.pollMs.toFixed(1)
            } ms a poll, ${p.socketsFull} sockets_full`,
          )
        }</title></circle>`,
      );
      parts.push(
        text(
          xOf(p.connections) + 6,
          yOf(p.pollMs) - 6,
          `${p.pollMs.toFixed(0)} ms${p.socketsFull ? " (full)" : ""}`,
          `fill="${color(tree)}"`,
        ),
      );
    }
  }
  return plotTop + height + 40;
}

/** Panel 3: CPU per event, a block a workload; returns the y below it. */
function costPanel(
  parts: string[],
  workloads: WorkloadJson[],
  color: (label: string) => string,
  top: number,
): number {
  const rowHeight = 18,
    labelWidth = 170,
    barLeft = LEFT + labelWidth,
    barWidth = PLOT_WIDTH - labelWidth - 200;
  parts.push(
    text(
      LEFT,
      top + 14,
      "CPU per workload event, ns (bpf_stats runs): BPF programs (dark) + the collector's utime+stime (light)",
      'font-weight="bold"',
    ),
  );
  let y = top + 26;
  for (const w of workloads) {
    const costed = variantsOf(w).filter((v) => v.profile?.cost_per_event);
    if (costed.length === 0) continue;
    const costs = costed.map((v) => v.profile!.cost_per_event!);
    const max = Math.max(...costs.map((c) => c.total_ns), w.cost_target?.ns ?? 0) || 1;
    const xOf = (ns: number) => barLeft + ns / max * barWidth;
    parts.push(text(LEFT, y + 13, `${w.name}: per ${costs[0].event}`, 'font-weight="bold"'));
    y += rowHeight;
    costed.forEach((v, j) => {
      const c = costs[j];
      parts.push(text(barLeft - 6, y + 12, v.label, 'text-anchor="end"'));
      parts.push(
        `<rect x="${barLeft}" y="${y + 2}" width="${n(xOf(c.bpf_ns) - barLeft)}" height="${
          rowHeight - 5
        }" fill="${color(v.label)}"/>`,
      );
      parts.push(
        `<rect x="${n(xOf(c.bpf_ns))}" y="${y + 2}" width="${
          n(xOf(c.total_ns) - xOf(c.bpf_ns))
        }" height="${rowHeight - 5}" fill="${color(v.label)}" fill-opacity="0.35"/>`,
      );
      // Only the whole collector is held to the target: a probe alone is a part of it.
      const missed = w.cost_target && !v.probe && targetedNs(c, w.cost_target) > w.cost_target.ns;
      const met = missed ? " ✗" : "";
      parts.push(
        text(
          xOf(c.total_ns) + 6,
          y + 12,
          `${fmt(c.bpf_ns)} + ${fmt(c.collector_ns)} = ${fmt(c.total_ns)}${met}`,
        ),
      );
      y += rowHeight;
    });
    if (w.cost_target) {
      const tx = xOf(w.cost_target.ns);
      parts.push(line(tx, y - rowHeight * costed.length - 2, tx, y + 2, TARGET, 1.5, "6 3"));
      parts.push(
        text(
          tx + 4,
          y + 12,
          `target: ${w.cost_target.of === "bpf" ? "BPF" : "BPF + collector"} ≤ ${
            fmt(w.cost_target.ns)
          }`,
          `fill="${TARGET}"`,
        ),
      );
      y += rowHeight;
    }
    y += 6;
  }
  return y + 10;
}

/** Issue 17: RSS at light load at most an empty `deno run` + 25 MiB. */
export const RSS_BUDGET_MIB = 25;

/** Panel 4: one tree's memory stages, stacked by kind; returns the y below it. */
function memoryPanel(parts: string[], tree: string, stages: MemoryStage[], top: number): number {
  if (stages.length === 0) return top;
  const rowHeight = 20, labelWidth = 170, barLeft = LEFT + labelWidth;
  const barWidth = PLOT_WIDTH - labelWidth - 60;
  const kinds = Object.keys(KIND_NAMES) as (keyof MemoryKinds)[];
  const budget = stages[0].rssKib / 1024 + RSS_BUDGET_MIB;
  const max = Math.max(budget, ...stages.map((s) => s.rssKib / 1024));
  const xOf = (mib: number) => barLeft + mib / max * barWidth;
  parts.push(
    text(LEFT, top + 14, `memory of ${tree}: RSS (MiB) by what backs it`, 'font-weight="bold"'),
  );
  const legendEnd = legend(
    parts,
    kinds.map((k, i) => [KIND_NAMES[k], COLORS[i % COLORS.length]]),
    top + 30,
  );
  let y = legendEnd + 8;
  for (const stage of stages) {
    parts.push(text(barLeft - 6, y + 13, stage.label, 'text-anchor="end"'));
    let at = 0;
    kinds.forEach((k, i) => {
      const mib = stage.kinds[k] / 1024;
      parts.push(
        `<rect x="${n(xOf(at))}" y="${y + 2}" width="${n(xOf(at + mib) - xOf(at))}" height="${
          rowHeight - 5
        }" fill="${COLORS[i % COLORS.length]}"><title>${
          esc(`${stage.label}: ${KIND_NAMES[k]} ${mib.toFixed(1)} MiB`)
        }</title></rect>`,
      );
      at += mib;
    });
    parts.push(text(xOf(stage.rssKib / 1024) + 6, y + 13, `${(stage.rssKib / 1024).toFixed(1)}`));
    y += rowHeight;
  }
  const bx = xOf(budget);
  parts.push(line(bx, legendEnd + 6, bx, y + 2, TARGET, 1.5, "6 3"));
  parts.push(
    text(
      bx,
      y + 14,
      `budget at light load: empty + ${RSS_BUDGET_MIB} MiB`,
      `text-anchor="middle" fill="${TARGET}"`,
    ),
  );
  return y + 30;
}

/** Coloured squares with their labels from `y` on, wrapped at the right edge; the last row's y. */
function legend(parts: string[], entries: [string, string][], y: number): number {
  let x = LEFT;
  for (const [label, color] of entries) {
    const width = 28 + label.length * 7;
    if (x > LEFT && x + width > WIDTH - RIGHT) [x, y] = [LEFT, y + 16];
    parts.push(
      `<rect x="${x}" y="${
        y - 9
      }" width="12" height="10" fill="${color}" fill-opacity="0.6" stroke="${color}"/>`,
    );
    parts.push(text(x + 16, y, label));
    x += width;
  }
  return y;
}

/** Round gridline values from 0 up to `max`. */
function niceSteps(max: number): number[] {
  const raw = max / 5, magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw)!;
  const steps = [];
  for (let v = 0; v <= max; v += step) steps.push(v);
  return steps;
}

const n = (v: number) => v.toFixed(1);
const fmt = (v: number) => Math.round(v).toLocaleString("en-US");

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

function text(x: number, y: number, content: string, attributes = ""): string {
  return `<text x="${n(x)}" y="${n(y)}" ${attributes}>${esc(content)}</text>`;
}

function line(
  x1: number,
  y1: number,
  x2: number,
  y2: number,
  stroke: string,
  width: number,
  dash = "",
): string {
  return `<line x1="${n(x1)}" y1="${n(y1)}" x2="${n(x2)}" y2="${
    n(y2)
  }" stroke="${stroke}" stroke-width="${width}"${dash ? ` stroke-dasharray="${dash}"` : ""}/>`;
}

/**
 * Draws (again) the chart `deno task bench` writes beside its JSON, from a saved JSON file:
 * on/off per workload with its spread, netflow poll time against open connections, CPU per
 * event, memory by kind (see scripts/bench/chart.ts). Also reads JSON from before the chart existed.
 *
 *   deno run --allow-read --allow-write scripts/bench_chart.ts build/bench.json [--out FILE.svg]
 *
 * Without --out the SVG goes next to the JSON, with the extension .svg.
 */
import { parseArgs } from "node:util";
import { renderChart } from "./bench/chart.ts";
import type { BenchJson } from "./bench/results.ts";

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { out: { type: "string" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
  });
  if (values.help || positionals.length !== 1) {
    console.log("usage: deno run -R -W scripts/bench_chart.ts BENCH.json [--out FILE.svg]");
    Deno.exit(values.help ? 0 : 2);
  }
  const [input] = positionals;
  const out = values.out ?? input.replace(/(\.json)?$/, ".svg");
  try {
    const json: BenchJson = JSON.parse(Deno.readTextFileSync(input));
    if (!Array.isArray(json.workloads) || !Array.isArray(json.scaling)) {
      throw new Error("not a bench JSON (no workloads and scaling)");
    }
    Deno.writeTextFileSync(out, renderChart(json));
    console.log(`written: ${out}`);
  } catch (e) {
    console.error(`bench_chart: ${input}: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}

/**
 * `--probes`: a pipeline cut down to one probe and what the full pipeline puts after it, so the
 * benchmark can run each probe alone on each workload and show what it costs.
 *
 * Kept: the probe, and every transform, window and output that reads (through `inputs`) from
 * something kept, each reading only the kept stages among its inputs. A stage that needs a
 * probe not kept through a side input (`dns_domain`'s `answers_from: dns` when netflow runs
 * alone) is left out and its readers read its inputs instead: without that probe it would
 * have nothing to work with; one that makes records of its own from what it reads
 * (`emitsOnlyOwnRecords`: `command_activity` without bash) is left out with nothing in its place.
 * Other probes (the `collector` self-report too) are left out.
 */
import { parse, stringify } from "yaml";
import { parsePipeline } from "../../src/pipeline/load.ts";
import { SECTIONS } from "../../src/pipeline/registry.ts";

/** `text` (a pipeline file) with only `probe` and the stages downstream of it. */
export function probeAlone(text: string, probe: string, file = "pipeline.yaml"): string {
  const graph = parsePipeline(file, text, (name) => Deno.env.get(name));
  if (!graph.stages.some((s) => s.name === probe && s.kind === "probe")) {
    throw new Error(`--probes: ${file} has no probe named ${probe}`);
  }
  /** What a reader of each stage reads instead: itself if kept, its inputs if bypassed. */
  const readAs = new Map<string, string[]>([[probe, [probe]]]);
  const inputsOf = new Map<string, string[]>();
  for (const stage of graph.stages) { // graph order: a stage comes after all it reads
    if (stage.kind === "probe") continue;
    const reads = [...new Set(stage.inputs.flatMap((i) => readAs.get(i) ?? []))];
    if (reads.length === 0) continue; // nothing it reads is kept
    if (stage.sideInputs.some((s) => !readAs.has(s.stage))) {
      // Bypassed: its readers read its inputs, unless it passes none of them on.
      readAs.set(stage.name, stage.def.emitsOnlyOwnRecords ? [] : reads);
      continue;
    }
    readAs.set(stage.name, [stage.name]);
    inputsOf.set(stage.name, reads);
  }

  const raw = parse(text);
  const alone: { [key: string]: unknown } = { version: raw.version };
  for (const section of SECTIONS) {
    const kept = Object.entries(raw[section] ?? {}).filter(([name]) =>
      name === probe || inputsOf.has(name)
    ).map(([name, stage]) =>
      name === probe ? [name, stage] : [name, { ...stage as object, inputs: inputsOf.get(name) }]
    );
    if (kept.length) alone[section] = Object.fromEntries(kept);
  }
  return stringify(alone);
}

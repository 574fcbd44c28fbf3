/**
 * `--explain`: what a pipeline will do, before it runs. The graph, each stage with its config
 * (defaults filled in and marked; `${VAR}` shown by name, never its value; a URL's password as
 * `***`, see shown.ts), what each probe
 * attaches where, and the Deno permission flags this pipeline needs.
 */
import type { Pipeline, StageNode } from "./load.ts";
import { defaultOf, type KeySpec } from "./schema.ts";
import { runCommand, type RunMode } from "./permissions.ts";
import { describePushdown, pushdownFor } from "./pushdown.ts";
import { ShownText } from "./shown.ts";
import { formatDuration, formatSize } from "../units.ts";

/** `--explain`: a readable account of the pipeline (run as `mode` says: --replay, --record). */
export function explainText(pipeline: Pipeline, mode: RunMode = {}): string {
  const lines: string[] = [];
  const width = Math.max(...pipeline.stages.map((s) => s.name.length));
  lines.push(
    `${pipeline.file}: ${pipeline.stages.length} stages`,
    "",
    "graph (records flow downward):",
  );
  for (const s of pipeline.stages) {
    const from = [...s.inputs, ...s.sideInputs.map((i) => `${i.stage} (${i.key})`)];
    lines.push(
      `  ${s.name.padEnd(width)}  ${s.kind.padEnd(9)} ${from.length ? `<- ${from.join(", ")}` : ""}`
        .trimEnd(),
    );
  }
  for (const s of pipeline.stages) {
    lines.push("", `${s.section}.${s.name}: ${s.def.type}: ${s.def.describe}`);
    if (s.kind === "probe") {
      lines.push(
        `  required: ${s.required}${
          s.required ? "" : " (a failure to load disables only this probe)"
        }`,
      );
    }
    if (s.inputs.length) lines.push(`  inputs: [${s.inputs.join(", ")}]`);
    for (const [key, spec] of Object.entries(s.def.schema)) {
      lines.push(`  ${configLine(pipeline, s, key, spec)}`);
    }
    for (const d of s.def.explain?.(s.config).details ?? []) lines.push(`  = ${d}`);
    if (s.kind === "probe") {
      for (const d of describePushdown(pushdownFor(s, pipeline.stages))) lines.push(`  = ${d}`);
    }
  }
  for (const w of pipeline.warnings) lines.push("", `warning: ${w.message}`);
  lines.push(
    "",
    "permissions this pipeline needs:",
    `  ${runCommand(pipeline, mode)}`,
  );
  // Stages' details show values (a URL with its password): shown as written, or ***.
  return ShownText.of(pipeline).mask(lines.join("\n") + "\n");
}

function configLine(pipeline: Pipeline, s: StageNode, key: string, spec: KeySpec): string {
  const path = `${s.section}.${s.name}.${key}`;
  const written = s.raw[key];
  let shown: string;
  if (written === undefined || written === null) {
    const d = defaultOf(spec);
    shown = d === undefined ? "(not set)" : `${display(spec, d)} (default)`;
  } else if (spec.secret) {
    // Only the ${VAR} it came from, if any: a credential's value never reaches the terminal.
    shown = pipeline.source.template(path) ?? "***";
  } else {
    const v = withTemplates(pipeline, path, written);
    shown = typeof v === "string" ? v : JSON.stringify(v);
  }
  return `${key}: ${shown}  # ${spec.doc}`;
}

function display(spec: KeySpec, value: unknown): string {
  if (spec.type === "duration" && typeof value === "number") return formatDuration(value);
  if (spec.type === "size" && typeof value === "number") return formatSize(value);
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** The written value with every `${VAR}` string put back as written. */
function withTemplates(pipeline: Pipeline, path: string, value: unknown): unknown {
  const template = pipeline.source.template(path);
  if (template !== undefined) return template;
  if (Array.isArray(value)) return value.map((v, i) => withTemplates(pipeline, `${path}[${i}]`, v));
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, withTemplates(pipeline, `${path}.${k}`, v)]),
    );
  }
  return value;
}

/** `--explain=dot`: the graph for Graphviz (`dot -Tsvg`). */
export function explainDot(pipeline: Pipeline): string {
  const q = (s: string) => JSON.stringify(s);
  const shapes = { probe: "box", transform: "ellipse", window: "hexagon", output: "note" };
  const lines = ["digraph pipeline {", "  rankdir=LR;"];
  for (const s of pipeline.stages) {
    lines.push(
      `  ${q(s.name)} [shape=${shapes[s.kind]}, label=${q(`${s.name}\n${s.kind} ${s.def.type}`)}];`,
    );
  }
  for (const s of pipeline.stages) {
    for (const i of s.inputs) lines.push(`  ${q(i)} -> ${q(s.name)};`);
    for (const i of s.sideInputs) {
      lines.push(`  ${q(i.stage)} -> ${q(s.name)} [style=dashed, label=${q(i.key)}];`);
    }
  }
  lines.push("}");
  return lines.join("\n") + "\n";
}

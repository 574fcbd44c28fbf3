/**
 * `--explain`: what a pipeline will do, before it runs. The graph, each stage with its config
 * (defaults filled in and marked; `${VAR}` shown by name, never its value), what each probe
 * attaches where, and the Deno permission flags this pipeline needs.
 */
import type { Pipeline, StageNode } from "./load.ts";
import { defaultOf, type KeySpec } from "./schema.ts";
import { formatDuration, formatSize } from "../units.ts";

/** Environment variables the `yaml` package reads (debug switches), always granted. */
const YAML_ENV = ["LOG_TOKENS", "LOG_STREAM"];

/**
 * The first permission `pipeline` needs that this process does not hold, as the flag that
 * grants it (e.g. `--allow-write=/var/log/b.jsonl`), or undefined when it holds them all.
 */
export function missingPermission(pipeline: Pipeline): string | undefined {
  const q = (d: Deno.PermissionDescriptor) => Deno.permissions.querySync(d).state === "granted";
  for (const s of pipeline.stages) {
    const e = s.def.explain?.(s.config);
    for (const path of e?.reads ?? []) {
      if (!q({ name: "read", path })) return `--allow-read=${path}`;
    }
    for (const path of e?.writes ?? []) {
      if (!q({ name: "write", path })) return `--allow-write=${path}`;
    }
    for (const host of e?.net ?? []) {
      if (!q({ name: "net", host })) return `--allow-net=${host}`;
    }
    if (s.kind === "probe" && !q({ name: "ffi" })) return "--allow-ffi";
  }
  for (const variable of pipeline.source.variables) {
    if (!q({ name: "env", variable })) return `--allow-env=${variable}`;
  }
  return undefined;
}

/** The Deno permission flags `pipeline` needs, as `deno run` arguments. */
export function permissionFlags(pipeline: Pipeline): string[] {
  const reads = new Set<string>([".", pipeline.file]);
  const writes = new Set<string>(), net = new Set<string>();
  for (const s of pipeline.stages) {
    const e = s.def.explain?.(s.config);
    e?.net?.forEach((h) => net.add(h));
    // A path that came from ${VAR} is shown as written (a shell expands it), never its value.
    const shown = templatesOf(pipeline, s);
    // A derived path (a rotated `out.jsonl.1`) keeps the ${VAR} of the path it extends.
    const asWritten = (p: string) => {
      for (const [value, template] of shown) {
        if (p === value || p.startsWith(`${value}.`)) return template + p.slice(value.length);
      }
      return p;
    };
    e?.reads?.forEach((p) => reads.add(asWritten(p)));
    e?.writes?.forEach((p) => writes.add(asWritten(p)));
  }
  const env = [...YAML_ENV, ...pipeline.source.variables];
  const flags = [
    // Plain --allow-ffi: a path-scoped one breaks UnsafePointerView (denoland/deno#15511).
    ...(pipeline.stages.some((s) => s.kind === "probe") ? ["--allow-ffi"] : []),
    `--allow-read=${[...reads].join(",")}`,
    ...(writes.size ? [`--allow-write=${[...writes].join(",")}`] : []),
    "--allow-sys=hostname",
    `--allow-env=${env.join(",")}`,
    "--deny-run",
    net.size ? `--allow-net=${[...net].join(",")}` : "--deny-net",
  ];
  return flags;
}

/** Substituted value → the text as written, for the stage's keys that used `${VAR}`. */
function templatesOf(pipeline: Pipeline, s: StageNode): Map<string, string> {
  const shown = new Map<string, string>();
  for (const [key, value] of Object.entries(s.raw)) {
    const template = pipeline.source.template(`${s.section}.${s.name}.${key}`);
    if (template !== undefined && typeof value === "string") shown.set(value, template);
  }
  return shown;
}

/** `--explain`: a readable account of the pipeline. */
export function explainText(pipeline: Pipeline): string {
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
  }
  for (const w of pipeline.warnings) lines.push("", `warning: ${w.message}`);
  lines.push(
    "",
    "permissions this pipeline needs:",
    `  deno run ${permissionFlags(pipeline).join(" ")} src/main.ts --pipeline ${pipeline.file}`,
  );
  return lines.join("\n") + "\n";
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

/**
 * Loads a pipeline file into a checked graph of stages. Everything that could fail later is
 * checked here, offline and without root: YAML syntax, `${VAR}`s, each stage's keys (schema and
 * `validate`), and the graph (unknown or cyclic inputs, outputs with no input, stages nobody
 * reads). All problems come back at once, each with `file:line:column` and its key path.
 *
 * ```yaml
 * version: 1
 * probes:      # kernel sources; no inputs
 *   bash: { type: bash }
 * transforms:  # record by record
 *   no_ls: { type: filter, inputs: [bash], drop: { field: cmd, prefix: "ls" } }
 * windows:     # aggregation (type defaults to window)
 *   per_user: { inputs: [no_ls], every: 60s, group_by: [user], fields: { n: { agg: count } } }
 * outputs:
 *   console: { type: stdout, inputs: [no_ls], format: json }
 * ```
 */
import { ConfigError, ConfigErrors, UserError, whyUnreadable } from "../errors.ts";
import { REGISTRY, type Section, SECTIONS } from "./registry.ts";
import {
  At,
  describeValue,
  didYouMean,
  isTable,
  readWithSchema,
  suggestion,
  type Table,
} from "./schema.ts";
import type { StageDef, StageKind } from "./stage.ts";
import { parseTests, type PipelineTest } from "./tests.ts";
import { YamlSource } from "./yaml_source.ts";

/** One configured stage and its place in the graph. */
export interface StageNode {
  name: string;
  section: Section;
  kind: StageKind;
  def: StageDef;
  /** What `readWithSchema` (and custom parsers) made of the stage's keys. */
  config: { [key: string]: unknown };
  /** The stage's mapping as written (after `${VAR}` substitution). */
  raw: Table;
  /** Stages whose records this one takes. */
  inputs: string[];
  /** Side inputs: schema keys of type `stage`, e.g. `answers_from: dns`. */
  sideInputs: { key: string; stage: string }[];
  /** Probes only: a failure to load is fatal instead of disabling the probe. */
  required: boolean;
}

/** A checked pipeline: stages in graph order (every stage after all it reads from). */
export interface Pipeline {
  file: string;
  source: YamlSource;
  stages: StageNode[];
  /** Problems that do not stop it (e.g. a stage nobody reads). */
  warnings: ConfigError[];
  /** The `tests:` section, for `--test`. */
  tests: PipelineTest[];
}

const TOP_LEVEL = ["version", ...SECTIONS, "tests"];
const KIND_OF: { [section in Section]: StageKind } = {
  probes: "probe",
  transforms: "transform",
  windows: "window",
  outputs: "output",
};

/** Environment lookups for `${VAR}`. */
export type EnvLookup = (name: string) => string | undefined;

/** Parses and checks pipeline text; throws ConfigErrors listing every problem. */
export function parsePipeline(
  file: string,
  text: string,
  env: EnvLookup = () => undefined,
): Pipeline {
  const { source, errors } = YamlSource.parse(file, text, env);
  if (!source) throw new ConfigErrors(errors);
  const root = source.value;
  const top = new At(source, "", errors);
  if (!isTable(root)) {
    throw new ConfigErrors([
      ...errors,
      top.problem("a pipeline is a mapping with version, probes and outputs"),
    ]);
  }
  const unknown = Object.keys(root).filter((key) => !TOP_LEVEL.includes(key));
  for (const key of unknown) {
    {
      top.child(key).reportKey(
        `unknown section "${key}"${suggestion(key, TOP_LEVEL)}; known: ${TOP_LEVEL.join(", ")}`,
      );
    }
  }
  if (root.version !== 1) {
    top.child("version").report(`must be 1, got ${describeValue(root.version)}`);
  }

  const stages: StageNode[] = [];
  const seen = new Map<string, Section>();
  for (const section of SECTIONS) {
    const table = root[section];
    const at = top.child(section);
    if (table === undefined || table === null) {
      // A misspelt section (`output:`) is reported as such; "missing" would be a follow-on.
      const misspelt = unknown.some((key) => didYouMean(key, [section]) === section);
      if ((section === "probes" || section === "outputs") && !misspelt) {
        at.report(`needs at least one stage`);
      }
      continue;
    }
    if (!isTable(table)) {
      at.report(`expected a mapping of stage names to stages, got ${describeValue(table)}`);
      continue;
    }
    for (const [name, value] of Object.entries(table)) {
      const read = readStage(section, name, value, at.child(name), seen);
      if (read) {
        stages.push(read.node);
        errors.push(...read.problems);
      }
    }
  }
  const warnings: ConfigError[] = [];
  const ordered = checkGraph(stages, new Set(seen.keys()), source, errors, warnings);
  const tests = errors.length === 0 ? parseTests(root.tests, top.child("tests"), ordered) : [];
  if (errors.length > 0) throw new ConfigErrors(byPosition(errors));
  return { file, source, stages: ordered, warnings: byPosition(warnings), tests };
}

function readStage(
  section: Section,
  name: string,
  value: unknown,
  at: At,
  seen: Map<string, Section>,
): { node: StageNode; problems: ConfigError[] } | undefined {
  const previous = seen.get(name);
  if (previous) {
    at.reportKey(
      `a stage named "${name}" is already in ${previous}: stage names are unique across the file`,
    );
    return undefined;
  }
  seen.set(name, section);
  if (!isTable(value)) {
    at.report(`expected a mapping with a type, got ${describeValue(value)}`);
    return undefined;
  }
  const registry = REGISTRY[section];
  const type = value.type ?? (section === "windows" ? "window" : undefined);
  if (type === undefined) {
    at.reportKey(`needs a type (one of: ${[...registry.keys()].join(", ")})`);
    return undefined;
  }
  const def = registry.get(String(type));
  if (!def) {
    const where = [...SECTIONS].find((s) => REGISTRY[s].has(String(type)));
    const hint = where
      ? ` (a ${type} stage belongs in ${where})`
      : suggestion(String(type), registry.keys());
    at.child("type").report(
      `unknown ${section.slice(0, -1)} type "${type}"${hint}; known: ${
        [...registry.keys()].join(", ")
      }`,
    );
    return undefined;
  }
  const isProbe = section === "probes";
  const reserved = isProbe ? ["type", "required"] : ["type", "inputs"];
  const before = at.reported;
  if (isProbe && "inputs" in value) {
    at.child("inputs").reportKey("a probe reads the kernel, not other stages: remove inputs");
    delete (value as Table).inputs; // reported: keep it out of the unknown-key check
  }
  const config = readWithSchema(def.schema, value, at, reserved);

  let inputs: string[] = [];
  if (!isProbe) {
    const v = value.inputs;
    const list = typeof v === "string" ? [v] : v;
    if (v === undefined || v === null) {
      at.reportKey(`needs inputs: the stages it reads from, e.g. inputs: [bash]`);
    } else if (!Array.isArray(list)) {
      at.child("inputs").report(`expected a list of stage names, got ${describeValue(v)}`);
    } else if (list.length === 0) {
      at.child("inputs").report(`needs at least one stage name, e.g. inputs: [bash]`);
    } else {
      list.forEach((item, i) => {
        if (typeof item !== "string" || item === "") {
          at.child("inputs").child(i).report(`expected a stage name, got ${describeValue(item)}`);
        }
      });
      inputs = list.filter((item) => typeof item === "string" && item !== "");
    }
  }
  let required = false;
  if (isProbe && value.required !== undefined) {
    if (typeof value.required === "boolean") required = value.required;
    else {at.child("required").report(
        `expected true or false, got ${describeValue(value.required)}`,
      );}
  }
  const sideInputs = Object.entries(def.schema)
    .filter(([key, spec]) => spec.type === "stage" && typeof config[key] === "string")
    .map(([key]) => ({ key, stage: config[key] as string }));
  // Cross-key checks only when the keys themselves are fine (no follow-on errors).
  const problems = at.reported === before && def.validate ? def.validate(config, at) : [];
  return {
    node: {
      name,
      section,
      kind: KIND_OF[section],
      def,
      config,
      raw: value,
      inputs,
      sideInputs,
      required,
    },
    problems,
  };
}

/**
 * Checks references and cycles, warns about stages nobody reads, and returns the stages in
 * graph order (Kahn's algorithm; ties keep file order).
 */
function checkGraph(
  stages: StageNode[],
  declared: Set<string>,
  source: YamlSource,
  errors: ConfigError[],
  warnings: ConfigError[],
): StageNode[] {
  const byName = new Map(stages.map((s) => [s.name, s]));
  const readers = new Map<string, number>(stages.map((s) => [s.name, 0]));
  const path = (s: StageNode) => `${s.section}.${s.name}`;
  const refs = (s: StageNode) => [
    ...s.inputs.map((stage, i) => ({ stage, at: `${path(s)}.inputs[${i}]` })),
    ...s.sideInputs.map(({ key, stage }) => ({ stage, at: `${path(s)}.${key}` })),
  ];
  for (const s of stages) {
    for (const ref of refs(s)) {
      const target = byName.get(ref.stage);
      if (!target && declared.has(ref.stage)) {
        // The stage exists but has errors of its own, reported already: no follow-on error.
      } else if (!target) {
        errors.push(
          source.error(
            ref.at,
            `no stage named "${ref.stage}"${suggestion(ref.stage, byName.keys())}`,
          ),
        );
      } else if (target.kind === "output") {
        errors.push(
          source.error(ref.at, `"${ref.stage}" is an output: outputs have no records to read`),
        );
      } else if (target === s) {
        errors.push(source.error(ref.at, `a stage cannot read its own records`));
      } else readers.set(ref.stage, readers.get(ref.stage)! + 1);
    }
  }
  for (const s of stages) {
    if (s.kind !== "output" && readers.get(s.name) === 0) {
      warnings.push(
        new ConfigError(
          source.keyAt(path(s)),
          path(s),
          "nothing reads this stage's records (add it to some stage's inputs)",
        ),
      );
    }
  }
  // Graph order; whatever is left over sits on a cycle.
  const pending = new Map(
    stages.map((s) => [
      s.name,
      refs(s).filter((r) => byName.has(r.stage) && r.stage !== s.name).length,
    ]),
  );
  const ordered: StageNode[] = [];
  for (let progress = true; progress;) {
    progress = false;
    for (const s of stages) {
      if (pending.get(s.name) !== 0) continue;
      pending.delete(s.name);
      ordered.push(s);
      progress = true;
      for (const t of stages) {
        if (pending.has(t.name)) {
          const n = refs(t).filter((r) => r.stage === s.name).length;
          if (n) pending.set(t.name, pending.get(t.name)! - n);
        }
      }
    }
  }
  // Left over: stages on a cycle, and stages downstream of one. Name only those on it.
  const onCycle = stages.filter((s) => pending.has(s.name) && reaches(s, byName, refs));
  if (onCycle.length > 0) {
    const first = onCycle[0];
    const names = onCycle.map((s) => s.name).join(", ");
    errors.push(
      source.error(
        `${path(first)}.inputs`,
        `inputs form a cycle through ${names}: records would loop forever`,
      ),
    );
  }
  return ordered;
}

/** Whether records can flow from `start` (through inputs and side inputs) back into it. */
function reaches(
  start: StageNode,
  byName: Map<string, StageNode>,
  refs: (s: StageNode) => { stage: string }[],
): boolean {
  const seen = new Set<string>();
  const stack = refs(start).map((r) => r.stage);
  while (stack.length) {
    const name = stack.pop()!;
    if (name === start.name) return true;
    const node = byName.get(name);
    if (seen.has(name) || !node) continue;
    seen.add(name);
    stack.push(...refs(node).map((r) => r.stage));
  }
  return false;
}

/** Problems in file order, so the first printed is the first in the file. */
function byPosition(errors: ConfigError[]): ConfigError[] {
  return errors.toSorted((a, b) => a.line - b.line || a.column - b.column);
}

/** Reads and checks a pipeline file (reading `${VAR}`s from the environment). */
export function loadPipeline(file: string): Pipeline {
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (e) {
    throw new UserError(`cannot read pipeline ${file}: ${whyUnreadable(file, e)}`, 2);
  }
  return parsePipeline(file, text, (name) => Deno.env.get(name));
}

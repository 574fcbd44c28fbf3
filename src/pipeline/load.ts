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
import type { StageKind } from "./stage.ts";
import type { Pipeline, StageNode } from "./pipeline.ts";
import { parseTests } from "./tests_section.ts";
import { graphOrder } from "./graph.ts";
import { ShownText } from "./shown.ts";
import { YamlSource } from "./yaml_source.ts";
import { formatDuration, formatSize } from "../units.ts";

export type { Pipeline, StageNode };

/** The largest pipeline file read: bigger ones are refused before parsing (1.9 GB for 10 MB). */
export const MAX_PIPELINE_BYTES = 1024 * 1024;
/** The most stages a file may have. */
export const MAX_STAGES = 1000;

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
  if (text.length > MAX_PIPELINE_BYTES) {
    const reason = `the file is larger than ${formatSize(MAX_PIPELINE_BYTES)}`;
    throw new ConfigErrors([new ConfigError({ file, line: 1, column: 1 }, "", reason)]);
  }
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
  let tooMany = false;
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
      if (seen.size === MAX_STAGES) {
        if (!tooMany) {
          at.child(name).reportKey(
            `more than ${MAX_STAGES} stages: split the pipeline across collectors`,
          );
        }
        tooMany = true;
        break;
      }
      const read = readStage(section, name, value, at.child(name), seen);
      if (read) {
        stages.push(read.node);
        errors.push(...read.problems);
      }
    }
  }
  const warnings: ConfigError[] = deprecatedKeys(stages, source);
  const ordered = checkGraph(stages, new Set(seen.keys()), source, errors, warnings);
  checkStandardOutput(stages, source, errors);
  if (errors.length === 0) checkGrantablePaths(ordered, top);
  const tests = errors.length === 0 ? parseTests(root.tests, top.child("tests"), ordered) : [];
  if (errors.length > 0) {
    // A reason may quote a value (a bad URL): shown as written, never a secret (shown.ts).
    const shown = ShownText.of({ source, stages });
    throw new ConfigErrors(
      byPosition(errors).map((e) => new ConfigError(e, e.path, shown.mask(e.reason))),
    );
  }
  return { file, source, stages: ordered, warnings: byPosition(warnings), tests };
}

/** A warning for each key a stage sets that its schema marks deprecated. */
function deprecatedKeys(stages: StageNode[], source: YamlSource): ConfigError[] {
  const warnings: ConfigError[] = [];
  for (const node of stages) {
    for (const [key, spec] of Object.entries(node.def.schema)) {
      if (spec.deprecated === undefined || node.raw[key] === undefined) continue;
      const at = new At(source, `${node.section}.${node.name}`, []).child(key);
      warnings.push(at.problem(`is deprecated and ignored: ${spec.deprecated}`));
    }
  }
  return warnings;
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
      const named = new Set<string>();
      list.forEach((item, i) => {
        if (typeof item !== "string" || item === "") {
          at.child("inputs").child(i).report(`expected a stage name, got ${describeValue(item)}`);
        } else if (named.has(item)) {
          at.child("inputs").child(i).report(
            `"${item}" is already an input: each record would arrive twice`,
          );
        } else named.add(item);
      });
      inputs = [...named];
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
 * graph order (ties keep file order). Linear in stages and references (graph.ts).
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
  // Did-you-mean compares a name with every stage's: a few are a help, thousands a hang.
  let suggestions = 20;
  for (const s of stages) {
    for (const ref of refs(s)) {
      const target = byName.get(ref.stage);
      if (!target && declared.has(ref.stage)) {
        // The stage exists but has errors of its own, reported already: no follow-on error.
      } else if (!target) {
        const hint = suggestions-- > 0 ? suggestion(ref.stage, byName.keys()) : "";
        errors.push(source.error(ref.at, `no stage named "${ref.stage}"${hint}`));
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
  const { order, onCycle } = graphOrder(
    stages.map((s) => ({ name: s.name, reads: refs(s).map((r) => r.stage) })),
  );
  if (onCycle.length > 0) {
    const first = stages[onCycle[0]];
    const names = onCycle.map((i) => stages[i].name).join(", ");
    errors.push(
      source.error(
        `${path(first)}.inputs`,
        `inputs form a cycle through ${names}: records would loop forever`,
      ),
    );
  }
  return order.map((i) => stages[i]);
}

/**
 * An output that draws the terminal (`top`) has standard output to itself: at most one such,
 * and no `stdout` output beside it, whose lines would tear its frames (StageDef.standardOutput).
 */
function checkStandardOutput(stages: StageNode[], source: YamlSource, errors: ConfigError[]) {
  const users = stages.filter((s) => s.def.standardOutput !== undefined);
  const owner = users.find((s) => s.def.standardOutput === "exclusive");
  if (!owner) return;
  for (const s of users) {
    if (s === owner) continue;
    errors.push(
      source.error(
        `${s.section}.${s.name}.type`,
        `outputs.${owner.name} (type ${owner.def.type}) draws the terminal on standard output: ` +
          `it cannot share it with a ${s.def.type} output (use a file output instead)`,
      ),
    );
  }
}

/**
 * Refuses paths that a Deno permission flag cannot name: a comma splits `--allow-write=a,b` into
 * two grants (`/x,/etc/cron.d/evil`), a line break splits the printed command. Reported at the
 * key the path comes from (a file output's `path`), once per stage.
 */
function checkGrantablePaths(stages: StageNode[], top: At): void {
  for (const s of stages) {
    const e = s.def.explain?.(s.config);
    const bad = [...(e?.reads ?? []), ...(e?.writes ?? [])].find((p) => /[,\n\r]/.test(p));
    if (bad === undefined) continue;
    const key = Object.keys(s.config).find((k) => {
      const v = s.config[k];
      return typeof v === "string" && bad.startsWith(v);
    });
    const at = top.child(s.section).child(s.name);
    (key ? at.child(key) : at).report(
      `path ${describeValue(bad)} has a ${bad.includes(",") ? "comma" : "line break"}, ` +
        "which Deno's --allow-read and --allow-write lists cannot hold: choose another path",
    );
  }
}

/** Problems in file order, so the first printed is the first in the file. */
function byPosition(errors: ConfigError[]): ConfigError[] {
  return errors.toSorted((a, b) => a.line - b.line || a.column - b.column);
}

/** Reads and checks a pipeline file (reading `${VAR}`s from the environment). */
export async function loadPipeline(file: string): Promise<Pipeline> {
  return parsePipeline(file, await readPipelineText(file), (name) => Deno.env.get(name));
}

/** How long a reload may take to read the file (a hung network mount must not hang it). */
const RELOAD_READ_TIMEOUT_MS = 5000;

/**
 * Reads at most {@linkcode MAX_PIPELINE_BYTES} of `file`, without blocking the event loop
 * (collection and signals go on meanwhile): a larger file (or `/dev/zero`) is a UserError
 * (exit 2), as is one that cannot be read, never a read without end. With `reload`, only a
 * regular file (a FIFO in its place would wait for a writer; at start, `--pipeline /dev/stdin`
 * is fine, and a reload could not read it again anyway), read within 5 s.
 */
export async function readPipelineText(file: string, { reload = false } = {}): Promise<string> {
  const refuse = (why: string) => new UserError(`cannot read pipeline ${file}: ${why}`, 2);
  const read = async () => {
    if (reload) {
      // Checked before opening: open(2) on a FIFO blocks until a writer comes. (A symlink to a
      // regular file, as a Kubernetes ConfigMap mounts it, is fine.)
      const info = await Deno.stat(file).catch((e) => {
        throw refuse(whyUnreadable(file, e));
      });
      if (!info.isFile) throw refuse("not a regular file (a reload reads only a regular file)");
    }
    // One byte past the bound: a file larger than it is refused without reading it all.
    const buffer = new Uint8Array(MAX_PIPELINE_BYTES + 1);
    let length = 0;
    try {
      using f = await Deno.open(file);
      for (let n; length < buffer.length && (n = await f.read(buffer.subarray(length))) !== null;) {
        length += n;
      }
    } catch (e) {
      throw refuse(whyUnreadable(file, e));
    }
    if (length > MAX_PIPELINE_BYTES) throw refuse(`larger than ${formatSize(MAX_PIPELINE_BYTES)}`);
    return new TextDecoder().decode(buffer.subarray(0, length));
  };
  if (!reload) return await read();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(refuse(`not read within ${formatDuration(RELOAD_READ_TIMEOUT_MS)}`)),
      RELOAD_READ_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([read(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

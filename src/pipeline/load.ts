/**
 * Loads a pipeline file: YAML → checked stages. Every problem is collected and returned
 * together, each with its file:line:column. The file (version 1):
 *
 * ```yaml
 * version: 1
 * probes:
 *   bash: { type: bash }
 * outputs:
 *   console: { type: stdout, inputs: [bash], format: json }
 * ```
 */
import { ConfigError, ConfigErrors, UserError, whyUnreadable } from "../errors.ts";
import { OUTPUTS } from "../outputs/mod.ts";
import { PROBES } from "../probes/mod.ts";
import { Options } from "./options.ts";
import type { OutputDef, ProbeDef } from "./stage.ts";
import { YamlSource } from "./yaml_source.ts";

/** A configured probe. */
export interface ProbeStage {
  name: string;
  // deno-lint-ignore no-explicit-any
  def: ProbeDef<any>;
  config: unknown;
}

/** A configured output and the probes it reads. */
export interface OutputStage {
  name: string;
  // deno-lint-ignore no-explicit-any
  def: OutputDef<any>;
  config: unknown;
  inputs: string[];
}

/** A checked pipeline, ready to run. */
export interface Pipeline {
  file: string;
  probes: ProbeStage[];
  outputs: OutputStage[];
}

const SECTIONS = ["version", "probes", "outputs"];

type Table = { [key: string]: unknown };
const isTable = (v: unknown): v is Table =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Parses and checks pipeline text; throws ConfigErrors listing every problem. */
export function parsePipeline(file: string, text: string): Pipeline {
  const { source, errors } = YamlSource.parse(file, text);
  if (!source) throw new ConfigErrors(errors);
  const root = source.value;
  if (!isTable(root)) {
    throw new ConfigErrors([
      source.error("", "a pipeline is a mapping with version, probes and outputs"),
    ]);
  }

  for (const key of Object.keys(root)) {
    if (!SECTIONS.includes(key)) {
      errors.push(
        new ConfigError(source.keyAt(key), key, `unknown section (known: ${SECTIONS.join(", ")})`),
      );
    }
  }
  if (root.version !== 1) {
    errors.push(source.error("version", `must be 1, got ${JSON.stringify(root.version ?? null)}`));
  }

  const stagesOf = <D extends { type: string }>(
    section: string,
    registry: ReadonlyMap<string, D>,
  ) => {
    const table = root[section];
    const found: { name: string; def: D; options: Options }[] = [];
    if (!isTable(table) || Object.keys(table).length === 0) {
      errors.push(
        source.error(section, `needs at least one stage, e.g. ${section}: { name: { type: ... } }`),
      );
      return found;
    }
    for (const [name, value] of Object.entries(table)) {
      const path = `${section}.${name}`;
      if (!isTable(value)) {
        errors.push(source.error(path, "a stage is a mapping with a type"));
        continue;
      }
      if (value.type === undefined) {
        const known = [...registry.keys()].join(", ");
        errors.push(new ConfigError(source.keyAt(path), path, `needs a type (one of: ${known})`));
        continue;
      }
      const def = registry.get(String(value.type));
      if (!def) {
        const known = [...registry.keys()].join(", ");
        errors.push(
          source.error(
            value.type === undefined ? path : `${path}.type`,
            `unknown type ${JSON.stringify(value.type ?? null)} (known: ${known})`,
          ),
        );
        continue;
      }
      const options = new Options(source, path, value, errors);
      options.known("type");
      found.push({ name, def, options });
    }
    return found;
  };

  const probes = stagesOf("probes", PROBES).map(({ name, def, options }) => {
    const config = def.configure(options);
    options.rejectUnknown();
    return { name, def, config };
  });
  // Every probe the file names, even one with errors of its own (reported already).
  const probeNames = isTable(root.probes) ? Object.keys(root.probes) : [];
  const outputs = stagesOf("outputs", OUTPUTS).map(({ name, def, options }) => {
    const inputs = options.stringList("inputs");
    if (inputs.length === 0) options.error("inputs", "must name at least one probe");
    for (const input of inputs) {
      if (!probeNames.includes(input)) {
        options.error(
          "inputs",
          `no probe named "${input}" (probes: ${probeNames.join(", ") || "none"})`,
        );
      }
    }
    const config = def.configure(options);
    options.rejectUnknown();
    return { name, def, config, inputs };
  });
  for (const probe of probes) {
    if (!outputs.some((o) => o.inputs.includes(probe.name))) {
      const path = `probes.${probe.name}`;
      errors.push(
        new ConfigError(
          source.keyAt(path), // the probe's name, not the first line of its options
          path,
          "no output reads this probe (add it to an output's inputs)",
        ),
      );
    }
  }
  if (errors.length > 0) throw new ConfigErrors(errors);
  return { file, probes, outputs };
}

/** Reads and checks a pipeline file. */
export function loadPipeline(file: string): Pipeline {
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (e) {
    throw new UserError(`cannot read pipeline ${file}: ${whyUnreadable(file, e)}`, 2);
  }
  return parsePipeline(file, text);
}

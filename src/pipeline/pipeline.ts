/**
 * A checked pipeline, as the loader (load.ts) makes it and the runtime (run.ts), the tests'
 * runner (tests.ts), `--explain` and the permissions read it: its stages in graph order and
 * its tests. Types only, so none of those modules needs another to name them.
 */
import type { ConfigError } from "../errors.ts";
import type { FieldValue, Record } from "../record.ts";
import type { Condition } from "../transforms/condition/mod.ts";
import type { Section } from "./registry.ts";
import type { Table } from "./schema.ts";
import type { StageDef, StageKind } from "./stage.ts";
import type { YamlSource } from "./yaml_source.ts";

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

/** One test, checked and ready to run. */
export interface PipelineTest {
  name: string;
  inputStage: string;
  records: Record[];
  expectStage: string;
  /** Partial records to match, in order; undefined when not given. */
  expected?: PartialRecord[];
  count?: number;
  all?: Condition;
  none?: Condition;
}

/** The parts of a record an expectation names. */
export interface PartialRecord {
  measurement?: string;
  tags?: { [key: string]: string };
  fields?: { [key: string]: FieldValue };
  time?: bigint;
}

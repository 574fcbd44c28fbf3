/**
 * Stage schemas: each key's type, default and one-line doc, and the reader that checks a YAML
 * mapping against them. Every problem becomes a positioned ConfigError (unknown keys get a
 * did-you-mean); nothing throws, so one pass reports all mistakes in a file.
 */
import { ConfigError } from "../errors.ts";
import { parseDuration, parseSize } from "../units.ts";
import type { YamlSource } from "./yaml_source.ts";

interface Doc {
  /** One line for `--explain` and the docs. */
  doc: string;
  /** The key must be present. */
  required?: boolean;
  /** A credential: `--explain` shows it as `***` (or the `${VAR}` it came from), never its value. */
  secret?: boolean;
  /** Accepted for old files, but no longer used: the loader warns with this reason when set. */
  deprecated?: string;
}

/** The type of one key. */
export type KeySpec =
  | Doc & { type: "string"; default?: string; oneOf?: readonly string[] }
  | Doc & { type: "integer"; default?: number; min?: number; max?: number }
  | Doc & { type: "number"; default?: number; min?: number; max?: number }
  | Doc & { type: "boolean"; default?: boolean }
  /** Read as milliseconds: `500ms`, `60s`. */
  | Doc & { type: "duration"; default?: string }
  /** Read as bytes: `64KiB`. */
  | Doc & { type: "size"; default?: string }
  /** A list of strings; a single string counts as a list of one. */
  | Doc & { type: "strings"; default?: readonly string[] }
  /** A mapping of names to scalars (read as strings). */
  | Doc & { type: "string_map"; default?: { readonly [key: string]: string } }
  /** A side input: the name of another stage, checked like `inputs` (e.g. `answers_from`). */
  | Doc & { type: "stage" }
  /** Parses and compiles itself; reports problems through `at`. */
  | Doc & { type: "custom"; default?: unknown; parse(value: unknown, at: At): unknown };

/** The keys a stage type accepts. */
export type Schema = { readonly [key: string]: KeySpec };

/**
 * A place in the pipeline file (a key path) and where its problems go.
 *
 * @example
 * ```ts
 * at.child("rules").child(2).child("pattern").report("invalid regex: ...");
 * ```
 */
export class At {
  readonly source: YamlSource;
  /** Key path, e.g. `transforms.redact_cmd.rules[2].pattern`. */
  readonly path: string;
  readonly #sink: ConfigError[];

  constructor(source: YamlSource, path: string, sink: ConfigError[]) {
    this.source = source;
    this.path = path;
    this.#sink = sink;
  }

  /** The place of a key (string) or list item (number) below this one. */
  child(key: string | number): At {
    const path = typeof key === "number"
      ? `${this.path}[${key}]`
      : this.path
      ? `${this.path}.${key}`
      : key;
    return new At(this.source, path, this.#sink);
  }

  /** A ConfigError at this value's position (not reported: for `validate` to return). */
  problem(reason: string): ConfigError {
    return new ConfigError(this.source.at(this.path), this.path, reason);
  }

  /** Reports a problem with this value. */
  report(reason: string): void {
    this.#sink.push(this.problem(reason));
  }

  /** Reports a problem with this key itself (its name), e.g. an unknown key. */
  reportKey(reason: string): void {
    this.#sink.push(new ConfigError(this.source.keyAt(this.path), this.path, reason));
  }

  /** How many problems have been reported so far (to tell whether a parse succeeded). */
  get reported(): number {
    return this.#sink.length;
  }
}

/** A plain YAML mapping. */
export type Table = { [key: string]: unknown };

/** Whether a value is a YAML mapping. */
export function isTable(v: unknown): v is Table {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** How a value looks, for messages: `a string "x"`, `a list`, `nothing`. */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  // JSON quoting: a string with a newline (a block scalar) must not split the one-line error.
  if (typeof v === "string") {
    return v.length > 40 ? `${JSON.stringify(v.slice(0, 40)).slice(0, -1)}..."` : JSON.stringify(v);
  }
  return String(v);
}

/** The closest of `candidates` to `word`, if it is close enough to be a likely typo. */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined, bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(best.length / 3))
    ? best
    : undefined;
}

/** Edit distance counting a swap of two neighbours as one edit (`form` → `from`). */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/** ` (did you mean "x"?)` or an empty string. */
export function suggestion(word: string, candidates: Iterable<string>): string {
  const best = didYouMean(word, candidates);
  return best ? ` (did you mean "${best}"?)` : "";
}

/**
 * Reads `value` (a stage's mapping) against `schema`. Keys in `reserved` (e.g. `type`,
 * `inputs`) are the loader's and are skipped. Returns the config: each key's parsed value, or
 * its default, or undefined.
 */
export function readWithSchema(
  schema: Schema,
  value: Table,
  at: At,
  reserved: readonly string[],
): { [key: string]: unknown } {
  const config: { [key: string]: unknown } = {};
  for (const key of Object.keys(value)) {
    if (key in schema || reserved.includes(key)) continue;
    const known = [...Object.keys(schema), ...reserved];
    at.child(key).reportKey(
      `unknown key "${key}"${suggestion(key, known)}; known: ${known.join(", ")}`,
    );
  }
  for (const [key, spec] of Object.entries(schema)) {
    const v = value[key];
    if (v === undefined || v === null) {
      if (spec.required) at.child(key).report(`is required: ${spec.doc}`);
      config[key] = defaultOf(spec);
      continue;
    }
    config[key] = readValue(spec, v, at.child(key));
  }
  return config;
}

/** The default of a key, parsed (durations and sizes become numbers). */
export function defaultOf(spec: KeySpec): unknown {
  if (spec.type === "duration" && spec.default !== undefined) return parseDuration(spec.default);
  if (spec.type === "size" && spec.default !== undefined) return parseSize(spec.default);
  return "default" in spec ? spec.default : undefined;
}

function readValue(spec: KeySpec, v: unknown, at: At): unknown {
  const bad = (expected: string) => {
    at.report(`expected ${expected}, got ${describeValue(v)}`);
    return defaultOf(spec);
  };
  switch (spec.type) {
    case "string":
      if (typeof v !== "string" || v === "") return bad("a non-empty string");
      if (spec.oneOf && !spec.oneOf.includes(v)) {
        at.report(
          `expected one of ${spec.oneOf.join(", ")}, got "${v}"${suggestion(v, spec.oneOf)}`,
        );
        return spec.default;
      }
      return v;
    case "integer":
    case "number": {
      const isInt = spec.type === "integer";
      if (typeof v !== "number" || !Number.isFinite(v) || (isInt && !Number.isInteger(v))) {
        return bad(isInt ? "an integer" : "a number");
      }
      if ((spec.min !== undefined && v < spec.min) || (spec.max !== undefined && v > spec.max)) {
        const what = isInt ? "an integer" : "a number";
        if (spec.max === undefined) return bad(`${what} of at least ${spec.min}`);
        if (spec.min === undefined) return bad(`${what} of at most ${spec.max}`);
        return bad(`${what} from ${spec.min} to ${spec.max}`);
      }
      return v;
    }
    case "boolean":
      return typeof v === "boolean" ? v : bad("true or false");
    case "duration":
    case "size": {
      const parse = spec.type === "duration" ? parseDuration : parseSize;
      let parsed: number;
      try {
        parsed = parse(String(v));
      } catch (e) {
        at.report((e as Error).message);
        return defaultOf(spec);
      }
      // Timers run on whole milliseconds: 1.0005s would be a promise no timer keeps.
      if (spec.type === "duration" && !Number.isInteger(parsed)) {
        at.report(`expected whole milliseconds, got "${v}"`);
        return defaultOf(spec);
      }
      return parsed;
    }
    case "strings": {
      const list = typeof v === "string" ? [v] : v;
      if (!Array.isArray(list)) return bad("a list of strings");
      list.forEach((item, i) => {
        if (typeof item !== "string" || item === "") {
          at.child(i).report(`expected a non-empty string, got ${describeValue(item)}`);
        }
      });
      return list.filter((item) => typeof item === "string");
    }
    case "string_map": {
      if (!isTable(v)) return bad("a mapping of names to values");
      const out: { [key: string]: string } = {};
      for (const [k, item] of Object.entries(v)) {
        if (typeof item === "object" || item === null) {
          at.child(k).report(`expected a string, number or boolean, got ${describeValue(item)}`);
        } else out[k] = String(item);
      }
      return out;
    }
    case "stage":
      return typeof v === "string" && v !== "" ? v : bad("the name of a stage");
    case "custom":
      return spec.parse(v, at);
  }
}

/**
 * A `custom` parser for a list of integers in `min..max` (a single value counts as a list of
 * one), each bad item reported at its position as "expected <what> (an integer min..max)".
 * With `nonEmpty`, an empty list is reported too.
 */
export function integerList(what: string, min: number, max: number, nonEmpty = false) {
  return (value: unknown, at: At): number[] | undefined => {
    const list = Array.isArray(value) ? value : [value];
    let ok = true;
    if (nonEmpty && list.length === 0) {
      at.report(`expected at least one ${what.replace(/^an? /, "")}, got an empty list`);
      ok = false;
    }
    list.forEach((item, i) => {
      if (typeof item !== "number" || !Number.isInteger(item) || item < min || item > max) {
        (Array.isArray(value) ? at.child(i) : at).report(
          `expected ${what} (an integer ${min}..${max}), got ${describeValue(item)}`,
        );
        ok = false;
      }
    });
    return ok ? list as number[] : undefined;
  };
}

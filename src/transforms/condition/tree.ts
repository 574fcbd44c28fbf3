/**
 * The condition tree: `all`, `any` and `not` over leaves, each leaf a subject (`tag` or
 * `field`) and one operator (operators.ts), with the messages that name a misspelt key.
 *
 * @module
 */
import type { Record } from "../../record.ts";
import { type At, describeValue, didYouMean, isTable } from "../../pipeline/schema.ts";
import { compileOperator, CONDITION_OPERATORS, type ConditionOperator } from "./operators.ts";

/** A compiled condition: a predicate over records plus its one-line text for `--explain`. */
export interface Condition {
  /** Whether `record` matches. Never throws, never mutates the record. */
  test(record: Record): boolean;
  /**
   * The condition in one line, e.g. `field cmd prefix "ls" and not (tag host in ["a", "b"])`.
   * Values written with `${VAR}` show the variable, never its value.
   */
  readonly text: string;
}

const COMBINATORS = ["all", "any", "not"] as const;
const LEAF_KEYS = ["tag", "field", "flags"] as const;
const ALL_KEYS: readonly string[] = [...CONDITION_OPERATORS, ...LEAF_KEYS, ...COMBINATORS];

// Names people reach for from other languages; edit distance alone would not find these.
const ALIASES: ReadonlyMap<string, string> = new Map(Object.entries({
  startswith: "prefix",
  starts_with: "prefix",
  begins_with: "prefix",
  endswith: "suffix",
  ends_with: "suffix",
  includes: "contains",
  contain: "contains",
  has: "contains",
  substring: "contains",
  eq: "equals",
  equal: "equals",
  is: "equals",
  "==": "equals",
  match: "regex",
  matches: "regex",
  regexp: "regex",
  pattern: "regex",
  one_of: "in",
  oneof: "in",
  any_of: "in",
  network: "cidr",
  subnet: "cidr",
  greater_than: "gt",
  ">": "gt",
  ge: "gte",
  ">=": "gte",
  less_than: "lt",
  "<": "lt",
  le: "lte",
  "<=": "lte",
  present: "exists",
  missing: "exists",
  and: "all",
  or: "any",
  key: "field",
}));

// Negated operators have no name of their own: `not:` wraps any condition.
const NEGATIONS = new Set(["ne", "neq", "not_equals", "not_in", "!=", "not_contains"]);

/**
 * Compiles a YAML value into a {@linkcode Condition}, reporting every problem through `at` (at
 * the exact sub-path, e.g. `transforms.f.keep.all[1].regex`). Never throws; returns undefined
 * when anything was reported.
 *
 * @example
 * ```ts
 * const c = parseCondition({ field: "cmd", prefix: "sudo " }, at);
 * c?.test(record); // true for `sudo reboot`
 * c?.text; // `field cmd prefix "sudo "`
 * ```
 */
export function parseCondition(value: unknown, at: At): Condition | undefined {
  const before = at.reported;
  const node = parseNode(value, at);
  return node && at.reported === before ? node : undefined;
}

/**
 * The one-line text of a condition for `--explain`: the compiled form rendered back (so it
 * reads the same whatever YAML layout was used), with `${VAR}` values shown by name.
 */
export function describeCondition(c: Condition): string {
  return c.text;
}

// ---------------------------------------------------------------------------------------------
// Tree

type Kind = "leaf" | "all" | "any" | "not";

interface Node extends Condition {
  readonly kind: Kind;
}

function parseNode(value: unknown, at: At): Node | undefined {
  if (Array.isArray(value)) {
    at.report("expected a condition (a mapping), got a list; wrap the list in all: or any:");
    return undefined;
  }
  if (!isTable(value)) {
    at.report(
      `expected a condition such as { field: cmd, prefix: "sudo " }, got ${describeValue(value)}`,
    );
    return undefined;
  }
  const keys = Object.keys(value);
  if (keys.length === 0) {
    at.report(`an empty condition; give "tag" or "field" and an operator, or all/any/not`);
    return undefined;
  }
  const combinators = keys.filter((k) => (COMBINATORS as readonly string[]).includes(k));
  if (combinators.length === 0) return parseLeaf(value, keys, at);

  if (combinators.length > 1) {
    at.report(
      `give one of all, any or not per mapping, got ${andList(combinators)}; nest them instead`,
    );
  }
  for (const k of keys) {
    if (combinators.includes(k)) continue;
    at.child(k).reportKey(
      ALL_KEYS.includes(k) || ALIASES.has(k)
        ? `"${k}" cannot sit beside "${combinators[0]}"; move it into a condition of its own`
        : unknownKeyMessage(k),
    );
  }
  const which = combinators[0] as "all" | "any" | "not";
  if (which === "not") {
    const inner = parseNode(value.not, at.child("not"));
    if (!inner) return undefined;
    return { kind: "not", text: `not (${inner.text})`, test: (r) => !inner.test(r) };
  }
  return parseList(which, value[which], at.child(which));
}

function parseList(kind: "all" | "any", value: unknown, at: At): Node | undefined {
  if (!Array.isArray(value) || value.length === 0) {
    at.report(
      Array.isArray(value)
        ? "expected a list of conditions, got an empty list"
        : `expected a list of conditions, got ${describeValue(value)}`,
    );
    return undefined;
  }
  const parts = value.map((item, i) => parseNode(item, at.child(i)));
  if (parts.some((p) => p === undefined)) return undefined;
  const nodes = parts as Node[];
  if (nodes.length === 1) return nodes[0];
  const text = nodes
    .map((n) => (n.kind === "all" || n.kind === "any" ? `(${n.text})` : n.text))
    .join(kind === "all" ? " and " : " or ");
  const test = kind === "all"
    ? (r: Record) => {
      for (const n of nodes) if (!n.test(r)) return false;
      return true;
    }
    : (r: Record) => {
      for (const n of nodes) if (n.test(r)) return true;
      return false;
    };
  return { kind, text, test };
}

function unknownKeyMessage(key: string): string {
  if (NEGATIONS.has(key.toLowerCase())) {
    return `unknown operator "${key}" (wrap the condition in not: { ... } to negate it)`;
  }
  const meant = ALIASES.get(key.toLowerCase()) ?? didYouMean(key, ALL_KEYS);
  if (meant !== undefined && !(CONDITION_OPERATORS as readonly string[]).includes(meant)) {
    return `unknown key "${key}" (did you mean "${meant}"?)`;
  }
  const hint = meant !== undefined ? ` (did you mean "${meant}"?)` : "";
  return `unknown operator "${key}"${hint}; operators: ${CONDITION_OPERATORS.join(", ")}`;
}

// ---------------------------------------------------------------------------------------------
// Leaves

function parseLeaf(value: { [key: string]: unknown }, keys: string[], at: At): Node | undefined {
  const before = at.reported;
  const ops = keys.filter((k) =>
    (CONDITION_OPERATORS as readonly string[]).includes(k)
  ) as ConditionOperator[];
  const unknown = keys.filter((k) => !ALL_KEYS.includes(k));
  for (const k of unknown) at.child(k).reportKey(unknownKeyMessage(k));
  // A misspelt key is reported once, not again as the thing it was meant to be.
  const meant = unknown.map((k) => ALIASES.get(k.toLowerCase()) ?? didYouMean(k, ALL_KEYS));
  const subjectMisspelt = meant.some((m) => m === "tag" || m === "field");

  // Which value: exactly one of tag and field, naming it.
  const subjects = (["tag", "field"] as const).filter((k) => k in value);
  let name: string | undefined;
  if (subjects.length === 0) {
    if (!subjectMisspelt) {
      at.report(`a condition needs "tag" or "field" (the value to test), e.g. { field: cmd, ... }`);
    }
  } else if (subjects.length === 2) {
    at.child("field").reportKey(`give either "tag" or "field", not both`);
  } else {
    const v = value[subjects[0]];
    if (typeof v === "string" && v !== "") name = v;
    else at.child(subjects[0]).report(`expected a ${subjects[0]} name, got ${describeValue(v)}`);
  }
  const isTag = subjects[0] === "tag";

  if ("flags" in value && !ops.includes("regex")) {
    at.child("flags").reportKey(`"flags" goes with "regex" only`);
  }
  if (ops.length === 0) {
    // An unknown key next to no operator was most likely meant as one: reported above.
    if (unknown.length === meant.filter((m) => m === "tag" || m === "field").length) {
      at.report(`needs an operator: one of ${CONDITION_OPERATORS.join(", ")}`);
    }
  } else if (ops.length > 1) {
    at.report(`needs exactly one operator, got ${andList(ops)}`);
  }
  const compiled = ops.length === 1
    ? compileOperator(ops[0], value[ops[0]], at, isTag, value.flags)
    : undefined;
  if (!compiled || name === undefined || at.reported !== before) return undefined;

  const { match, missing = false } = compiled;
  const text = `${subjects[0]} ${name} ${compiled.text}`;
  const key = name;
  const test = isTag
    ? (r: Record) => Object.hasOwn(r.tags, key) ? match(r.tags[key]) : missing
    : (r: Record) => Object.hasOwn(r.fields, key) ? match(r.fields[key]) : missing;
  return { kind: "leaf", text, test };
}
/** `a`, `a and b`, `a, b and c`. */
function andList(words: readonly string[]): string {
  return words.length <= 1
    ? words.join("")
    : `${words.slice(0, -1).join(", ")} and ${words[words.length - 1]}`;
}

/**
 * The operators of a condition leaf, each compiled once at load into a {@linkcode Matcher} of
 * a present value: `equals` and `in` here, with prefix, suffix, contains and exists; the
 * numeric ones through numbers.ts, `regex` through regex.ts, `cidr` through cidr.ts.
 *
 * @module
 */
import type { FieldValue } from "../../record.ts";
import { type At, describeValue } from "../../pipeline/schema.ts";
import { compileCidr } from "./cidr.ts";
import type { Compiled, Matcher } from "./compiled.ts";
import { checkSafe, compareNumbers, exactNumber, numericValue, readThreshold } from "./numbers.ts";
import { compileRegex, LINEAR } from "./regex.ts";

/** The operators a leaf condition may use, in the order messages list them. */
export const CONDITION_OPERATORS = [
  "equals",
  "in",
  "prefix",
  "suffix",
  "contains",
  "regex",
  "cidr",
  "gt",
  "gte",
  "lt",
  "lte",
  "exists",
] as const;

/** One of {@linkcode CONDITION_OPERATORS}. */
export type ConditionOperator = typeof CONDITION_OPERATORS[number];

/**
 * Compiles operator `op` with its YAML `value` (and `flags`, a regex's sibling key), reporting
 * problems at `leaf.op`; `isTag`: the subject is a tag, whose values are strings.
 */
export function compileOperator(
  op: ConditionOperator,
  value: unknown,
  leaf: At,
  isTag: boolean,
  flags: unknown,
): Compiled | undefined {
  const at = leaf.child(op);
  switch (op) {
    case "equals": {
      const want = readScalar(value, at);
      if (want === undefined) return undefined;
      return { match: equalsMatcher([want], isTag), text: `equals ${show(want, at)}` };
    }
    case "in": {
      const list = Array.isArray(value) ? value : [value];
      if (list.length === 0) {
        at.report("expected a list of values, got an empty list");
        return undefined;
      }
      const itemAt = (i: number) => Array.isArray(value) ? at.child(i) : at;
      const wants = list.map((v, i) => readScalar(v, itemAt(i)));
      if (wants.some((w) => w === undefined)) return undefined;
      const scalars = wants as Scalar[];
      const shown = scalars.map((w, i) => show(w, itemAt(i))).join(", ");
      return { match: equalsMatcher(scalars, isTag), text: `in [${shown}]` };
    }
    case "prefix":
    case "suffix":
    case "contains": {
      if (typeof value !== "string" || value === "") {
        at.report(`expected a non-empty string, got ${describeValue(value)}`);
        return undefined;
      }
      const s = value;
      const match: Matcher = op === "prefix"
        ? (v) => textOf(v).startsWith(s)
        : op === "suffix"
        ? (v) => textOf(v).endsWith(s)
        : (v) => textOf(v).includes(s);
      return { match, text: `${op} ${show(s, at)}` };
    }
    case "regex": {
      const re = compileRegex(value, flags, at, leaf.child("flags"), "gy");
      if (!re) return undefined;
      const source = leaf.source.template(at.path) ?? re.source;
      const shownFlags = re.flags.replace(LINEAR, "");
      return { match: (v) => re.test(textOf(v)), text: `regex /${source}/${shownFlags}` };
    }
    case "cidr":
      return compileCidr(value, at);
    case "gt":
    case "gte":
    case "lt":
    case "lte": {
      const t = readThreshold(value, at);
      if (t === undefined) return undefined;
      const pass: (c: number) => boolean = op === "gt"
        ? (c) => c > 0
        : op === "gte"
        ? (c) => c >= 0
        : op === "lt"
        ? (c) => c < 0
        : (c) => c <= 0;
      const match: Matcher = (v) => {
        const x = numericValue(v);
        return x !== undefined && pass(compareNumbers(x, t));
      };
      return { match, text: `${op} ${leaf.source.template(at.path) ?? String(t)}` };
    }
    case "exists": {
      if (typeof value !== "boolean") {
        at.report(`expected true or false, got ${describeValue(value)}`);
        return undefined;
      }
      const want = value;
      return { match: () => want, missing: !want, text: want ? "exists" : "is missing" };
    }
  }
}
// A value's text: strings as they are, integers as their digits, floats and booleans as JS
// prints them.
function textOf(v: FieldValue): string {
  return typeof v === "string" ? v : String(v);
}

// ---------------------------------------------------------------------------------------------
// equals / in

type Scalar = string | number | boolean;

function readScalar(v: unknown, at: At): Scalar | undefined {
  if (typeof v === "string" || typeof v === "boolean") return v;
  if (typeof v === "number" && Number.isFinite(v)) {
    if (!checkSafe(v, at)) return undefined;
    return v;
  }
  at.report(`expected a string, number or boolean, got ${describeValue(v)}`);
  return undefined;
}
// How a scalar is shown in `text`: strings quoted (or the `${VAR}` they came from).
function show(v: Scalar, at: At): string {
  const template = at.source.template(at.path);
  if (template !== undefined) return JSON.stringify(template);
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

function equalsMatcher(wants: readonly Scalar[], isTag: boolean): Matcher {
  if (isTag) {
    // Tags are strings: compare the scalar's text.
    const set = new Set(wants.map(String));
    return (v) => set.has(v as string);
  }
  const texts = new Set(wants.filter((w) => typeof w === "string") as string[]);
  const numbers = (wants.filter((w) => typeof w === "number") as number[]).map(exactNumber);
  const booleans = new Set(wants.filter((w) => typeof w === "boolean") as boolean[]);
  const equalsNumber = numbers.length === 0 ? () => false : (v: FieldValue) => {
    const x = numericValue(v);
    if (x === undefined) return false;
    for (const n of numbers) if (compareNumbers(x, n) === 0) return true;
    return false;
  };
  return (v) => {
    if (typeof v === "boolean") return booleans.has(v);
    if (texts.size > 0 && texts.has(textOf(v))) return true;
    return equalsNumber(v);
  };
}

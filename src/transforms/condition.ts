/**
 * The condition language: a YAML value that says which records match, shared by `filter` (and
 * later by other transforms). {@linkcode parseCondition} compiles it once, at load time, into a
 * predicate; regexes and CIDRs are built there, so testing a record allocates nothing but what
 * the value needs (a parsed IP, a number read from a string).
 *
 * ```yaml
 * drop:
 *   any:
 *     - { field: cmd, regex: "^(ls|cd|pwd)( |$)" }
 *     - all:
 *         - { tag: host, prefix: "ci-" }
 *         - { field: user, in: [runner, builder] }
 *     - not: { field: pid, gt: 1000 }
 * ```
 *
 * A leaf names one value (`tag: <name>` or `field: <name>`) and one operator:
 *
 * - `equals: <scalar>`, `in: [<scalar>, ...]` (a single scalar counts as a list of one).
 *   On a tag both compare the scalar's text (`equals: 5` matches the tag `"5"`). On a field:
 *   a string matches a field whose text is exactly that string (a string field as is, an integer
 *   as its digits, so `equals: "18446744073709551615"` reaches integers past 2^53); a number
 *   matches a field of the same numeric value (integer `5n`, float `5`, or a string holding a
 *   number such as pid `"4242"`); a boolean matches only a boolean field.
 * - `prefix`, `suffix`, `contains: <string>`: on the value's text (an integer's digits).
 * - `regex: <JS regex source>` with an optional sibling `flags: "m"` or `"s"`. It runs on V8's
 *   linear-time engine, so no pattern can stall the collector: one that engine cannot run
 *   (backreferences, lookahead, counted repetition above 16, the flags i, u, v, d) is refused
 *   at load (see {@linkcode compileRegex}).
 * - `cidr: <"10.0.0.0/8" | "fd00::/8" | "10.1.2.3" | list>`: the value must be an IP address;
 *   an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) also matches IPv4 networks.
 * - `gt`, `gte`, `lt`, `lte: <number>` (or a quoted integer past 2^53): numeric, exact for
 *   integers; a string holding a number compares as that number; anything else never matches.
 * - `exists: true | false`.
 *
 * A missing tag or field makes every operator false except `exists: false`.
 *
 * @module
 */
import type { FieldValue, Record } from "../record.ts";
import { type At, describeValue, didYouMean, isTable } from "../pipeline/schema.ts";

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

type Matcher = (v: FieldValue) => boolean;

/** An operator's compiled test of a present value, and its text after the subject. */
interface Compiled {
  match: Matcher;
  text: string;
  /** What a missing value gives (false, except for `exists: false`). */
  missing?: boolean;
}

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

function compileOperator(
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

/** `a`, `a and b`, `a, b and c`. */
function andList(words: readonly string[]): string {
  return words.length <= 1
    ? words.join("")
    : `${words.slice(0, -1).join(", ")} and ${words[words.length - 1]}`;
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

// YAML reads integers as JS numbers: past 2^53 they were rounded before we saw them.
function checkSafe(v: number, at: At): boolean {
  if (!Number.isInteger(v) || Number.isSafeInteger(v)) return true;
  at.report(
    `${v} is past 2^53 and was rounded when the YAML was read; quote it to keep it exact`,
  );
  return false;
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

// ---------------------------------------------------------------------------------------------
// Numbers: integers stay bigint so nothing past 2^53 is rounded.

type Num = bigint | number;

const INTEGER_TEXT = /^[+-]?\d+$/;
const DECIMAL_TEXT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** An integral number as bigint (exact), anything else as it is. */
function exactNumber(n: number): Num {
  return Number.isInteger(n) ? BigInt(n) : n;
}

/** The number a string holds (`"4242"`, `"-1.5"`, `"1e3"`), or undefined. */
function parseNumberText(s: string): Num | undefined {
  if (s.length === 0 || s.length > 400) return undefined;
  if (INTEGER_TEXT.test(s)) return BigInt(s);
  if (DECIMAL_TEXT.test(s)) return Number(s);
  return undefined;
}

function numericValue(v: FieldValue): Num | undefined {
  switch (typeof v) {
    case "bigint":
    case "number":
      return v;
    case "string":
      return parseNumberText(v);
    default:
      return undefined;
  }
}

/** -1, 0 or 1 as `a` is below, equal to or above `b`; NaN when either is NaN. Exact. */
export function compareNumbers(a: Num, b: Num): number {
  if (typeof a === "bigint" && typeof b === "bigint") return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === "number" && typeof b === "number") {
    return a < b ? -1 : a > b ? 1 : a === b ? 0 : NaN;
  }
  if (typeof a === "number") return -compareNumbers(b, a);
  // a is an integer, b a float: compare a with floor(b), which converts to bigint exactly.
  const f = b as number;
  if (Number.isNaN(f)) return NaN;
  if (f === Infinity) return -1;
  if (f === -Infinity) return 1;
  const floor = Math.floor(f);
  const whole = BigInt(floor);
  if (a < whole) return -1;
  if (a > whole) return 1;
  return floor === f ? 0 : -1;
}

function readThreshold(v: unknown, at: At): Num | undefined {
  if (typeof v === "number" && Number.isFinite(v)) {
    return checkSafe(v, at) ? exactNumber(v) : undefined;
  }
  if (typeof v === "string") {
    const n = parseNumberText(v.trim());
    if (n !== undefined) return n;
  }
  at.report(`expected a number, got ${describeValue(v)}`);
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Regexes

/** The flag that puts a regex on V8's linear-time engine. */
const LINEAR = "l";
/** The flags the linear-time engine runs besides its own. */
const LINEAR_ENGINE_FLAGS = "gmsy";

/**
 * Compiles a user's `source` with `flags` (a string, or undefined for none) on V8's linear-time
 * engine (the `l` flag; the collector runs with `--enable-experimental-regexp-engine`), so that
 * no pattern, however written, can stall the collector: `(a+)+$` on 5,000 characters returns
 * at once where backtracking takes forever. What that engine cannot run is refused here, at
 * load: backreferences, lookahead, counted repetition above 16, and the flags i, u, v and d. A
 * bad pattern is reported at `at` (`invalid regex: <reason>`), bad flags at `flagsAt`; flags in
 * `refused` are rejected too (g and y make `test` stateful); `extraFlags` are added. Shared
 * with `redact`. (The built-in redact rules need lookaround and stay on the backtracking
 * engine; redact_test bounds their time on adversarial input.)
 */
export function compileRegex(
  source: unknown,
  flags: unknown,
  at: At,
  flagsAt: At,
  refused: string,
  extraFlags = "",
): RegExp | undefined {
  let flagText = "";
  let flagsOk = true;
  if (flags !== undefined && flags !== null) {
    const allowed = [...LINEAR_ENGINE_FLAGS].filter((f) => !refused.includes(f)).join(", ");
    if (typeof flags !== "string") {
      flagsAt.report(`expected regex flags such as "m", got ${describeValue(flags)}`);
      flagsOk = false;
    } else {
      const refusedFlag = [...flags].find((f) => refused.includes(f));
      const slow = [...flags].find((f) => "diuv".includes(f));
      if (refusedFlag) {
        flagsAt.report(`flag "${refusedFlag}" is not allowed here (allowed: ${allowed})`);
        flagsOk = false;
      } else if (slow) {
        const hint = slow === "i" ? ": write both cases instead, e.g. [Ss][Uu][Dd][Oo]" : "";
        flagsAt.report(
          `flag "${slow}" cannot run in linear time (allowed: ${allowed})${hint}`,
        );
        flagsOk = false;
      } else if (!/^[gmsy]*$/.test(flags) || new Set(flags).size !== flags.length) {
        flagsAt.report(`invalid regex flags "${flags}" (allowed: ${allowed})`);
        flagsOk = false;
      } else flagText = flags;
    }
  }
  if (typeof source !== "string" || source === "") {
    at.report(`expected a regex (a non-empty string), got ${describeValue(source)}`);
    return undefined;
  }
  const all = flagText + [...extraFlags].filter((f) => !flagText.includes(f)).join("") + LINEAR;
  try {
    const re = new RegExp(source, all);
    return flagsOk ? re : undefined;
  } catch (e) {
    at.report(regexProblem(e));
    return undefined;
  }
}

// V8 says `Invalid regular expression: /<source>/<flags>: <reason>`; the source is in the
// file already, so keep the reason, and say what to do about the linear-time engine's.
function regexProblem(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  if (message.startsWith("Invalid flags supplied to RegExp constructor")) {
    return "user regexes run on V8's linear-time engine, and this process was started " +
      "without it: add --v8-flags=--enable-experimental-regexp-engine (deno task run and " +
      "the command --explain prints have it)";
  }
  const i = message.lastIndexOf(": ");
  const reason = message.startsWith("Invalid regular expression:") && i >= 0
    ? message.slice(i + 2)
    : message;
  if (reason === "Cannot be executed in linear time") {
    return "cannot run in linear time: backreferences (\\1, \\k<name>), lookahead ((?=...), " +
      "(?!...)) and counted repetition above 16 (a{17}, a{2,40}) need backtracking, which a " +
      "hostile command could stall; rewrite it (a{16}a{16}a* for a{32,}) or use prefix, " +
      "suffix, contains";
  }
  return `invalid regex: ${reason}`;
}

// ---------------------------------------------------------------------------------------------
// CIDR

interface Network4 {
  base: number;
  bits: number;
}

interface Network6 {
  base: bigint;
  bits: number;
  shift: bigint;
}

function compileCidr(value: unknown, at: At): Compiled | undefined {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) {
    at.report(`expected a network such as "10.0.0.0/8" or a list of them, got an empty list`);
    return undefined;
  }
  const v4: Network4[] = [];
  const v6: Network6[] = [];
  const shown: string[] = [];
  let ok = true;
  list.forEach((item, i) => {
    const itemAt = Array.isArray(value) ? at.child(i) : at;
    const net = typeof item === "string" ? parseNetwork(item) : undefined;
    if (typeof item !== "string" || typeof net === "string" || net === undefined) {
      itemAt.report(
        typeof net === "string"
          ? net
          : `expected a network such as "10.0.0.0/8" or "fd00::/8", got ${describeValue(item)}`,
      );
      ok = false;
      return;
    }
    if ("shift" in net) v6.push(net);
    else v4.push(net);
    shown.push(at.source.template(itemAt.path) ?? item);
  });
  if (!ok) return undefined;
  const match: Matcher = (v) => {
    if (typeof v !== "string") return false;
    const ip = parseIp(v, true);
    if (ip === undefined) return false;
    if (typeof ip === "number") return inNetworks4(ip, v4);
    if (v6.length > 0) {
      for (const n of v6) if (n.bits === 0 || ((ip ^ n.base) >> n.shift) === 0n) return true;
    }
    // An IPv4-mapped address (::ffff:a.b.c.d) is the IPv4 address.
    return v4.length > 0 && (ip >> 32n) === 0xffffn && inNetworks4(Number(ip & 0xffffffffn), v4);
  };
  return { match, text: `cidr ${shown.join(", ")}` };
}

function inNetworks4(ip: number, nets: readonly Network4[]): boolean {
  for (const n of nets) {
    // `>>> 32` would shift by 0, so /0 is its own case.
    if (n.bits === 0 || ((ip ^ n.base) >>> (32 - n.bits)) === 0) return true;
  }
  return false;
}

const PREFIX_LENGTH = /^\d{1,3}$/;

/** A network from `10.0.0.0/8`, `fd00::/8` or a bare address; a string says what is wrong. */
function parseNetwork(text: string): Network4 | Network6 | string {
  const slash = text.indexOf("/");
  const addr = slash < 0 ? text : text.slice(0, slash);
  const ip = parseIp(addr, false);
  if (ip === undefined) {
    return `"${text}" is not a network: "${addr}" is not an IPv4 or IPv6 address`;
  }
  const max = typeof ip === "number" ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const b = text.slice(slash + 1);
    if (!PREFIX_LENGTH.test(b) || Number(b) > max) {
      return `"${text}" is not a network: the prefix length must be 0 to ${max}`;
    }
    bits = Number(b);
  }
  if (typeof ip === "number") {
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    const base = (ip & mask) >>> 0;
    if (base !== ip) {
      return `"${text}" has host bits set (did you mean "${formatIpv4(base)}/${bits}"?)`;
    }
    return { base, bits };
  }
  const shift = BigInt(128 - bits);
  const base = bits === 0 ? 0n : (ip >> shift) << shift;
  if (base !== ip) {
    return `"${text}" has host bits set (did you mean "${formatIpv6(base)}/${bits}"?)`;
  }
  return { base, bits, shift };
}

/**
 * An IPv4 address as a uint32 number, an IPv6 address as a 128-bit bigint, or undefined.
 * With `allowZone`, an IPv6 zone (`fe80::1%eth0`) is ignored.
 */
export function parseIp(s: string, allowZone: boolean): number | bigint | undefined {
  if (s.includes(":")) {
    const pct = s.indexOf("%");
    if (pct >= 0) {
      if (!allowZone) return undefined;
      s = s.slice(0, pct);
    }
    return parseIpv6(s);
  }
  return parseIpv4(s);
}

function parseIpv4(s: string): number | undefined {
  let value = 0, part = 0, digits = 0, dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return undefined;
      value = value * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      // No leading zeros: "010" is octal to some tools and decimal to others.
      if (digits > 0 && part === 0) return undefined;
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return undefined;
    } else return undefined;
  }
  if (dots !== 3 || digits === 0) return undefined;
  return value * 256 + part;
}

function parseIpv6(s: string): bigint | undefined {
  const gap = s.indexOf("::");
  if (gap >= 0 && s.indexOf("::", gap + 1) >= 0) return undefined;
  const head = gap >= 0 ? s.slice(0, gap) : s;
  const tail = gap >= 0 ? s.slice(gap + 2) : "";
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === "" ? [] : tail.split(":");
  if (gap < 0 && head === "") return undefined;
  const groups: number[] = [];
  if (!readGroups(headGroups, gap < 0, groups)) return undefined;
  const headCount = groups.length;
  if (!readGroups(tailGroups, true, groups)) return undefined;
  if (gap < 0 ? groups.length !== 8 : groups.length > 7) return undefined;
  let n = 0n;
  for (let i = 0; i < headCount; i++) n = (n << 16n) | BigInt(groups[i]);
  n <<= BigInt(16 * (8 - groups.length)); // the groups `::` stands for
  for (let i = headCount; i < groups.length; i++) n = (n << 16n) | BigInt(groups[i]);
  return n;
}

// Appends the 16-bit groups of `parts` to `out`; an IPv4 tail (`::ffff:1.2.3.4`) is allowed
// in the last part when `last`.
function readGroups(parts: string[], last: boolean, out: number[]): boolean {
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (last && i === parts.length - 1 && p.includes(".")) {
      const v4 = parseIpv4(p);
      if (v4 === undefined) return false;
      out.push(v4 >>> 16, v4 & 0xffff);
      continue;
    }
    if (p.length === 0 || p.length > 4) return false;
    let n = 0;
    for (let j = 0; j < p.length; j++) {
      const c = p.charCodeAt(j);
      const lower = c | 0x20; // A-F become a-f
      if (c >= 48 && c <= 57) n = n * 16 + (c - 48);
      else if (lower >= 97 && lower <= 102) n = n * 16 + (lower - 87);
      else return false;
    }
    out.push(n);
  }
  return true;
}

function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function formatIpv6(n: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  // Compress the longest run of two or more zero groups (RFC 5952).
  let bestStart = -1, bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

/**
 * Numbers in conditions: what a value holds as a number, and exact comparison, so that
 * integers past 2^53 (a cgroup id, a byte count) are never rounded: integers stay bigint.
 *
 * @module
 */
import type { FieldValue } from "../../record.ts";
import { type At, describeValue } from "../../pipeline/schema.ts";

export type Num = bigint | number;

const INTEGER_TEXT = /^[+-]?\d+$/;
const DECIMAL_TEXT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** An integral number as bigint (exact), anything else as it is. */
export function exactNumber(n: number): Num {
  return Number.isInteger(n) ? BigInt(n) : n;
}

/** The number a string holds (`"4242"`, `"-1.5"`, `"1e3"`), or undefined. */
function parseNumberText(s: string): Num | undefined {
  if (s.length === 0 || s.length > 400) return undefined;
  if (INTEGER_TEXT.test(s)) return BigInt(s);
  if (DECIMAL_TEXT.test(s)) return Number(s);
  return undefined;
}

export function numericValue(v: FieldValue): Num | undefined {
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

export function readThreshold(v: unknown, at: At): Num | undefined {
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

// YAML reads integers as JS numbers: past 2^53 they were rounded before we saw them.
export function checkSafe(v: number, at: At): boolean {
  if (!Number.isInteger(v) || Number.isSafeInteger(v)) return true;
  at.report(
    `${v} is past 2^53 and was rounded when the YAML was read; quote it to keep it exact`,
  );
  return false;
}

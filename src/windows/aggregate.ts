/**
 * The aggregations a window computes, one accumulator per output, series and window.
 *
 * Types follow the record contract: bigint (integer) inputs give integer results, number
 * (float) inputs give float results. A series that sees both gives a float (the integer part is
 * converted with `Number`, so it is exact only up to 2^53). `last` keeps whatever value came
 * last, of any type; `count` counts records and is kept by the window itself, not here.
 *
 * Floats follow JavaScript: a NaN makes `sum` and `mean` NaN, and `max` and `min` NaN (as
 * `Math.max` does) from the NaN on.
 *
 * @module
 */
import type { FieldValue } from "../record.ts";

/** Every aggregation a window output can name in `agg`. */
export const AGGREGATIONS = ["count", "sum", "mean", "max", "min", "last"] as const;

/** The name of an aggregation. */
export type Aggregation = typeof AGGREGATIONS[number];

/** Collects one output's values for one series during one window. */
export interface Accumulator {
  /**
   * Takes a field value (undefined when the record lacks it); false when it cannot use it.
   * `per` (a `mean` with `per`): the record's count of what `value` totals.
   */
  add(value: FieldValue | undefined, per?: FieldValue): boolean;
  /** The aggregate, or undefined when no value was taken. */
  result(): FieldValue | undefined;
}

/**
 * A new, empty accumulator for `agg` (every aggregation but `count`, which needs no field).
 *
 * @example
 * ```ts
 * const mean = newAccumulator("mean");
 * mean.add(1n);
 * mean.add(2n);
 * mean.result(); // 2n (1.5 rounded half away from zero)
 * ```
 */
export function newAccumulator(agg: Exclude<Aggregation, "count">, per = false): Accumulator {
  switch (agg) {
    case "sum":
      return new Sum();
    case "mean":
      return per ? new MeanPer() : new Mean();
    case "max":
      return new Extreme(true);
    case "min":
      return new Extreme(false);
    case "last":
      return new Last();
  }
}

/**
 * `sum / count` rounded half away from zero (`5n / 2n` → `3n`, `-5n / 2n` → `-3n`); `count`
 * is positive.
 */
export function divideRounded(sum: bigint, count: bigint): bigint {
  const quotient = sum / count; // truncates toward zero
  const rest = sum % count; // has the sign of sum
  const twice = rest < 0n ? -2n * rest : 2n * rest;
  if (twice < count) return quotient;
  return sum < 0n ? quotient - 1n : quotient + 1n;
}

class Sum implements Accumulator {
  ints = 0n;
  floats = 0;
  sawInt = false;
  sawFloat = false;

  add(value: FieldValue | undefined): boolean {
    if (typeof value === "bigint") {
      this.ints += value;
      this.sawInt = true;
      return true;
    }
    if (typeof value === "number") {
      this.floats += value;
      this.sawFloat = true;
      return true;
    }
    return false;
  }

  result(): FieldValue | undefined {
    if (this.sawFloat) return this.sawInt ? Number(this.ints) + this.floats : this.floats;
    return this.sawInt ? this.ints : undefined;
  }
}

class Mean extends Sum {
  n = 0;

  override add(value: FieldValue | undefined): boolean {
    if (!super.add(value)) return false;
    this.n++;
    return true;
  }

  override result(): FieldValue | undefined {
    if (this.n === 0) return undefined;
    if (this.sawFloat) return (Number(this.ints) + this.floats) / this.n;
    return divideRounded(this.ints, BigInt(this.n));
  }
}

/**
 * The mean of totals: each record's `value` is a sum over `per` events (a probe's latency_sum
 * over its count), so the mean is Σ value / Σ per, exact where a mean of the records' own
 * means would weigh a row of 1,000 requests as one. Integers stay integers (rounded as `mean`).
 */
class MeanPer extends Sum {
  readonly #per = new Sum();

  override add(value: FieldValue | undefined, per?: FieldValue): boolean {
    if (typeof per !== "bigint" && typeof per !== "number") return false;
    if (typeof value !== "bigint" && typeof value !== "number") return false;
    super.add(value);
    this.#per.add(per);
    return true;
  }

  override result(): FieldValue | undefined {
    const total = super.result(), per = this.#per.result();
    if (total === undefined || per === undefined) return undefined;
    if (typeof total === "bigint" && typeof per === "bigint") {
      return per > 0n ? divideRounded(total, per) : undefined;
    }
    return Number(per) > 0 ? Number(total) / Number(per) : undefined;
  }
}

class Extreme implements Accumulator {
  best: bigint | number | undefined;
  sawInt = false;
  sawFloat = false;
  readonly max: boolean;

  constructor(max: boolean) {
    this.max = max;
  }

  add(value: FieldValue | undefined): boolean {
    if (typeof value === "bigint") this.sawInt = true;
    else if (typeof value === "number") this.sawFloat = true;
    else return false;
    const best = this.best;
    // JS compares bigint with number exactly; `value !== value` is NaN, which then sticks.
    if (best === undefined || (this.max ? value > best : value < best) || value !== value) {
      this.best = value;
    }
    return true;
  }

  result(): FieldValue | undefined {
    return this.sawInt && this.sawFloat ? Number(this.best) : this.best;
  }
}

class Last implements Accumulator {
  value: FieldValue | undefined;

  add(value: FieldValue | undefined): boolean {
    switch (typeof value) {
      case "bigint":
      case "number":
      case "string":
      case "boolean":
        this.value = value;
        return true;
      default:
        // Missing, or not a field value at all (e.g. `from: toString` finding a method).
        return false;
    }
  }

  result(): FieldValue | undefined {
    return this.value;
  }
}

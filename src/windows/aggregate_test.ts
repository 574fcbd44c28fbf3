import assert from "node:assert/strict";
import { divideRounded, newAccumulator } from "./aggregate.ts";
import type { FieldValue } from "../record.ts";

function aggregate(agg: "sum" | "mean" | "max" | "min" | "last", values: FieldValue[]) {
  const acc = newAccumulator(agg);
  const taken = values.map((v) => acc.add(v));
  return { result: acc.result(), taken };
}

Deno.test("divideRounded() rounds half away from zero", () => {
  assert.equal(divideRounded(5n, 2n), 3n);
  assert.equal(divideRounded(-5n, 2n), -3n);
  assert.equal(divideRounded(7n, 3n), 2n);
  assert.equal(divideRounded(8n, 3n), 3n);
  assert.equal(divideRounded(-7n, 3n), -2n);
  assert.equal(divideRounded(-8n, 3n), -3n);
  assert.equal(divideRounded(6n, 3n), 2n);
  assert.equal(divideRounded(0n, 4n), 0n);
});

Deno.test("newAccumulator() sums integers exactly past 2^53", () => {
  const big = 2n ** 60n;
  assert.equal(aggregate("sum", [big, 1n, 1n]).result, big + 2n);
});

Deno.test("newAccumulator() gives a float when a series mixes integers and floats", () => {
  assert.equal(aggregate("sum", [1n, 2.5]).result, 3.5);
  assert.equal(aggregate("mean", [1n, 2.5]).result, 1.75);
  assert.equal(aggregate("max", [3n, 2.5]).result, 3);
  assert.equal(typeof aggregate("max", [3n, 2.5]).result, "number");
  assert.equal(aggregate("min", [3n, 2.5]).result, 2.5);
});

Deno.test("newAccumulator() refuses strings and booleans except for last", () => {
  for (const agg of ["sum", "mean", "max", "min"] as const) {
    const { result, taken } = aggregate(agg, ["x", true]);
    assert.equal(result, undefined, agg);
    assert.deepEqual(taken, [false, false], agg);
  }
  assert.deepEqual(aggregate("last", [1n, "x", true]), {
    result: true,
    taken: [true, true, true],
  });
});

Deno.test("newAccumulator() skips a missing value and reports nothing when it saw none", () => {
  for (const agg of ["sum", "mean", "max", "min", "last"] as const) {
    const acc = newAccumulator(agg);
    assert.equal(acc.add(undefined), false, agg);
    assert.equal(acc.result(), undefined, agg);
  }
});

Deno.test("newAccumulator() lets NaN through max and min as Math.max does", () => {
  assert.ok(Number.isNaN(aggregate("max", [1, NaN, 2]).result));
  assert.ok(Number.isNaN(aggregate("min", [NaN, 1]).result));
});

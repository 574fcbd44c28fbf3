import assert from "node:assert/strict";
import { bash, cond } from "./_testing.ts";
import { compareNumbers } from "./numbers.ts";

Deno.test("parseCondition() gt/gte/lt/lte compare integers exactly past 2^53", () => {
  const big = cond({ field: "n", gt: "9007199254740992" });
  assert.equal(big.test(bash({ n: 9007199254740993n })), true);
  assert.equal(big.test(bash({ n: 9007199254740992n })), false);
  assert.equal(cond({ field: "n", gte: 5 }).test(bash({ n: 5n })), true);
  assert.equal(cond({ field: "n", lt: 5 }).test(bash({ n: 5n })), false);
  assert.equal(cond({ field: "n", lte: 5 }).test(bash({ n: 5n })), true);
  assert.equal(cond({ field: "n", gt: 2.5 }).test(bash({ n: 3n })), true);
  assert.equal(cond({ field: "n", gt: 2.5 }).test(bash({ n: 2n })), false);
  assert.equal(cond({ field: "n", lt: -2.5 }).test(bash({ n: -3n })), true);
  assert.equal(cond({ field: "x", gt: 1 }).test(bash({ x: 1.5 })), true);
  assert.equal(cond({ field: "x", lt: 1 }).test(bash({ x: Number.NaN })), false);
});

Deno.test("parseCondition() compares a string holding a number numerically", () => {
  assert.equal(cond({ field: "pid", gt: 1000 }).test(bash()), true); // pid "4242"
  assert.equal(cond({ field: "pid", lt: 500 }).test(bash()), false);
  assert.equal(cond({ field: "pid", gt: 1000 }).test(bash({ pid: "999" })), false);
  assert.equal(cond({ field: "x", gte: 1.5 }).test(bash({ x: "1.5" })), true);
  assert.equal(cond({ field: "user", gt: 0 }).test(bash()), false, "not a number");
  assert.equal(cond({ field: "flag", gt: 0 }).test(bash({ flag: true })), false);
  assert.equal(cond({ tag: "rack", gte: 3 }).test(bash({}, { rack: "12" })), true);
});

Deno.test("compareNumbers() is exact across integers and floats", () => {
  assert.equal(compareNumbers(9007199254740993n, 9007199254740992), 1);
  assert.equal(compareNumbers(9007199254740992, 9007199254740993n), -1);
  assert.equal(compareNumbers(3n, 3), 0);
  assert.equal(compareNumbers(3n, 3.5), -1);
  assert.equal(compareNumbers(4n, 3.5), 1);
  assert.equal(compareNumbers(-4n, -3.5), -1);
  assert.equal(compareNumbers(1n, Infinity), -1);
  assert.equal(compareNumbers(1n, -Infinity), 1);
  assert.ok(Number.isNaN(compareNumbers(1n, NaN)));
  assert.equal(compareNumbers(1.5, 1.5), 0);
});

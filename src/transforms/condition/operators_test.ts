import assert from "node:assert/strict";
import { bash, compileText, cond, problems } from "./_testing.ts";

Deno.test("parseCondition() equals compares string fields exactly", () => {
  const c = cond({ field: "cmd", equals: "ls -la" });
  assert.equal(c.test(bash()), true);
  assert.equal(c.test(bash({ cmd: "ls -la " })), false);
  assert.equal(c.test(bash({ cmd: "LS -LA" })), false);
});

Deno.test("parseCondition() equals matches a YAML number to an integer, float or numeric string", () => {
  const c = cond({ field: "n", equals: 5 });
  assert.equal(c.test(bash({ n: 5n })), true);
  assert.equal(c.test(bash({ n: 5 })), true);
  assert.equal(c.test(bash({ n: "5" })), true);
  assert.equal(c.test(bash({ n: 6n })), false);
  assert.equal(c.test(bash({ n: 5.5 })), false);
  assert.equal(c.test(bash({ n: "five" })), false);
  assert.equal(c.test(bash({ n: true })), false);
  assert.equal(cond({ field: "pid", equals: 4242 }).test(bash()), true);
  assert.equal(cond({ field: "x", equals: 1.5 }).test(bash({ x: 1.5 })), true);
  assert.equal(cond({ field: "x", equals: 1.5 }).test(bash({ x: 1n })), false);
});

Deno.test("parseCondition() equals with a quoted integer reaches integers past 2^53", () => {
  const c = cond({ field: "n", equals: "18446744073709551615" });
  assert.equal(c.test(bash({ n: 18446744073709551615n })), true);
  assert.equal(c.test(bash({ n: 18446744073709551614n })), false);
});

Deno.test("parseCondition() equals on booleans matches boolean fields only", () => {
  const c = cond({ field: "truncated", equals: true });
  assert.equal(c.test(bash({ truncated: true })), true);
  assert.equal(c.test(bash({ truncated: false })), false);
  assert.equal(c.test(bash({ truncated: "true" })), false);
});

Deno.test("parseCondition() equals on a tag compares the value's text", () => {
  assert.equal(cond({ tag: "rack", equals: 5 }).test(bash({}, { rack: "5" })), true);
  assert.equal(cond({ tag: "rack", equals: 5 }).test(bash({}, { rack: "05" })), false);
  assert.equal(cond({ tag: "ok", equals: true }).test(bash({}, { ok: "true" })), true);
  assert.equal(cond({ tag: "host", equals: "web-1" }).test(bash()), true);
});

Deno.test("parseCondition() in matches any listed value, with equals' rules", () => {
  const c = cond({ field: "user", in: ["root", "admin"] });
  assert.equal(c.test(bash()), true);
  assert.equal(c.test(bash({ user: "admin" })), true);
  assert.equal(c.test(bash({ user: "alice" })), false);
  const mixed = cond({ field: "x", in: ["a", 7, false] });
  assert.equal(mixed.test(bash({ x: "a" })), true);
  assert.equal(mixed.test(bash({ x: 7n })), true);
  assert.equal(mixed.test(bash({ x: "7" })), true);
  assert.equal(mixed.test(bash({ x: false })), true);
  assert.equal(mixed.test(bash({ x: true })), false);
  assert.equal(cond({ tag: "host", in: ["web-1", "web-2"] }).test(bash()), true);
  // A single value counts as a list of one.
  assert.equal(cond({ field: "user", in: "root" }).test(bash()), true);
});

Deno.test("parseCondition() prefix, suffix and contains test the value's text", () => {
  assert.equal(cond({ field: "cmd", prefix: "ls" }).test(bash()), true);
  assert.equal(cond({ field: "cmd", prefix: "la" }).test(bash()), false);
  assert.equal(cond({ field: "cmd", suffix: "-la" }).test(bash()), true);
  assert.equal(cond({ field: "cmd", contains: "s -l" }).test(bash()), true);
  assert.equal(cond({ field: "cmd", contains: "rm" }).test(bash()), false);
  assert.equal(cond({ field: "n", prefix: "12" }).test(bash({ n: 1234n })), true);
  assert.equal(cond({ tag: "host", suffix: "-1" }).test(bash()), true);
});

Deno.test("parseCondition() checks operator values", () => {
  assert.deepEqual(problems({ field: "x", equals: null }), [
    "when.equals: expected a string, number or boolean, got nothing",
  ]);
  assert.deepEqual(problems({ field: "x", in: ["a", ["b"]] }), [
    "when.in[1]: expected a string, number or boolean, got a list",
  ]);
  assert.deepEqual(problems({ field: "x", in: [] }), [
    "when.in: expected a list of values, got an empty list",
  ]);
  assert.deepEqual(problems({ field: "x", prefix: "" }), [
    `when.prefix: expected a non-empty string, got ""`,
  ]);
  assert.deepEqual(problems({ field: "x", gt: "many" }), [
    `when.gt: expected a number, got "many"`,
  ]);
  assert.deepEqual(problems({ field: "x", exists: "yes" }), [
    `when.exists: expected true or false, got "yes"`,
  ]);
  const { errors } = compileText("when: { field: n, equals: 18446744073709551615 }");
  assert.match(errors[0].reason, /past 2\^53 .* quote it/);
});

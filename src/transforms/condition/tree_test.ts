import assert from "node:assert/strict";
import { bash, compile, compileText, cond, problems } from "./_testing.ts";
import type { Table } from "../../pipeline/schema.ts";
import { describeCondition } from "./mod.ts";

Deno.test("parseCondition() exists, and a missing value fails every other operator", () => {
  assert.equal(cond({ field: "cmd", exists: true }).test(bash()), true);
  assert.equal(cond({ field: "nope", exists: true }).test(bash()), false);
  assert.equal(cond({ field: "nope", exists: false }).test(bash()), true);
  assert.equal(cond({ field: "cmd", exists: false }).test(bash()), false);
  assert.equal(cond({ tag: "host", exists: true }).test(bash()), true);
  const operators: Table[] = [
    { equals: "x" },
    { in: ["x"] },
    { prefix: "x" },
    { suffix: "x" },
    { contains: "x" },
    { regex: ".*" },
    { cidr: "0.0.0.0/0" },
    { gt: -1 },
    { gte: 0 },
    { lt: 1 },
    { lte: 0 },
  ];
  for (const op of operators) {
    assert.equal(cond({ field: "nope", ...op }).test(bash()), false, JSON.stringify(op));
    assert.equal(cond({ tag: "nope", ...op }).test(bash()), false, JSON.stringify(op));
  }
  // Names that are properties of every object are not fields.
  assert.equal(cond({ field: "constructor", exists: true }).test(bash()), false);
  assert.equal(cond({ tag: "toString", exists: false }).test(bash()), true);
});

Deno.test("parseCondition() combines with all, any and not", () => {
  const c = cond({
    any: [
      { all: [{ field: "user", equals: "root" }, { field: "cmd", prefix: "rm " }] },
      { not: { tag: "host", prefix: "web-" } },
    ],
  });
  assert.equal(c.test(bash({ cmd: "rm -rf /tmp/x" })), true);
  assert.equal(c.test(bash({ cmd: "ls" })), false);
  assert.equal(c.test(bash({ cmd: "ls" }, { host: "db-1" })), true);
  assert.equal(
    describeCondition(c),
    `(field user equals "root" and field cmd prefix "rm ") or not (tag host prefix "web-")`,
  );
  // A list of one is that condition.
  assert.equal(
    describeCondition(cond({ all: [{ field: "cmd", exists: false }] })),
    "field cmd is missing",
  );
});

Deno.test("describeCondition() renders each operator on one line", () => {
  const cases: [Table, string][] = [
    [{ field: "cmd", prefix: "ls" }, `field cmd prefix "ls"`],
    [{ tag: "host", in: ["a", "b"] }, `tag host in ["a", "b"]`],
    [{ field: "pid", gt: 1000 }, "field pid gt 1000"],
    [{ field: "n", lte: "18446744073709551615" }, "field n lte 18446744073709551615"],
    [{ field: "ip", cidr: ["10.0.0.0/8", "fd00::/8"] }, "field ip cidr 10.0.0.0/8, fd00::/8"],
    [{ field: "cmd", exists: true }, "field cmd exists"],
    [{ field: "ok", equals: true }, "field ok equals true"],
    [{ field: "cmd", regex: "a/b" }, "field cmd regex /a\\/b/"],
  ];
  for (const [value, text] of cases) assert.equal(describeCondition(cond(value)), text);
});

Deno.test("describeCondition() shows ${VAR} values by name, never their value", () => {
  const { cond, errors } = compileText(
    [
      "when:",
      "  any:",
      "    - { field: user, equals: '${ADMIN}' }",
      "    - { field: cmd, in: [ls, '${SECRET_CMD}'] }",
      "    - { field: cmd, regex: '${PATTERN}' }",
    ].join("\n"),
    (name) => ({ ADMIN: "alice", SECRET_CMD: "hunter2", PATTERN: "^hunter" })[name],
  );
  assert.deepEqual(errors, []);
  assert.ok(cond);
  assert.equal(cond.test(bash({ user: "alice" })), true, "the value is used");
  assert.equal(cond.test(bash({ user: "bob", cmd: "hunter2" })), true);
  assert.equal(
    describeCondition(cond),
    `field user equals "\${ADMIN}" or field cmd in ["ls", "\${SECRET_CMD}"] or ` +
      "field cmd regex /${PATTERN}/",
  );
  assert.ok(!describeCondition(cond).includes("hunter"));
});

Deno.test("parseCondition() names an unknown operator with a suggestion at its key", () => {
  const { errors } = compileText(
    ["when:", "  all:", "    - field: cmd", "      startswith: ls"].join("\n"),
  );
  assert.equal(errors.length >= 1, true);
  const e = errors[0];
  assert.equal(e.path, "when.all[0].startswith");
  assert.match(e.reason, /^unknown operator "startswith" \(did you mean "prefix"\?\)/);
  assert.deepEqual([e.line, e.column], [4, 7]);
  assert.match(problems({ field: "cmd", prefx: "ls" })[0], /did you mean "prefix"/);
  assert.match(problems({ field: "cmd", ne: "ls" })[0], /wrap the condition in not:/);
  assert.deepEqual(problems({ feild: "cmd", prefix: "ls" }), [
    `when.feild: unknown key "feild" (did you mean "field"?)`,
  ]);
  assert.deepEqual(problems({ field: "cmd", constructor: "x" }), [
    `when.constructor: unknown operator "constructor"; operators: equals, in, prefix, suffix, ` +
    "contains, regex, cidr, gt, gte, lt, lte, exists",
  ]);
});

Deno.test("parseCondition() needs one subject and exactly one operator", () => {
  assert.deepEqual(problems({ prefix: "ls" }), [
    `when: a condition needs "tag" or "field" (the value to test), e.g. { field: cmd, ... }`,
  ]);
  assert.deepEqual(problems({ field: "cmd", equals: "ls", prefix: "l" }), [
    "when: needs exactly one operator, got equals and prefix",
  ]);
  assert.deepEqual(problems({ field: "cmd" }), [
    "when: needs an operator: one of equals, in, prefix, suffix, contains, regex, cidr, gt, gte, " +
    "lt, lte, exists",
  ]);
  assert.deepEqual(problems({ field: "cmd", tag: "host", exists: true }), [
    `when.field: give either "tag" or "field", not both`,
  ]);
  assert.deepEqual(problems({ field: "", exists: true }), [
    `when.field: expected a field name, got ""`,
  ]);
});

Deno.test("parseCondition() checks all, any and not", () => {
  assert.deepEqual(problems({ all: [] }), [
    "when.all: expected a list of conditions, got an empty list",
  ]);
  assert.deepEqual(problems({ any: { field: "cmd" } }), [
    "when.any: expected a list of conditions, got a mapping",
  ]);
  assert.deepEqual(problems({ all: [{ field: "a", exists: true }], any: [] }), [
    "when: give one of all, any or not per mapping, got all and any; nest them instead",
  ]);
  assert.deepEqual(problems({ not: { field: "a", exists: true }, field: "b" }), [
    `when.field: "field" cannot sit beside "not"; move it into a condition of its own`,
  ]);
  assert.deepEqual(problems([{ field: "a", exists: true }]), [
    "when: expected a condition (a mapping), got a list; wrap the list in all: or any:",
  ]);
  assert.deepEqual(problems("cmd == ls"), [
    `when: expected a condition such as { field: cmd, prefix: "sudo " }, got "cmd == ls"`,
  ]);
  assert.deepEqual(problems({}), [
    `when: an empty condition; give "tag" or "field" and an operator, or all/any/not`,
  ]);
});

Deno.test("parseCondition() reports every problem at once and never throws", () => {
  const found = problems({
    all: [
      { field: "cmd", startswith: "ls" },
      { tag: "host", regex: "(" },
      { not: { field: "ip", cidr: "bad" } },
      { any: [{ field: "pid", gt: "x" }, { equals: 1 }] },
    ],
  });
  assert.deepEqual(found.map((p) => p.slice(0, p.indexOf(":"))), [
    "when.all[0].startswith",
    "when.all[1].regex",
    "when.all[2].not.cidr",
    "when.all[3].any[0].gt",
    "when.all[3].any[1]",
  ]);
  for (const junk of [null, 0, true, [[]], { all: [null] }, { not: null }, { field: {} }]) {
    assert.equal(compile(junk).cond, undefined);
    assert.ok(compile(junk).errors.length > 0, JSON.stringify(junk));
  }
});

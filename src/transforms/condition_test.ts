import assert from "node:assert/strict";
import { stringify } from "yaml";
import type { ConfigError } from "../errors.ts";
import { At, type Table } from "../pipeline/schema.ts";
import { YamlSource } from "../pipeline/yaml_source.ts";
import type { FieldValue, Record } from "../record.ts";
import {
  compareNumbers,
  type Condition,
  describeCondition,
  parseCondition,
  parseIp,
} from "./condition.ts";

/** Compiles the `when:` value of a YAML text, as the loader would at path `when`. */
function compileText(
  text: string,
  env: (name: string) => string | undefined = () => undefined,
): { cond?: Condition; errors: ConfigError[] } {
  const { source, errors } = YamlSource.parse("test.yaml", text, env);
  assert.ok(source, errors.map((e) => e.message).join("\n"));
  const cond = parseCondition((source.value as Table).when, new At(source, "when", errors));
  return { cond, errors };
}

function compile(value: unknown): { cond?: Condition; errors: ConfigError[] } {
  return compileText(stringify({ when: value }));
}

/** Compiles a condition that must be valid. */
function cond(value: unknown): Condition {
  const { cond, errors } = compile(value);
  assert.deepEqual(errors.map((e) => e.message), []);
  assert.ok(cond);
  return cond;
}

/** The problems with a condition, as `path: reason`. */
function problems(value: unknown): string[] {
  const { cond, errors } = compile(value);
  assert.equal(cond, undefined, "a condition with problems compiles to undefined");
  return errors.map((e) => `${e.path}: ${e.reason}`);
}

function bash(
  fields: { [key: string]: FieldValue } = {},
  tags: { [key: string]: string } = {},
): Record {
  return {
    measurement: "bash",
    tags: { host: "web-1", source: "bash", ...tags },
    fields: { cmd: "ls -la", message: "m", pid: "4242", user: "root", ...fields },
    time: 1_764_085_464_123_456_789n,
  };
}

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

Deno.test("parseCondition() regex uses flags and is compiled once", () => {
  const c = cond({ field: "cmd", regex: "^sudo\\s", flags: "m" });
  assert.equal(c.test(bash({ cmd: "cd /\nsudo reboot" })), true);
  assert.equal(c.test(bash({ cmd: "echo sudo reboot" })), false);
  assert.equal(describeCondition(c), "field cmd regex /^sudo\\s/m");
  // Testing twice gives the same answer (no stateful lastIndex).
  assert.equal(c.test(bash({ cmd: "sudo ls" })), true);
  assert.equal(c.test(bash({ cmd: "sudo ls" })), true);
});

Deno.test("parseCondition() regex runs in linear time: (a+)+$ on 5,000 characters returns at once", () => {
  const c = cond({ field: "cmd", regex: "(a+)+$" });
  const started = performance.now();
  assert.equal(c.test(bash({ cmd: "a".repeat(5000) + "!" })), false);
  assert.equal(c.test(bash({ cmd: "a".repeat(5000) })), true);
  // Backtracking took 8 s at 31 characters, and never returned at 40.
  assert.ok(performance.now() - started < 1000);
});

Deno.test("parseCondition() refuses at load what the linear-time engine cannot run, saying why", () => {
  const linear = "cannot run in linear time: backreferences";
  for (const regex of ["(a)\\1", "(?<w>a)\\k<w>", "a(?=b)", "a(?!b)", "a{17}", "(ab){2,40}"]) {
    const [problem] = problems({ field: "cmd", regex });
    assert.ok(problem.startsWith(`when.regex: ${linear}`), `${regex}: ${problem}`);
  }
  assert.deepEqual(problems({ field: "cmd", regex: "sudo", flags: "i" }), [
    'when.flags: flag "i" cannot run in linear time (allowed: m, s): write both cases ' +
    "instead, e.g. [Ss][Uu][Dd][Oo]",
  ]);
  assert.deepEqual(problems({ field: "cmd", regex: "a", flags: "u" }), [
    'when.flags: flag "u" cannot run in linear time (allowed: m, s)',
  ]);
  // Lookbehind, \b, classes and lazy repetition run in linear time.
  const c = cond({ field: "cmd", regex: "(?<=sudo )\\b[\\w-]+?(\\s|$)" });
  assert.equal(c.test(bash({ cmd: "sudo rm -rf /" })), true);
});

Deno.test("parseCondition() cidr matches IPv4 and IPv6 networks", () => {
  const c = cond({ field: "ip", cidr: ["10.0.0.0/8", "192.168.1.7", "fd00::/8"] });
  assert.equal(c.test(bash({ ip: "10.20.30.40" })), true);
  assert.equal(c.test(bash({ ip: "11.0.0.1" })), false);
  assert.equal(c.test(bash({ ip: "192.168.1.7" })), true);
  assert.equal(c.test(bash({ ip: "192.168.1.8" })), false);
  assert.equal(c.test(bash({ ip: "fd12:3456::1" })), true);
  assert.equal(c.test(bash({ ip: "fe80::1" })), false);
  assert.equal(c.test(bash({ ip: "::ffff:10.1.2.3" })), true, "IPv4-mapped");
  assert.equal(c.test(bash({ ip: "not an ip" })), false);
  assert.equal(c.test(bash({ ip: "10.0.0" })), false);
  assert.equal(c.test(bash({ ip: 10n })), false);
  const one = cond({ tag: "peer", cidr: "fe80::/10" });
  assert.equal(one.test(bash({}, { peer: "fe80::1%eth0" })), true, "a zone is ignored");
  assert.equal(one.test(bash({}, { peer: "2001:db8::1" })), false);
  assert.equal(cond({ field: "ip", cidr: "0.0.0.0/0" }).test(bash({ ip: "8.8.8.8" })), true);
  assert.equal(cond({ field: "ip", cidr: "::/0" }).test(bash({ ip: "::1" })), true);
  assert.equal(cond({ field: "ip", cidr: "::/0" }).test(bash({ ip: "8.8.8.8" })), false);
});

Deno.test("parseCondition() reports a bad CIDR at its own position", () => {
  assert.deepEqual(problems({ field: "ip", cidr: ["10.0.0.0/8", "10.0.0.0/33", "300.1.1.1"] }), [
    `when.cidr[1]: "10.0.0.0/33" is not a network: the prefix length must be 0 to 32`,
    `when.cidr[2]: "300.1.1.1" is not a network: "300.1.1.1" is not an IPv4 or IPv6 address`,
  ]);
  assert.deepEqual(problems({ field: "ip", cidr: "10.1.2.3/8" }), [
    `when.cidr: "10.1.2.3/8" has host bits set (did you mean "10.0.0.0/8"?)`,
  ]);
  assert.deepEqual(problems({ field: "ip", cidr: "fd00::1/8" }), [
    `when.cidr: "fd00::1/8" has host bits set (did you mean "fd00::/8"?)`,
  ]);
  assert.deepEqual(problems({ field: "ip", cidr: 10 }), [
    `when.cidr: expected a network such as "10.0.0.0/8" or "fd00::/8", got 10`,
  ]);
});

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

Deno.test("parseCondition() reports a bad regex at the regex's position", () => {
  const { errors } = compileText(
    [
      "when:",
      "  all:",
      "    - { field: cmd, prefix: ls }",
      "    - { field: cmd, regex: '(unclosed' }",
    ].join("\n"),
  );
  assert.deepEqual(errors.map((e) => [e.path, e.reason, e.line, e.column]), [
    ["when.all[1].regex", "invalid regex: Unterminated group", 4, 28],
  ]);
  assert.deepEqual(problems({ field: "cmd", regex: "a", flags: "gm" }), [
    `when.flags: flag "g" is not allowed here (allowed: m, s)`,
  ]);
  assert.deepEqual(problems({ field: "cmd", regex: "a", flags: "q" }), [
    `when.flags: invalid regex flags "q" (allowed: m, s)`,
  ]);
  assert.deepEqual(problems({ field: "cmd", prefix: "a", flags: "i" }), [
    `when.flags: "flags" goes with "regex" only`,
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

Deno.test("parseIp() reads IPv4 and IPv6 text", () => {
  assert.equal(parseIp("10.1.2.3", false), 0x0a010203);
  assert.equal(parseIp("255.255.255.255", false), 0xffffffff);
  assert.equal(parseIp("::", false), 0n);
  assert.equal(parseIp("::1", false), 1n);
  assert.equal(parseIp("2001:DB8::1", false), 0x20010db8000000000000000000000001n);
  assert.equal(parseIp("::ffff:1.2.3.4", false), 0xffff01020304n);
  assert.equal(parseIp("1:2:3:4:5:6:7:8", false), 0x00010002000300040005000600070008n);
  assert.equal(parseIp("fe80::1%eth0", true), 0xfe800000000000000000000000000001n);
  for (
    const bad of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "01.2.3.4",
      "256.1.1.1",
      "1..2.3",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "1::2::3",
      ":::",
      "12345::",
      "g::1",
      "fe80::1%eth0",
      "\u0010::1",
    ]
  ) {
    assert.equal(parseIp(bad, false), undefined, bad);
  }
});

import assert from "node:assert/strict";
import { bash, compileText, cond, problems } from "./_testing.ts";
import { describeCondition } from "./mod.ts";

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

import assert from "node:assert/strict";
import { YamlSource } from "./yaml_source.ts";

const env = (vars: { [name: string]: string }) => (name: string) => vars[name];

Deno.test("YamlSource.parse() replaces ${VAR} and ${VAR:-default} in string values", () => {
  const text = "a: ${HOSTNAME}\nb: ${MISSING:-fallback}\nc: pre-${X}-post\nd: ['${X}']\n";
  const { source, errors } = YamlSource.parse("p.yaml", text, env({ HOSTNAME: "web-1", X: "x" }));
  assert.deepEqual(errors, []);
  assert.deepEqual(source!.value, { a: "web-1", b: "fallback", c: "pre-x-post", d: ["x"] });
});

Deno.test("YamlSource.parse() keeps $${ as a literal ${ and reads no variable for it", () => {
  const read: string[] = [];
  const { source } = YamlSource.parse("p.yaml", "a: cost $${HOME}\n", (n) => {
    read.push(n);
    return "nope";
  });
  assert.equal((source!.value as { a: string }).a, "cost ${HOME}");
  assert.deepEqual(read, []);
});

Deno.test("YamlSource.parse() reads only the variables the file names, and remembers the text", () => {
  const read: string[] = [];
  const { source } = YamlSource.parse("p.yaml", "x:\n  y: ${A}/${B:-b}\n", (n) => {
    read.push(n);
    return n === "A" ? "secret" : undefined;
  });
  assert.deepEqual(read.sort(), ["A", "B"]);
  assert.deepEqual(source!.variables, ["A", "B"]);
  assert.equal(source!.template("x.y"), "${A}/${B:-b}");
  assert.equal(source!.template("x"), undefined);
});

Deno.test("YamlSource.parse() reports an unset variable without a default at its value", () => {
  const { errors } = YamlSource.parse(
    "p.yaml",
    "outputs:\n  f:\n    path: ${LOG_DIR}/x\n",
    env({}),
  );
  assert.equal(errors.length, 1);
  assert.equal(
    errors[0].message,
    "p.yaml:3:11: outputs.f.path: environment variable LOG_DIR is not set (give a default: ${LOG_DIR:-value})",
  );
});

Deno.test("YamlSource.parse() names the --allow-env flag when a variable may not be read", () => {
  const denied = () => {
    throw new Deno.errors.NotCapable('Requires env access to "TOKEN"');
  };
  const { errors } = YamlSource.parse("p.yaml", "a: ${TOKEN}\n", denied);
  assert.equal(
    errors[0].message,
    "p.yaml:1:4: a: reading ${TOKEN} needs --allow-env=TOKEN (deno task run allows EBPF_* names)",
  );
});

Deno.test("YamlSource.parse() reports one syntax error, not the follow-ons after it", () => {
  const text = "version: 1\nprobes:\n  bash: { type: bash\n" +
    "outputs:\n  o: { type: stdout, inputs: [bash] }\n".repeat(20);
  const { source, errors } = YamlSource.parse("p.yaml", text);
  assert.equal(source, undefined);
  assert.equal(errors.length, 1);
  assert.match(errors[0].message, /^p\.yaml:\d+:\d+: /);
});

Deno.test("YamlSource.parse() reports an alias used before its anchor at the alias", () => {
  const text = "a: *every\nb: &every 60s\n";
  const { source, errors } = YamlSource.parse("p.yaml", text);
  assert.equal(source, undefined);
  assert.equal(errors.length, 1);
  assert.match(errors[0].message, /^p\.yaml:1:4: .*Unresolved alias.*: every$/);
});

Deno.test("YamlSource.parse() refuses a ${...} nested in a default instead of keeping its text", () => {
  const { errors } = YamlSource.parse("p.yaml", "a: ${A:-${B}}\nb: ${C:-x${D:-y}z}\n", env({}));
  assert.deepEqual(errors.map((e) => e.message), [
    "p.yaml:1:4: a: a ${...} cannot hold another ${...} (${A:-${B}); give the default as text",
    "p.yaml:2:4: b: a ${...} cannot hold another ${...} (${C:-x${D:-y}); give the default as text",
  ]);
});

Deno.test("YamlSource.parse() stops at 4 MiB of ${VAR} text, reporting the value past it", () => {
  const big = "x".repeat(100_000);
  const text = `a: \${BIG}\nb: "${"${BIG}".repeat(30)}"\nc: "${"${BIG}".repeat(30)}"\n`;
  const read: string[] = [];
  const { errors } = YamlSource.parse("p.yaml", text, (name) => {
    read.push(name);
    return big;
  });
  assert.deepEqual(errors.map((e) => e.message), [
    "p.yaml:3:4: c: ${...} in this file expand to more than 4MiB; pass large values as files",
  ]);
  assert.ok(read.length < 50, `${read.length} variables read`);
});

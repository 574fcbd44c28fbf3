/** What the condition tests share: compiling a `when:` value as the loader would. */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import type { ConfigError } from "../../errors.ts";
import { At, type Table } from "../../pipeline/schema.ts";
import { YamlSource } from "../../pipeline/yaml_source.ts";
import type { FieldValue, Record } from "../../record.ts";
import { type Condition, parseCondition } from "./mod.ts";

/** Compiles the `when:` value of a YAML text, as the loader would at path `when`. */
export function compileText(
  text: string,
  env: (name: string) => string | undefined = () => undefined,
): { cond?: Condition; errors: ConfigError[] } {
  const { source, errors } = YamlSource.parse("test.yaml", text, env);
  assert.ok(source, errors.map((e) => e.message).join("\n"));
  const cond = parseCondition((source.value as Table).when, new At(source, "when", errors));
  return { cond, errors };
}

export function compile(value: unknown): { cond?: Condition; errors: ConfigError[] } {
  return compileText(stringify({ when: value }));
}

/** Compiles a condition that must be valid. */
export function cond(value: unknown): Condition {
  const { cond, errors } = compile(value);
  assert.deepEqual(errors.map((e) => e.message), []);
  assert.ok(cond);
  return cond;
}

/** The problems with a condition, as `path: reason`. */
export function problems(value: unknown): string[] {
  const { cond, errors } = compile(value);
  assert.equal(cond, undefined, "a condition with problems compiles to undefined");
  return errors.map((e) => `${e.path}: ${e.reason}`);
}

export function bash(
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

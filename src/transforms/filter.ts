/**
 * The `filter` transform: passes on the records a condition keeps (or does not drop); the
 * others are counted as `records_filtered` and go no further.
 *
 * ```yaml
 * transforms:
 *   no_noise:
 *     type: filter
 *     inputs: [bash]
 *     drop: { field: cmd, regex: "^(ls|cd|pwd|clear)( |$)" }
 * ```
 *
 * The condition language is in `condition/` (its mod.ts).
 */
import type { ConfigError } from "../errors.ts";
import type { At } from "../pipeline/schema.ts";
import type { StageDef } from "../pipeline/stage.ts";
import { type Condition, describeCondition, parseCondition } from "./condition/mod.ts";

/** Options of a `filter` transform: exactly one of `keep` and `drop`. */
export interface FilterConfig {
  /** Records that match pass; the others are filtered out. */
  keep?: Condition;
  /** Records that match are filtered out; the others pass. */
  drop?: Condition;
}

// What a key that was given but did not compile reads as, so `validate` does not also say it
// is missing. The stage is never built with it: the loader stops on the key's own errors.
const BROKEN: Condition = { test: () => false, text: "(invalid condition)" };

const condition = (doc: string) => ({
  type: "custom" as const,
  doc,
  parse: (value: unknown, at: At) => parseCondition(value, at) ?? BROKEN,
});

/** `type: filter`: keeps or drops records by a condition. */
export const filterTransform: StageDef<FilterConfig> = {
  type: "filter",
  kind: "transform",
  describe: "Passes on only the records a condition keeps, or all but those it drops.",
  schema: {
    keep: condition("Pass only records matching this condition (give keep or drop)."),
    drop: condition("Filter out records matching this condition (give keep or drop)."),
  },
  validate(config, at): ConfigError[] {
    if (config.keep !== undefined && config.drop !== undefined) {
      return [
        at.child("drop").problem(
          `give "keep" or "drop", not both (keep passes only matching records, drop removes them)`,
        ),
      ];
    }
    if (config.keep === undefined && config.drop === undefined) {
      return [
        at.problem(
          `needs "keep" or "drop": a condition such as drop: { field: cmd, prefix: "ls" }`,
        ),
      ];
    }
    return [];
  },
  build(config, ctx) {
    const keep = config.keep !== undefined;
    const cond = (config.keep ?? config.drop) as Condition;
    const filtered = ctx.counters.handle("records_filtered");
    return {
      push(record) {
        if (cond.test(record) === keep) ctx.emit(record);
        else filtered.inc();
      },
      flush() {},
      close() {},
    };
  },
  explain(config) {
    if (config.keep !== undefined) {
      return {
        details: [
          `keep when ${describeCondition(config.keep)}`,
          "other records are dropped and counted as records_filtered",
        ],
      };
    }
    return {
      details: [
        `drop when ${describeCondition(config.drop as Condition)}`,
        "dropped records are counted as records_filtered",
      ],
    };
  },
  example: {
    drop: {
      any: [
        { field: "cmd", regex: "^(ls|cd|pwd|clear)( |$)" },
        { field: "user", in: ["backup", "nagios"] },
      ],
    },
  },
};

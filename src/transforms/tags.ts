/**
 * The `tags` transform: renames, sets and removes tags.
 *
 * ```yaml
 * transforms:
 *   label:
 *     type: tags
 *     inputs: [bash]
 *     rename: { source: collector }
 *     add: { env: prod, team: "${TEAM:-infra}" }
 *     drop: [pid_ns]
 * ```
 *
 * Order: `rename`, then `add`, then `drop`. Renames all read the incoming tags, so
 * `{ a: b, b: c }` swaps rather than chains; a renamed value replaces a tag already holding the
 * new name, and `add` overwrites whatever is there. The incoming record is never changed (another
 * branch of the pipeline may hold it): each record goes on as a copy with new tags, its fields
 * object shared.
 */
import type { ConfigError } from "../errors.ts";
import type { StageDef } from "../pipeline/stage.ts";

/** Options of a `tags` transform. */
export interface TagsConfig {
  /** Tags to set (name → value), after renames. */
  add: { [name: string]: string };
  /** Tags to rename (old name → new name). */
  rename: { [name: string]: string };
  /** Tags to remove, last. */
  drop: string[];
}

// The record contract (src/record.ts) promises these on every record.
const REQUIRED_TAGS = ["host", "source"];

/** `type: tags`: renames, sets and removes tags. */
export const tagsTransform: StageDef<TagsConfig> = {
  type: "tags",
  kind: "transform",
  describe: "Renames, sets and removes tags (in that order) on every record.",
  schema: {
    rename: {
      type: "string_map",
      default: {},
      doc: "Tags to rename, old name: new name (applied first).",
    },
    add: {
      type: "string_map",
      default: {},
      doc: "Tags to set, name: value; overwrites a tag of that name (applied after rename).",
    },
    drop: {
      type: "strings",
      default: [],
      doc: "Names of tags to remove (applied last).",
    },
  },
  validate(config, at): ConfigError[] {
    const errors: ConfigError[] = [];
    const { add, rename, drop } = config;
    if (Object.keys(add).length + Object.keys(rename).length + drop.length === 0) {
      errors.push(at.problem("does nothing: give add, rename or drop"));
    }
    for (const [name, value] of Object.entries(add)) {
      if (name === "") errors.push(at.child("add").problem("a tag name cannot be empty"));
      if (value === "") {
        errors.push(
          at.child("add").child(name).problem(
            "a tag value cannot be empty (line protocol has no empty tags); use drop to remove it",
          ),
        );
      }
    }
    const targets = new Map<string, string>();
    for (const [from, to] of Object.entries(rename)) {
      const here = at.child("rename").child(from);
      if (to === "") errors.push(here.problem("the new name cannot be empty"));
      else if (to === from) errors.push(here.problem(`renames "${from}" to itself`));
      const other = targets.get(to);
      if (other !== undefined) {
        errors.push(here.problem(`"${other}" and "${from}" are both renamed to "${to}"`));
      }
      targets.set(to, from);
      if (REQUIRED_TAGS.includes(from)) {
        errors.push(
          here.problem(`every record carries "${from}" (src/record.ts); it cannot be renamed`),
        );
      }
    }
    drop.forEach((name, i) => {
      const here = at.child("drop").child(i);
      if (REQUIRED_TAGS.includes(name)) {
        errors.push(
          here.problem(`every record carries "${name}" (src/record.ts); it cannot be dropped`),
        );
      } else if (Object.hasOwn(add, name)) {
        errors.push(here.problem(`"${name}" is added and then dropped; remove one of the two`));
      } else if (targets.has(name)) {
        errors.push(
          here.problem(
            `"${name}" is renamed from "${targets.get(name)}" and then dropped; ` +
              `drop "${targets.get(name)}" instead`,
          ),
        );
      }
    });
    return errors;
  },
  build(config, ctx) {
    const renames = Object.entries(config.rename);
    const renamed = new Set(Object.keys(config.rename));
    const dropped = new Set(config.drop);
    // validate rejects adding a dropped tag; should it get here anyway, drop still comes last.
    const adds = Object.entries(config.add).filter(([name]) => !dropped.has(name));
    return {
      push(record) {
        const from = record.tags;
        const tags: { [name: string]: string } = {};
        for (const name of Object.keys(from)) {
          if (!renamed.has(name) && !dropped.has(name)) tags[name] = from[name];
        }
        for (const [old, name] of renames) {
          if (Object.hasOwn(from, old) && !dropped.has(name)) tags[name] = from[old];
        }
        for (const [name, value] of adds) tags[name] = value;
        ctx.emit({ ...record, tags });
      },
      flush() {},
      close() {},
    };
  },
  explain(config) {
    const details: string[] = [];
    const renames = Object.entries(config.rename).map(([from, to]) => `${from} → ${to}`);
    if (renames.length > 0) details.push(`rename ${renames.join(", ")}`);
    // Names only: a value may come from ${VAR}, which --explain must not print.
    const adds = Object.keys(config.add);
    if (adds.length > 0) details.push(`add ${adds.join(", ")}`);
    if (config.drop.length > 0) details.push(`drop ${config.drop.join(", ")}`);
    return { details };
  },
  example: {
    rename: { user_group: "group" },
    add: { env: "prod", team: "infra" },
    drop: ["pid_ns"],
  },
};

/**
 * Quoting for the command `--explain` prints, which people paste into a shell: every word is
 * quoted so that a `${VAR}` from the pipeline file still expands there and nothing else does
 * (`$(...)`, backticks, `;`, spaces, globs). Written here because shell-quote and the like quote
 * everything, `${VAR}` included, and the point of keeping the template is that it expands.
 *
 * @module
 */
import { splitTemplate } from "./yaml_source.ts";

// Text no shell treats specially (`=` not first: zsh expands `=cmd`).
const PLAIN = /^[A-Za-z0-9_./:,@%+-][A-Za-z0-9_./:=,@%+-]*$/;

/**
 * One shell word for `template` (pipeline-file syntax: `${NAME}`, `${NAME:-default}`, `$${`):
 * literal text single-quoted where needed, each variable as `"${NAME}"` or
 * `"${NAME:-default}"` with `\`, `$`, `` ` `` and `"` in the default escaped. The text must hold
 * no newline (paths with one are refused before this).
 *
 * @example
 * ```ts
 * shellWord("--allow-write=${DIR:-/var/log}/a b.jsonl"); // --allow-write="${DIR:-/var/log}"'/a b.jsonl'
 * ```
 */
export function shellWord(template: string): string {
  const word = splitTemplate(template).map((part) => {
    if ("text" in part) {
      return PLAIN.test(part.text) ? part.text : `'${part.text.replaceAll("'", `'\\''`)}'`;
    }
    if (part.fallback === undefined) return `"\${${part.name}}"`;
    return `"\${${part.name}:-${part.fallback.replace(/[\\$`"]/g, "\\$&")}}"`;
  }).join("");
  return word === "" ? "''" : word;
}

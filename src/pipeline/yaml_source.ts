/**
 * Reads a YAML file into plain values and remembers where each key path sits, so validation
 * can name `file:line:column` for any value it rejects.
 *
 * String values may use `${VAR}` and `${VAR:-default}`: they are replaced from the environment
 * (only the names the file uses are read; `$${` writes a literal `${`). A default is text: a
 * `${...}` inside one is refused. All of a file's `${VAR}`s expand to at most 4 MiB. A list
 * holds at most 10,000 items. The
 * original text is kept, so `--explain` shows `${VAR}` by name and never its value.
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import type { Node } from "yaml";
import { ConfigError, type SourcePosition } from "../errors.ts";
import { formatSize } from "../units.ts";

// `$${` (escape), or `${NAME}` / `${NAME:-default}`.
const VARIABLE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * The most text all `${VAR}`s of one file may expand to: past it a value is an error, not a
 * string too long for V8 (a bare RangeError) or gigabytes built from a small file.
 */
export const MAX_EXPANSION = 4 * 1024 * 1024;

/** The most items a list may have (inputs, `in:`, rules, test records...). */
export const MAX_LIST_ITEMS = 10_000;

/** A piece of a `${VAR}` template: literal text, or a variable with its default if any. */
export type TemplatePart = { text: string } | { name: string; fallback?: string };

/**
 * Splits text as written in a pipeline file into literal text (`$${` read as `${`) and
 * `${NAME}` / `${NAME:-default}` references, in order.
 *
 * @example
 * ```ts
 * splitTemplate("${DIR:-/var/log}/b.jsonl"); // [{ name: "DIR", fallback: "/var/log" }, { text: "/b.jsonl" }]
 * ```
 */
export function splitTemplate(template: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let text = "", last = 0;
  for (const m of template.matchAll(VARIABLE)) {
    text += template.slice(last, m.index);
    last = m.index + m[0].length;
    if (m[1] === undefined) {
      text += "${";
      continue;
    }
    if (text) parts.push({ text });
    text = "";
    parts.push(m[2] === undefined ? { name: m[1] } : { name: m[1], fallback: m[2] });
  }
  text += template.slice(last);
  if (text) parts.push({ text });
  return parts;
}

/** `text` as a template that stands for itself: `${` written as `$${`. */
export function literalTemplate(text: string): string {
  return text.replaceAll("${", "$${");
}

/** A parsed YAML file: its plain value plus positions by key path. */
export class YamlSource {
  readonly file: string;
  value: unknown;
  readonly #values = new Map<string, number>();
  readonly #keys = new Map<string, number>();
  readonly #lines: LineCounter;
  readonly #templates = new Map<string, string>();
  /** The source text of every number, so `5` (integer) and `5.0` (float) stay apart. */
  readonly #numbers = new Map<string, string>();
  #text = "";
  /** Characters the `${VAR}`s expanded to so far; past MAX_EXPANSION nothing more is read. */
  #expanded = 0;
  /** Each templated value after substitution, by key path. */
  readonly #substituted = new Map<string, string>();
  /** The value each variable had in the environment (not its default), by name. */
  readonly #variables = new Map<string, string>();

  private constructor(file: string, value: unknown, lines: LineCounter) {
    this.file = file;
    this.value = value;
    this.#lines = lines;
  }

  /**
   * Parses `text`; YAML syntax errors and unset variables come back as ConfigErrors, never
   * thrown. `env` reads one variable (undefined when unset); it may throw (no permission).
   */
  static parse(
    file: string,
    text: string,
    env: (name: string) => string | undefined = () => undefined,
  ): { source?: YamlSource; errors: ConfigError[] } {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    if (doc.errors.length > 0) {
      // After the first syntax error the parser's view of the file is lost: the rest are
      // follow-ons (one stray "{" gives a hundred), so report the first.
      const errors = doc.errors.slice(0, 1).map((e) => {
        const pos = lines.linePos(e.pos[0]);
        const reason = e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
        return new ConfigError({ file, line: pos.line, column: pos.col }, "", reason);
      });
      return { errors };
    }
    let value: unknown;
    try {
      value = doc.toJS();
    } catch (e) {
      // Alias errors surface only here (e.g. `*name` before `&name`): point at the alias.
      const message = (e as Error).message;
      const alias = message.match(/: (\S+)$/)?.[1];
      const at = alias === undefined ? -1 : text.indexOf(`*${alias}`);
      const pos = lines.linePos(Math.max(at, 0));
      return { errors: [new ConfigError({ file, line: pos.line, column: pos.col }, "", message)] };
    }
    const source = new YamlSource(file, value, lines);
    source.#text = text;
    const errors: ConfigError[] = [];
    source.#index(doc.contents, "", errors);
    source.value = source.#substitute(source.value, "", env, errors);
    return { source, errors };
  }

  /**
   * The number at `path` typed as a field value: an integer (written without a point or an
   * exponent) as an exact bigint, anything else as a float. Undefined if it is no number.
   */
  numberAt(path: string): bigint | number | undefined {
    const text = this.#numbers.get(path);
    if (text === undefined) return undefined;
    return /^[-+]?\d+$/.test(text) ? BigInt(text) : Number(text);
  }

  /** The text a value had before `${VAR}` substitution, if it used any. */
  template(path: string): string | undefined {
    return this.#templates.get(path);
  }

  /** Every value that used `${VAR}`: its key path, its text as written, and its value. */
  *substitutions(): Iterable<{ path: string; template: string; value: string }> {
    for (const [path, template] of this.#templates) {
      const value = this.#substituted.get(path);
      if (value !== undefined) yield { path, template, value };
    }
  }

  /** What variable `name` held in the environment when read (undefined: unset or its default). */
  variableValue(name: string): string | undefined {
    return this.#variables.get(name);
  }

  /** The environment variables the file names. */
  get variables(): string[] {
    const names = new Set<string>();
    for (const t of this.#templates.values()) {
      for (const m of t.matchAll(VARIABLE)) if (m[1]) names.add(m[1]);
    }
    return [...names].sort();
  }

  #substitute(
    value: unknown,
    path: string,
    env: (name: string) => string | undefined,
    errors: ConfigError[],
  ): unknown {
    if (typeof value === "string") {
      if (!value.includes("${")) return value;
      this.#templates.set(path, value);
      const substituted = value.replace(
        VARIABLE,
        (whole, name: string | undefined, fallback: string | undefined) => {
          if (name === undefined) return "${"; // `$${` escapes
          if (this.#expanded > MAX_EXPANSION) return ""; // reported once, below
          if (fallback?.includes("${")) {
            // `[^}]*` would end the default at the inner `}`, keeping `${B` as its text.
            errors.push(
              this.error(
                path,
                `a \${...} cannot hold another \${...} (${whole}); give the default as text`,
              ),
            );
            return whole;
          }
          const expanded = this.#lookUp(path, whole, name, fallback, env, errors);
          this.#expanded += expanded.length;
          if (this.#expanded <= MAX_EXPANSION) return expanded;
          errors.push(
            this.error(
              path,
              `\${...} in this file expand to more than ${formatSize(MAX_EXPANSION)}; ` +
                "pass large values as files",
            ),
          );
          return "";
        },
      );
      this.#substituted.set(path, substituted);
      return substituted;
    }
    if (Array.isArray(value)) {
      return value.map((v, i) => this.#substitute(v, `${path}[${i}]`, env, errors));
    }
    if (typeof value === "object" && value !== null) {
      const out: { [key: string]: unknown } = {};
      for (const [k, v] of Object.entries(value)) {
        out[k] = this.#substitute(v, path ? `${path}.${k}` : k, env, errors);
      }
      return out;
    }
    return value;
  }

  /** The text one `${NAME}` or `${NAME:-fallback}` (`whole`) stands for; problems to `errors`. */
  #lookUp(
    path: string,
    whole: string,
    name: string,
    fallback: string | undefined,
    env: (name: string) => string | undefined,
    errors: ConfigError[],
  ): string {
    let found: string | undefined;
    try {
      found = env(name);
    } catch (e) {
      const why = e instanceof Deno.errors.NotCapable
        ? `reading \${${name}} needs --allow-env=${name} (deno task run allows EBPF_* names)`
        : (e as Error).message;
      errors.push(this.error(path, why));
      return whole;
    }
    if (found !== undefined && found !== "") {
      this.#variables.set(name, found);
      return found;
    }
    if (fallback !== undefined) return fallback;
    errors.push(
      this.error(
        path,
        `environment variable ${name} is not set (give a default: \${${name}:-value})`,
      ),
    );
    return whole;
  }

  /** Position of the value at `path` (or of its nearest ancestor), for an error about it. */
  at(path: string): SourcePosition {
    return this.#position(this.#values, path);
  }

  /** Position of the key at `path`, for "unknown key" errors. */
  keyAt(path: string): SourcePosition {
    return this.#position(this.#keys, path);
  }

  /** A ConfigError about the value at `path`. */
  error(path: string, reason: string): ConfigError {
    return new ConfigError(this.at(path), path, reason);
  }

  #position(table: Map<string, number>, path: string): SourcePosition {
    for (let p = path;; p = p.includes(".") ? p.slice(0, p.lastIndexOf(".")) : "") {
      const offset = table.get(p) ?? this.#values.get(p);
      if (offset !== undefined) {
        const pos = this.#lines.linePos(offset);
        return { file: this.file, line: pos.line, column: pos.col };
      }
      if (p === "") return { file: this.file, line: 1, column: 1 };
    }
  }

  #index(node: Node | null | undefined, path: string, errors: ConfigError[]): void {
    if (!node) return;
    if (node.range) this.#values.set(path, node.range[0]);
    if (isScalar(node) && typeof node.value === "number" && node.range) {
      this.#numbers.set(path, this.#text.slice(node.range[0], node.range[1]).trim());
    }
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const child = path ? `${path}.${key}` : key;
        if (isScalar(pair.key) && pair.key.range) this.#keys.set(child, pair.key.range[0]);
        this.#index(pair.value as Node, child, errors);
      }
    } else if (isSeq(node)) {
      if (node.items.length > MAX_LIST_ITEMS) {
        errors.push(
          this.error(path, `a list of at most ${MAX_LIST_ITEMS} items, got ${node.items.length}`),
        );
      }
      node.items.forEach((item, i) => this.#index(item as Node, `${path}[${i}]`, errors));
    }
  }
}

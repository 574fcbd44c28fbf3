/**
 * What a line may show of a pipeline's values: no secret reaches a terminal or a log. Text on
 * its way out (`--explain`, every warning a stage logs, pipeline errors) goes through
 * {@linkcode ShownText.mask}, which writes
 * - a value that came from `${VAR}` as its template text (`http://admin:${EBPF_PW}@host`);
 * - a variable's value as `${NAME}` wherever it appears, when the variable sits in a secret
 *   place: a URL's password, or a key marked `secret` (an http `password`, otlp `headers`);
 * - a literal secret key's value, and any password written into a URL (`http://bob:***@host`),
 *   as `***`.
 *
 * @example
 * ```ts
 * const shown = ShownText.of(pipeline); // url: "http://admin:${EBPF_PW}@127.0.0.1:8086"
 * shown.mask("cannot send to http://admin:s3cr3t@127.0.0.1:8086: refused");
 * // "cannot send to http://admin:${EBPF_PW}@127.0.0.1:8086: refused"
 * ```
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { Pipeline } from "./pipeline.ts";
import { isTable } from "./schema.ts";
import { splitTemplate } from "./yaml_source.ts";

// scheme://user:password@ — the password is group 2 (anything up to the @ of the authority).
const URL_PASSWORD = /(\b[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s/?#@:]*:)([^\s/?#@]+)@/g;
const TEMPLATE = /^\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}$/;
/** Values from `${VAR}` at least this long are shown as their template even if no secret. */
const MIN_SHOWN_AS_TEMPLATE = 8;
/** Texts longer than this are not put in the one regex that finds the others. */
const MAX_MATCHED_AT_ONCE = 4096;

/** Replaces what must not be shown in a line of text; see the module doc. */
export class ShownText {
  /** Text → what is shown instead. */
  readonly #pairs = new Map<string, string>();
  /** Matches any text of #pairs, longest first (so a value goes before its parts). */
  #any: RegExp | undefined;
  /** Texts too long for #any (a regex has a size limit), replaced one by one. */
  #long: string[] = [];

  /** The masks for `pipeline`'s values. */
  static of(pipeline: Pick<Pipeline, "source" | "stages">): ShownText {
    return new ShownText().add(pipeline);
  }

  /** Adds `pipeline`'s values (a reload adds the new generation's; none are forgotten). */
  add(pipeline: Pick<Pipeline, "source" | "stages">): this {
    const pairs = this.#pairs;
    const source = pipeline.source;
    // Hand-built pipelines (tests) have no source: nothing came from ${VAR}.
    if (!source) return this;
    const secretKeys = new Set<string>();
    for (const s of pipeline.stages) {
      for (const [key, spec] of Object.entries(s.def.schema)) {
        if (!spec.secret) continue;
        const path = `${s.section}.${s.name}.${key}`;
        secretKeys.add(path);
        // A literal secret (not from ${VAR}) is shown as ***.
        for (const [at, value] of strings(s.raw[key], path)) {
          if (source.template(at) === undefined && value !== "") pairs.set(value, "***");
        }
      }
    }
    for (const { path, template, value } of source.substitutions()) {
      const secret = [...secretKeys].some((k) => path === k || path.startsWith(`${k}.`));
      const names = secretVariables(template, secret);
      for (const name of names) {
        const v = source.variableValue(name);
        if (v) pairs.set(v, `\${${name}}`);
      }
      // What only defaults made is in the file for all to see; a short value that is no secret
      // ("prod") would garble every line it is part of without hiding anything; a value inside
      // its own template (${D:-/var/log}) is shown by it already.
      const fromEnvironment = splitTemplate(template)
        .some((p) => "name" in p && source.variableValue(p.name) !== undefined);
      if (!fromEnvironment || template.includes(value)) continue;
      if (names.length === 0 && value.length < MIN_SHOWN_AS_TEMPLATE) continue;
      pairs.set(value, template);
      // Readers strip a URL's trailing slashes: the stripped value is shown the same way.
      const stripped = value.replace(/\/+$/, "");
      if (stripped !== value && stripped !== "") pairs.set(stripped, template.replace(/\/+$/, ""));
    }
    const texts = [...pairs.keys()].sort((a, b) => b.length - a.length);
    const short = texts.filter((t) => t.length <= MAX_MATCHED_AT_ONCE);
    this.#long = texts.filter((t) => t.length > MAX_MATCHED_AT_ONCE);
    this.#any = undefined;
    try {
      if (short.length > 0) {
        const escaped = short.map((t) => t.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&"));
        this.#any = new RegExp(escaped.join("|"), "g");
      }
    } catch { // "Regular expression too large": one by one, then
      this.#long = texts;
    }
    return this;
  }

  /** `text` with every secret replaced by what may be shown instead. */
  mask(text: string): string {
    let out = text;
    for (const value of this.#long) out = out.replaceAll(value, this.#pairs.get(value)!);
    // One pass: what was put in is not looked at again (a template may hold a value's text).
    if (this.#any) out = out.replace(this.#any, (t) => this.#pairs.get(t)!);
    return out.replace(
      URL_PASSWORD,
      (whole, head: string, password: string) =>
        TEMPLATE.test(password) || password === "***" ? whole : `${head}***@`,
    );
  }

  /** A logger that masks every line before `log` writes it. */
  logger(log: Logger): Logger {
    return {
      info: (m) => log.info(this.mask(m)),
      warn: (m) => log.warn(this.mask(m)),
      debug: (m) => log.debug(this.mask(m)),
    };
  }
}

/** The variables of `template` whose values are secrets: all when `secret`, else a URL's password. */
function secretVariables(template: string, secret: boolean): string[] {
  const names = splitTemplate(template).flatMap((p) => "name" in p ? [p.name] : []);
  if (secret) return names;
  // The template with each variable as one private-use character, to find where each sits.
  let i = 0;
  const shape = splitTemplate(template)
    .map((p) => "name" in p ? String.fromCharCode(0xe000 + i++) : p.text).join("");
  const authority = shape.match(/^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/)?.[1] ?? "";
  const at = authority.lastIndexOf("@");
  const userinfo = at < 0 ? "" : authority.slice(0, at);
  const colon = userinfo.indexOf(":");
  const password = colon < 0 ? "" : userinfo.slice(colon + 1);
  return [...password].flatMap((c) => {
    const n = c.charCodeAt(0) - 0xe000;
    return n >= 0 && n < names.length ? [names[n]] : [];
  });
}

/** Every string under `value` (a scalar, or a mapping's values) with its key path. */
function strings(value: unknown, path: string): [string, string][] {
  if (typeof value === "string") return [[path, value]];
  if (isTable(value)) {
    return Object.entries(value).flatMap(([k, v]) => strings(v, `${path}.${k}`));
  }
  return [];
}

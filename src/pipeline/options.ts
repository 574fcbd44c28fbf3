/**
 * Reads one stage's options out of the YAML, reporting every problem (wrong type, out of
 * range, unknown key) as a positioned ConfigError instead of throwing, so a file with three
 * mistakes shows all three.
 */
import { ConfigError } from "../errors.ts";
import type { YamlSource } from "./yaml_source.ts";

/** The options of the stage at `path`, with typed getters that record errors. */
export class Options {
  readonly #source: YamlSource;
  readonly path: string;
  readonly #values: { [key: string]: unknown };
  readonly #errors: ConfigError[];
  readonly #read = new Set<string>();

  constructor(
    source: YamlSource,
    path: string,
    values: { [key: string]: unknown },
    errors: ConfigError[],
  ) {
    this.#source = source;
    this.path = path;
    this.#values = values;
    this.#errors = errors;
  }

  /** Records a problem with the option `key` (or with the stage when `key` is empty). */
  error(key: string, reason: string): void {
    this.#errors.push(this.#source.error(key ? `${this.path}.${key}` : this.path, reason));
  }

  #get(key: string): unknown {
    this.#read.add(key);
    return this.#values[key];
  }

  /** A string option. */
  string(key: string, fallback: string): string {
    const v = this.#get(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "string" || v === "") {
      this.error(key, `must be a non-empty string, got ${JSON.stringify(v)}`);
      return fallback;
    }
    return v;
  }

  /** An integer option within [min, max]. */
  integer(key: string, fallback: number, min: number, max: number): number {
    const v = this.#get(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      this.error(key, `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
      return fallback;
    }
    return v;
  }

  /** One of a fixed set of strings. */
  oneOf<T extends string>(key: string, allowed: readonly T[], fallback: T): T {
    const v = this.#get(key);
    if (v === undefined || v === null) return fallback;
    if (!allowed.includes(v as T)) {
      this.error(key, `must be one of ${allowed.join(", ")}, got ${JSON.stringify(v)}`);
      return fallback;
    }
    return v as T;
  }

  /** A list of strings (a single string counts as a list of one). */
  stringList(key: string): string[] {
    const v = this.#get(key);
    if (v === undefined || v === null) return [];
    const list = typeof v === "string" ? [v] : v;
    if (!Array.isArray(list) || list.some((s) => typeof s !== "string")) {
      this.error(key, `must be a list of names, got ${JSON.stringify(v)}`);
      return [];
    }
    return list;
  }

  /** Marks `key` as known without reading it (e.g. `type`, read by the loader). */
  known(...keys: string[]): void {
    for (const k of keys) this.#read.add(k);
  }

  /** Reports every key that no getter asked for. Call after reading all options. */
  rejectUnknown(): void {
    for (const key of Object.keys(this.#values)) {
      if (this.#read.has(key)) continue;
      const known = [...this.#read].sort().join(", ");
      const path = `${this.path}.${key}`;
      this.#errors.push(
        new ConfigError(
          this.#source.keyAt(path),
          path,
          `unknown option "${key}" (known: ${known})`,
        ),
      );
    }
  }
}

/**
 * Reads a YAML file into plain values and remembers where each key path sits, so validation
 * can name `file:line:column` for any value it rejects.
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import type { Node } from "yaml";
import { ConfigError, type SourcePosition } from "../errors.ts";

/** A parsed YAML file: its plain value plus positions by key path. */
export class YamlSource {
  readonly file: string;
  readonly value: unknown;
  readonly #values = new Map<string, number>();
  readonly #keys = new Map<string, number>();
  readonly #lines: LineCounter;

  private constructor(file: string, value: unknown, lines: LineCounter) {
    this.file = file;
    this.value = value;
    this.#lines = lines;
  }

  /** Parses `text`; YAML syntax errors come back as ConfigErrors, never thrown. */
  static parse(file: string, text: string): { source?: YamlSource; errors: ConfigError[] } {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    if (doc.errors.length > 0) {
      const errors = doc.errors.map((e) => {
        const pos = lines.linePos(e.pos[0]);
        const reason = e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
        return new ConfigError({ file, line: pos.line, column: pos.col }, "", reason);
      });
      return { errors };
    }
    const source = new YamlSource(file, doc.toJS(), lines);
    source.#index(doc.contents, "");
    return { source, errors: [] };
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

  #index(node: Node | null | undefined, path: string): void {
    if (!node) return;
    if (node.range) this.#values.set(path, node.range[0]);
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const child = path ? `${path}.${key}` : key;
        if (isScalar(pair.key) && pair.key.range) this.#keys.set(child, pair.key.range[0]);
        this.#index(pair.value as Node, child);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => this.#index(item as Node, `${path}[${i}]`));
    }
  }
}

/**
 * The record: the one value every stage passes on (probes emit it, transforms and windows
 * rewrite it, outputs encode it). This is a contract; change it in one commit with every user.
 *
 * - `measurement`: the set's name (`bash`, `netflow`, `dnsflow`).
 * - `tags`: string keys to string values; indexed dimensions. Every record carries `host` and
 *   `source`.
 * - `fields`: typed values. The JS type *is* the field type, so nothing is guessed later:
 *   - `bigint`  → integer (line protocol `12i`, JSON `12`); exact past 2^53.
 *   - `number`  → float (line protocol `1.5`, JSON `1.5`); never used for integers.
 *   - `string`  → string.
 *   - `boolean` → boolean.
 * - `time`: nanoseconds since the Unix epoch as a `bigint` (a JS number loses precision past 2^53).
 *
 * @example
 * ```ts
 * const r: Record = {
 *   measurement: "bash",
 *   tags: { host: "web-1", source: "bash" },
 *   fields: { cmd: "ls -l", pid: "4242", user: "root", message: "..." },
 *   time: 1764085464123456789n,
 * };
 * ```
 */
export interface Record {
  measurement: string;
  tags: { [key: string]: string };
  fields: { [key: string]: FieldValue };
  time: bigint;
}

/** A field value; see {@linkcode Record} for how each JS type maps to a field type. */
export type FieldValue = bigint | number | string | boolean;

/** The name of a field value's type, as encoders and schema checks speak of it. */
export type FieldType = "integer" | "float" | "string" | "boolean";

/** Returns the field type of a value (bigint is integer, number is float). */
export function fieldType(value: FieldValue): FieldType {
  switch (typeof value) {
    case "bigint":
      return "integer";
    case "number":
      return "float";
    case "string":
      return "string";
    default:
      return "boolean";
  }
}

/** Wall-clock now in integer nanoseconds since the epoch (millisecond resolution). */
export function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

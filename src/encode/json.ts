/**
 * JSON encoding of a record: one object per line, exact for every field type.
 *
 * `JSON.stringify` cannot take a bigint and would turn one into a float anyway, so the object is
 * written by hand: integers (bigint fields and `time`) come out as their exact decimal digits,
 * even past 2^53. Readers that parse numbers as doubles (JavaScript's `JSON.parse`) lose those
 * digits; readers that parse into integers (Python, Go `int64` fields) keep them.
 *
 * Float fields that are NaN or ±Infinity are written as `null`: JSON has no spelling for them, and
 * `null` keeps the key present so a reader sees the field was set but not representable.
 *
 * @module
 */

import type { FieldValue, Record } from "../record.ts";

/** Encodes a record as one line of JSON (no trailing newline); see the module doc for types. */
export function encodeJson(record: Record): string {
  const tags = Object.entries(record.tags)
    .map(([key, value]) => `${JSON.stringify(key)}:${JSON.stringify(value)}`)
    .join(",");
  const fields = Object.entries(record.fields)
    .map(([key, value]) => `${JSON.stringify(key)}:${fieldJson(value)}`)
    .join(",");
  return `{"measurement":${JSON.stringify(record.measurement)},"tags":{${tags}},` +
    `"fields":{${fields}},"time":${record.time}}`;
}

function fieldJson(value: FieldValue): string {
  switch (typeof value) {
    case "bigint":
      return value.toString();
    case "number":
      // JSON.stringify already writes the shortest round-tripping form and maps NaN/±Infinity
      // to null; the explicit check documents that choice instead of relying on it silently.
      return Number.isFinite(value) ? JSON.stringify(value) : "null";
    case "string":
      return JSON.stringify(value);
    default:
      return value ? "true" : "false";
  }
}

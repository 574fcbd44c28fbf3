/**
 * InfluxDB line protocol encoding of a record, following Telegraf's `influx` serializer:
 *
 * ```
 * measurement,tag1=v1,tag2=v2 field1=1i,field2=1.5,field3="text",field4=true 1764085464123456789
 * ```
 *
 * - Measurement: `,` and space are backslash-escaped.
 * - Tag keys, tag values, field keys: `,`, `=` and space are backslash-escaped.
 * - In all of the above and in string field values, tab, newline, carriage return and form feed
 *   are written as `\t`, `\n`, `\r`, `\f`, so one record is always one line. With
 *   `{ rawStringControls: true }` (for InfluxDB and DataKit, whose parsers take a quoted string
 *   across lines but do not unescape `\n`), string field values keep them as they are, so a
 *   multi-line command reads back exactly.
 * - A trailing backslash is dropped from measurement, tag keys, tag values and field keys: it
 *   would escape the delimiter that follows it and corrupt the line.
 * - Tags are sorted by key (Unicode code point order, the same as UTF-8 byte order, which is what
 *   InfluxDB recommends); tags whose key or value ends up empty are omitted, as line protocol
 *   forbids empty tag keys and values.
 * - Fields keep their order. `bigint` → `12i`; `number` → shortest round-tripping decimal without
 *   an exponent (`1.5`, `0.0000001`); `string` → double-quoted with `"` and `\` backslash-escaped;
 *   `boolean` → `true` / `false`.
 * - Fields line protocol cannot represent are omitted: floats that are NaN or ±Infinity, integers
 *   outside the signed 64-bit range, fields whose key ends up empty. Each is told to
 *   `onDroppedField` with why, so outputs count them (`fields_dropped{reason}`).
 * - If no field is left, or the measurement is empty, or the time is outside the signed 64-bit
 *   range, the record cannot be written and {@linkcode EncodeError} is thrown.
 *
 * @module
 */

import type { FieldValue, Record } from "../record.ts";

/** Thrown when a record cannot be written as line protocol at all. */
export class EncodeError extends Error {
  /** The measurement of the record that could not be encoded. */
  readonly measurement: string;

  /** Creates the error for a record of `measurement`, with `reason` saying what is missing. */
  constructor(measurement: string, reason: string) {
    super(`cannot encode record of measurement ${JSON.stringify(measurement)}: ${reason}`);
    this.name = "EncodeError";
    this.measurement = measurement;
  }
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

// One table serves every part: each part only matches the characters it must escape.
const ESCAPES: { [char: string]: string } = {
  "\t": "\\t",
  "\n": "\\n",
  "\r": "\\r",
  "\f": "\\f",
  ",": "\\,",
  "=": "\\=",
  " ": "\\ ",
  '"': '\\"',
  "\\": "\\\\",
};
const MEASUREMENT_SPECIAL = /[\t\n\r\f, ]/g;
const KEY_SPECIAL = /[\t\n\r\f,= ]/g;
const STRING_SPECIAL = /[\t\n\r\f"\\]/g;
const STRING_SPECIAL_RAW = /["\\]/g;
const TRAILING_BACKSLASHES = /\\+$/;

/** Why a field was left out of a line. */
export type DroppedFieldReason = "integer_out_of_range" | "float_not_finite" | "empty_key";

/** Options of {@linkcode encodeLineProtocol}; see the module doc. */
export interface LineProtocolOptions {
  /** Keep tab, newline, ... in string field values as they are. */
  rawStringControls?: boolean;
  /** Called once for each field left out of the line, with why. */
  onDroppedField?: (reason: DroppedFieldReason) => void;
}

/** Encodes a record as one line of InfluxDB line protocol (no trailing newline). */
export function encodeLineProtocol(record: Record, options: LineProtocolOptions = {}): string {
  const stringSpecial = options.rawStringControls ? STRING_SPECIAL_RAW : STRING_SPECIAL;
  const measurement = escapeName(record.measurement, MEASUREMENT_SPECIAL);
  if (measurement === "") {
    throw new EncodeError(record.measurement, "the measurement name is empty");
  }
  if (record.time < INT64_MIN || record.time > INT64_MAX) {
    throw new EncodeError(
      record.measurement,
      `time ${record.time} is outside the signed 64-bit nanosecond range`,
    );
  }

  let line = measurement;
  const tagKeys = Object.keys(record.tags).sort(compareCodePoints);
  for (const rawKey of tagKeys) {
    const key = escapeName(rawKey, KEY_SPECIAL);
    const value = escapeName(record.tags[rawKey], KEY_SPECIAL);
    if (key !== "" && value !== "") line += `,${key}=${value}`;
  }

  const fields: string[] = [];
  for (const [rawKey, rawValue] of Object.entries(record.fields)) {
    const key = escapeName(rawKey, KEY_SPECIAL);
    const value = fieldValue(rawValue, stringSpecial);
    if (typeof value !== "string") options.onDroppedField?.(value.dropped);
    else if (key === "") options.onDroppedField?.("empty_key");
    else fields.push(`${key}=${value}`);
  }
  if (fields.length === 0) {
    throw new EncodeError(
      record.measurement,
      "no field can be written (line protocol needs at least one; " +
        "NaN/Infinity floats and out-of-range integers are dropped)",
    );
  }

  return `${line} ${fields.join(",")} ${record.time}`;
}

function escapeName(text: string, special: RegExp): string {
  return text.replace(TRAILING_BACKSLASHES, "").replace(special, (c) => ESCAPES[c]);
}

// Says why for values line protocol has no spelling for.
function fieldValue(
  value: FieldValue,
  stringSpecial: RegExp,
): string | { dropped: DroppedFieldReason } {
  switch (typeof value) {
    case "bigint":
      return value < INT64_MIN || value > INT64_MAX
        ? { dropped: "integer_out_of_range" }
        : `${value}i`;
    case "number":
      return Number.isFinite(value) ? formatFloat(value) : { dropped: "float_not_finite" };
    case "string":
      return `"${value.replace(stringSpecial, (c) => ESCAPES[c])}"`;
    default:
      return value ? "true" : "false";
  }
}

// The shortest decimal that parses back to the same double, without an exponent (as Go's
// strconv.FormatFloat(v, 'f', -1, 64), which Telegraf uses): some line protocol readers reject
// `1e+21`.
function formatFloat(value: number): string {
  if (Object.is(value, -0)) return "-0";
  const text = String(value);
  const match = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(text);
  if (match === null) return text;
  const [, sign, lead, rest = "", exponent] = match;
  const digits = lead + rest;
  // Position of the decimal point within `digits` once the exponent is applied.
  const point = 1 + Number(exponent);
  if (point >= digits.length) return sign + digits + "0".repeat(point - digits.length);
  if (point <= 0) return `${sign}0.${"0".repeat(-point)}${digits}`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

// Code point order equals UTF-8 byte order; the default sort compares UTF-16 units, which differs
// for characters above U+FFFF.
function compareCodePoints(a: string, b: string): number {
  const ai = a[Symbol.iterator]();
  const bi = b[Symbol.iterator]();
  while (true) {
    const x = ai.next();
    const y = bi.next();
    if (x.done || y.done) return x.done ? (y.done ? 0 : -1) : 1;
    const diff = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (diff !== 0) return diff;
  }
}

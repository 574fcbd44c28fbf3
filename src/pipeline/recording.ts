/**
 * The recording format of `--record` and `--replay`: NDJSON, one probe record a line, as it
 * came out of the probe:
 *
 * ```json
 * {"probe":"bash","measurement":"bash","tags":{"host":"h","source":"bash"},"fields":{"cmd":"ls","pid":"42","cmd_length":20000,"ratio":0.5},"time":1795622018659544231}
 * ```
 *
 * A record a probe sent only to side readers (a `dns` probe's answers) carries `"side":true`
 * after `probe`, and is replayed the same way.
 *
 * Field types survive the round trip exactly: an integer field is written as bare digits
 * (exact past 2^53), a float always with a decimal point or an exponent (`5.0`, `1e+21`), and
 * the decoder reads each number's source text to tell them apart. `time` is integer ns (int64).
 * A line is at most {@linkcode MAX_LINE_BYTES}.
 */
import { printable } from "../log.ts";
import type { FieldValue, Record } from "../record.ts";

/** The longest line a recording may have: a record is far smaller; more is not a record. */
export const MAX_LINE_BYTES = 1024 * 1024;

/** One recorded probe record. */
export interface Recorded {
  probe: string;
  record: Record;
  /** Sent to side readers (`ctx.emitSide`, e.g. DNS answers), not downstream. */
  side?: boolean;
}

/** Thrown for a line that is not a recorded record; carries the line number. */
export class RecordingError extends Error {
  override name = "RecordingError";
  readonly line: number;
  constructor(line: number, reason: string) {
    super(`line ${line}: ${reason}`);
    this.line = line;
  }
}

/** One recording line (without the newline). */
export function encodeRecorded(probe: string, r: Record, side = false): string {
  let fields = "";
  for (const [k, v] of Object.entries(r.fields)) {
    fields += `${fields ? "," : ""}${JSON.stringify(k)}:${encodeValue(v)}`;
  }
  return `{"probe":${JSON.stringify(probe)},${side ? `"side":true,` : ""}` +
    `"measurement":${JSON.stringify(r.measurement)},` +
    `"tags":${JSON.stringify(r.tags)},"fields":{${fields}},"time":${r.time}}`;
}

function encodeValue(v: FieldValue): string {
  switch (typeof v) {
    case "bigint":
      return v.toString();
    case "number": {
      if (!Number.isFinite(v)) return "null"; // JSON has no NaN or Infinity
      const text = String(v);
      return /[.e]/.test(text) ? text : `${text}.0`; // a float always looks like one
    }
    default:
      return JSON.stringify(v);
  }
}

type Parsed = { [key: string]: unknown };

/** A JSON number as its source text: a class, so no JSON object can pass for one. */
class NumberText {
  constructor(readonly source: string) {}
}

const INT64_MIN = -(2n ** 63n), INT64_MAX = 2n ** 63n - 1n;

/** A JSON object (not an array, a string or null). */
function isObject(v: unknown): v is Parsed {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof NumberText);
}

/** Decodes one line; `lineNumber` is for the error message. */
export function decodeRecorded(line: string, lineNumber: number): Recorded {
  let raw: unknown;
  try {
    // Numbers come back as their source text (V8's JSON.parse source access), typed below.
    raw = JSON.parse(
      line,
      (_key, value, context?: { source?: string }) =>
        typeof value === "number" ? new NumberText(context?.source ?? String(value)) : value,
    );
  } catch (e) {
    // V8 quotes the line's start: it may hold any byte.
    throw new RecordingError(lineNumber, `not JSON: ${printable((e as Error).message)}`);
  }
  if (!isObject(raw)) throw new RecordingError(lineNumber, "not a JSON object");
  const o = raw;
  const bad = (what: string) => new RecordingError(lineNumber, what);
  if (typeof o.probe !== "string") throw bad(`"probe" must be a string`);
  if (o.side !== undefined && o.side !== true) throw bad(`"side" must be true when present`);
  if (typeof o.measurement !== "string") throw bad(`"measurement" must be a string`);
  const tags = o.tags;
  if (!isObject(tags) || Object.values(tags).some((t) => typeof t !== "string")) {
    throw bad(`"tags" must map names to strings`);
  }
  const time = integerOf(o.time);
  if (time === undefined || time < INT64_MIN || time > INT64_MAX) {
    throw bad(`"time" must be integer nanoseconds (a signed 64-bit integer)`);
  }
  const rawFields = o.fields === undefined ? {} : o.fields;
  if (!isObject(rawFields)) throw bad(`"fields" must map names to values`);
  const fields: { [key: string]: FieldValue } = {};
  for (const [k, v] of Object.entries(rawFields)) {
    const value = fieldOf(v);
    if (value === undefined) throw bad(`field "${k}" must be a string, number or boolean`);
    fields[k] = value;
  }
  return {
    probe: o.probe,
    record: { measurement: o.measurement, tags: tags as { [key: string]: string }, fields, time },
    ...(o.side ? { side: true } : {}),
  };
}

function integerOf(v: unknown): bigint | undefined {
  return v instanceof NumberText && /^-?\d+$/.test(v.source) ? BigInt(v.source) : undefined;
}

function fieldOf(v: unknown): FieldValue | undefined {
  if (typeof v === "string" || typeof v === "boolean") return v;
  if (v === null) return NaN;
  if (!(v instanceof NumberText)) return undefined;
  return /^-?\d+$/.test(v.source) ? BigInt(v.source) : Number(v.source);
}

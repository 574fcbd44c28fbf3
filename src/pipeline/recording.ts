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
 *
 * **Host facts.** What stages know of the host (src/pipeline/host_facts.ts) is recorded too, so
 * a replay tags and collapses as the recording host did, on any machine:
 *
 * - The first line is a header with the host's ephemeral port range (what `ephemeral_port`
 *   without `range`, and a probe folding ports for it, use):
 *   `{"recording":1,"host_facts":{"port_range":[32768,60999]}}`.
 * - A container stage's facts are lines of their own, written when the stage first sees each:
 *   `{"host_fact":"container","cgroup_id":4242,"container_id":"4f2a…"}` and
 *   `{"host_fact":"pod","container_id":"4f2a…","namespace":"shop","pod":"cart-7d9f","container":"app"}`,
 *   and the remote ends they tagged (an address's identity again when it changed hands):
 *   `{"host_fact":"remote","ip":"10.96.4.2","namespace":"shop","service":"cart"}`.
 *   A cgroup's container and a container's pod never change, so a replay knows every fact of
 *   the recording from its start (it reads them before the records). Only what the recording's
 *   container stages looked up is there: a recording made without one has no container facts,
 *   and its replay tags no container; a pod the watcher had not yet listed when a record went
 *   by is known, in the replay, from the start.
 *
 * A recording without a header (made before recordings kept host facts) replays as it did:
 * with the facts of the host that replays it.
 */
import { printable } from "../log.ts";
import type { FieldValue, Record } from "../record.ts";
import type { HostFact, PodInfo, PortRange } from "./host_facts.ts";

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

/** Decodes one record line; `lineNumber` is for the error message. */
export function decodeRecorded(line: string, lineNumber: number): Recorded {
  return recordedOf(
    parseLine(line, lineNumber),
    (what) => new RecordingError(lineNumber, what),
  );
}

/** A line's JSON object, numbers kept as their source text. */
function parseLine(line: string, lineNumber: number): Parsed {
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
  return raw;
}

function recordedOf(o: Parsed, bad: (what: string) => RecordingError): Recorded {
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

/** The recording's first line: the format's version and the host's port range. */
export function encodeHeader(portRange: PortRange): string {
  return `{"recording":${FORMAT_VERSION},"host_facts":` +
    `{"port_range":[${portRange.low},${portRange.high}]}}`;
}

/** One host fact's line. */
export function encodeHostFact(f: HostFact): string {
  if (f.fact === "container") {
    return `{"host_fact":"container","cgroup_id":${f.cgroupId},` +
      `"container_id":${JSON.stringify(f.containerId)}}`;
  }
  if (f.fact === "remote") {
    return JSON.stringify({ host_fact: "remote", ip: f.ip, ...f.remote });
  }
  const { namespace, pod, container } = f.pod;
  return `{"host_fact":"pod","container_id":${JSON.stringify(f.containerId)},` +
    `"namespace":${JSON.stringify(namespace)},"pod":${JSON.stringify(pod)},` +
    `"container":${JSON.stringify(container)}}`;
}

/** The format version a header names; a later one is refused (it may mean something else). */
const FORMAT_VERSION = 1;

/** One line of a recording, of whichever kind. */
export type RecordingLine =
  | { kind: "record"; recorded: Recorded }
  | { kind: "header"; portRange: PortRange }
  | { kind: "fact"; fact: HostFact };

/** Decodes any line: a record, the header (only as line 1) or a host fact. */
export function decodeLine(line: string, lineNumber: number): RecordingLine {
  const o = parseLine(line, lineNumber);
  const bad = (what: string) => new RecordingError(lineNumber, what);
  if ("recording" in o) {
    if (lineNumber !== 1) throw bad('a header ("recording") may only be the first line');
    const version = integerOf(o.recording);
    if (version !== BigInt(FORMAT_VERSION)) {
      throw bad(
        `"recording" is format ${FORMAT_VERSION}; this one is not (written by a newer collector?)`,
      );
    }
    const facts = o.host_facts;
    const range = isObject(facts) && Array.isArray(facts.port_range) ? facts.port_range : [];
    const [low, high] = range.map(integerOf).map(Number);
    if (range.length !== 2 || !(low >= 1 && low <= high && high <= 65535)) {
      throw bad(`"host_facts" must hold "port_range": [low, high] within 1..65535`);
    }
    return { kind: "header", portRange: { low, high } };
  }
  if ("host_fact" in o) return { kind: "fact", fact: hostFactOf(o, bad) };
  return { kind: "record", recorded: recordedOf(o, bad) };
}

function hostFactOf(o: Parsed, bad: (what: string) => RecordingError): HostFact {
  if (o.host_fact === "remote") {
    if (typeof o.ip !== "string" || !o.ip) throw bad(`"ip" must be an address`);
    if (typeof o.namespace !== "string") throw bad(`"namespace" must be a string`);
    const optional = ["service", "pod", "workload"] as const;
    const wrong = optional.find((k) => k in o && typeof o[k] !== "string");
    if (wrong) throw bad(`"${wrong}" must be a string`);
    return {
      fact: "remote",
      ip: o.ip,
      remote: {
        namespace: o.namespace,
        ...(typeof o.service === "string" ? { service: o.service } : {}),
        ...(typeof o.pod === "string" ? { pod: o.pod } : {}),
        ...(typeof o.workload === "string" ? { workload: o.workload } : {}),
      },
    };
  }
  if (typeof o.container_id !== "string" || !o.container_id) {
    throw bad(`"container_id" must be a container's id`);
  }
  if (o.host_fact === "container") {
    const cgroupId = integerOf(o.cgroup_id);
    if (cgroupId === undefined || cgroupId <= 0n) throw bad(`"cgroup_id" must be a cgroup's id`);
    return { fact: "container", cgroupId, containerId: o.container_id };
  }
  if (o.host_fact === "pod") {
    const names = ["namespace", "pod", "container"] as const;
    const missing = names.find((k) => typeof o[k] !== "string");
    if (missing) throw bad(`"${missing}" must be a string`);
    const pod: PodInfo = {
      namespace: o.namespace as string,
      pod: o.pod as string,
      container: o.container as string,
    };
    return { fact: "pod", containerId: o.container_id, pod };
  }
  throw bad(`"host_fact" must be "container", "pod" or "remote"`);
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

/**
 * An OTLP/HTTP receiver on loopback that stands in for an OpenTelemetry collector (none is
 * packaged here). It checks every request against the official OTLP definitions: the message
 * types generated from opentelemetry-proto's .proto files, as the OpenTelemetry JS SDK ships them
 * (`@opentelemetry/otlp-transformer`'s `generated/root.js`, protobufjs static code). A body is
 * read with `fromObject`, checked with `verify`, encoded to protobuf, decoded, and converted back
 * to OTLP JSON (64-bit integers as decimal strings, enums as integers); it must come back equal
 * to what was sent, so a misspelt or snake_case field, a number where OTLP JSON wants a string,
 * an enum by name or two members of one oneof all show. Then the rules the proto only states in
 * comments: a metric has one kind of data, a data point has a time and one value, a sum has a
 * temporality, attribute keys are unique. A request that fails gets 400 (as a collector answers
 * bad data) and the problem is kept; disposing the stand-in throws if there were any.
 * Not handled: `traceId`/`spanId` (hex in OTLP JSON, base64 to protobufjs); the output sends none.
 */
import root from "@opentelemetry/otlp-transformer/build/src/generated/root.js";
import { type Captured, startStandin } from "./_http_standin.ts";

/** The part of a protobufjs generated message type used here (its .d.ts says only `Root`). */
interface MessageType {
  fromObject(object: unknown): unknown;
  verify(message: unknown): string | null;
  encode(message: unknown): { finish(): Uint8Array };
  decode(bytes: Uint8Array): unknown;
  toObject(message: unknown, options: { [option: string]: unknown }): unknown;
}

const collector = (root as unknown as {
  opentelemetry: {
    proto: {
      collector: {
        metrics: { v1: { ExportMetricsServiceRequest: MessageType } };
        logs: { v1: { ExportLogsServiceRequest: MessageType } };
      };
    };
  };
}).opentelemetry.proto.collector;

/** The export request each OTLP/HTTP path takes. */
const REQUEST_TYPES: { [path: string]: { name: string; type: MessageType } } = {
  "/v1/metrics": {
    name: "ExportMetricsServiceRequest",
    type: collector.metrics.v1.ExportMetricsServiceRequest,
  },
  "/v1/logs": {
    name: "ExportLogsServiceRequest",
    type: collector.logs.v1.ExportLogsServiceRequest,
  },
};

/** OTLP JSON, as the types below read it. */
type Json = { [key: string]: unknown };
/** An `AnyValue` flattened: a string, an intValue's decimal string, a double or a boolean. */
export type Value = string | number | boolean;

/** One metric data point, with what its metric and resource say. */
export interface Point {
  metric: string;
  kind: "sum" | "gauge";
  unit?: string;
  aggregationTemporality?: number;
  isMonotonic?: boolean;
  resource: { [key: string]: Value };
  scope: string;
  attributes: { [key: string]: Value };
  timeUnixNano: string;
  /** `asInt` (a decimal string) or `asDouble`. */
  value: string | number;
  valueKind: "asInt" | "asDouble";
}

/** One log record, with its resource. */
export interface Log {
  resource: { [key: string]: Value };
  scope: string;
  timeUnixNano: string;
  severityNumber?: number;
  body?: Value;
  attributes: { [key: string]: Value };
}

/** A running stand-in collector. */
export interface OtlpStandin extends AsyncDisposable {
  /** `http://127.0.0.1:<port>`: the output's `url`. */
  readonly url: string;
  /** Every request as received (gunzipped), valid or not. */
  readonly requests: Captured[];
  /** Why requests were refused (400), if any. */
  readonly problems: string[];
  /** Every data point of every valid metrics request, in arrival order. */
  points(): Point[];
  /** Every log record of every valid logs request, in arrival order. */
  logs(): Log[];
  /** Resolves once at least `n` requests have arrived. */
  waitFor(n: number, timeoutMs?: number): Promise<void>;
}

/**
 * Checks one request as a collector's OTLP/HTTP JSON receiver would take it; returns the
 * problems (none: valid).
 */
export function checkRequest(req: Pick<Captured, "method" | "path" | "headers" | "body">): {
  problems: string[];
  json?: Json;
} {
  const where = REQUEST_TYPES[req.path];
  if (req.method !== "POST") return { problems: [`${req.method}: OTLP/HTTP takes POST`] };
  if (!where) return { problems: [`${req.path}: not an OTLP/HTTP path (/v1/metrics, /v1/logs)`] };
  const type = req.headers.get("content-type");
  if (type?.split(";")[0].trim() !== "application/json") {
    return { problems: [`Content-Type ${type}: the JSON encoding needs application/json`] };
  }
  let json: Json;
  try {
    json = JSON.parse(req.body);
  } catch (e) {
    return { problems: [`not JSON: ${e}`] };
  }
  const problems = checkAgainstProto(where.type, json).map((p) => `${where.name}: ${p}`);
  if (problems.length === 0) {
    problems.push(...(req.path === "/v1/metrics" ? checkMetrics(json) : checkLogs(json)));
  }
  return { problems, json };
}

/** fromObject → verify → encode → decode → toObject: must give back what was sent. */
function checkAgainstProto(type: MessageType, json: Json): string[] {
  let message;
  try {
    message = type.fromObject(json);
  } catch (e) {
    return [`fromObject: ${e}`];
  }
  const invalid = type.verify(message);
  if (invalid) return [`verify: ${invalid}`];
  const back = type.toObject(type.decode(type.encode(message).finish()), {
    longs: String,
    enums: Number,
    json: true,
  });
  const diff = firstDifference(json, back, "");
  return diff ? [`not OTLP JSON: ${diff}`] : [];
}

/** Where two JSON values first differ, or undefined. */
function firstDifference(sent: unknown, back: unknown, path: string): string | undefined {
  if (Array.isArray(sent) || Array.isArray(back)) {
    if (!Array.isArray(sent) || !Array.isArray(back) || sent.length !== back.length) {
      return `${path}: sent ${brief(sent)}, the proto reads ${brief(back)}`;
    }
    for (let i = 0; i < sent.length; i++) {
      const d = firstDifference(sent[i], back[i], `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  if (isObject(sent) && isObject(back)) {
    for (const key of new Set([...Object.keys(sent), ...Object.keys(back)])) {
      if (!(key in back)) return `${path}.${key}: not a field of the proto (or not its type)`;
      const d = firstDifference(sent[key], back[key], `${path}.${key}`);
      if (d) return d;
    }
    return undefined;
  }
  return sent === back ? undefined : `${path}: sent ${brief(sent)}, the proto reads ${brief(back)}`;
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function brief(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 80)}...` : s;
}

function list(v: unknown): Json[] {
  return Array.isArray(v) ? v : [];
}

/** Attribute keys must be unique (common.proto); returns a problem or undefined. */
function uniqueKeys(attributes: unknown, where: string): string | undefined {
  const keys = list(attributes).map((a) => a.key as string);
  const dup = keys.find((k, i) => keys.indexOf(k) !== i);
  return dup === undefined ? undefined : `${where}: attribute ${dup} twice`;
}

function checkMetrics(json: Json): string[] {
  const problems: string[] = [];
  list(json.resourceMetrics).forEach((rm, r) => {
    const resource = rm.resource as Json | undefined;
    const dupe = uniqueKeys(resource?.attributes, `resourceMetrics[${r}].resource`);
    if (dupe) problems.push(dupe);
    list(rm.scopeMetrics).forEach((sm, s) => {
      list(sm.metrics).forEach((m, i) => {
        const at = `resourceMetrics[${r}].scopeMetrics[${s}].metrics[${i}]`;
        if (!m.name) problems.push(`${at}: no name`);
        const kinds = ["gauge", "sum", "histogram", "exponentialHistogram", "summary"]
          .filter((k) => k in m);
        if (kinds.length !== 1) problems.push(`${at}: data ${kinds.join(", ") || "missing"}`);
        const data = (m.sum ?? m.gauge) as Json | undefined;
        if (m.sum && ![1, 2].includes(data?.aggregationTemporality as number)) {
          problems.push(`${at}.sum: aggregationTemporality must be DELTA (1) or CUMULATIVE (2)`);
        }
        list(data?.dataPoints).forEach((p, j) => {
          const pat = `${at}.dataPoints[${j}]`;
          if (!p.timeUnixNano || p.timeUnixNano === "0") problems.push(`${pat}: no timeUnixNano`);
          if (("asInt" in p) === ("asDouble" in p)) problems.push(`${pat}: needs one value`);
          const d = uniqueKeys(p.attributes, pat);
          if (d) problems.push(d);
        });
      });
    });
  });
  return problems;
}

function checkLogs(json: Json): string[] {
  const problems: string[] = [];
  list(json.resourceLogs).forEach((rl, r) => {
    const resource = rl.resource as Json | undefined;
    const dupe = uniqueKeys(resource?.attributes, `resourceLogs[${r}].resource`);
    if (dupe) problems.push(dupe);
    list(rl.scopeLogs).forEach((sl, s) => {
      list(sl.logRecords).forEach((l, i) => {
        const at = `resourceLogs[${r}].scopeLogs[${s}].logRecords[${i}]`;
        const severity = l.severityNumber as number | undefined;
        if (severity !== undefined && !(severity >= 1 && severity <= 24)) {
          problems.push(`${at}: severityNumber ${severity} is not 1..24`);
        }
        const d = uniqueKeys(l.attributes, at);
        if (d) problems.push(d);
      });
    });
  });
  return problems;
}

/** An `AnyValue` as a plain value (arrays and maps, never sent here, as their JSON). */
export function valueOf(v: unknown): Value {
  const a = (v ?? {}) as Json;
  if ("stringValue" in a) return a.stringValue as string;
  if ("intValue" in a) return a.intValue as string;
  if ("doubleValue" in a) return a.doubleValue as number;
  if ("boolValue" in a) return a.boolValue as boolean;
  return JSON.stringify(a);
}

function attributesOf(v: unknown): { [key: string]: Value } {
  return Object.fromEntries(list(v).map((kv) => [kv.key as string, valueOf(kv.value)]));
}

/** Every data point of metrics requests, flattened. */
export function pointsOf(requests: readonly Json[]): Point[] {
  const out: Point[] = [];
  for (const req of requests) {
    for (const rm of list(req.resourceMetrics)) {
      const resource = attributesOf((rm.resource as Json | undefined)?.attributes);
      for (const sm of list(rm.scopeMetrics)) {
        const scope = String((sm.scope as Json | undefined)?.name ?? "");
        for (const m of list(sm.metrics)) {
          const kind = "sum" in m ? "sum" : "gauge";
          const data = m[kind] as Json;
          for (const p of list(data.dataPoints)) {
            const valueKind = "asInt" in p ? "asInt" : "asDouble";
            out.push({
              metric: m.name as string,
              kind,
              ...(m.unit === undefined ? {} : { unit: m.unit as string }),
              ...(kind === "sum"
                ? {
                  aggregationTemporality: data.aggregationTemporality as number,
                  isMonotonic: data.isMonotonic as boolean,
                }
                : {}),
              resource,
              scope,
              attributes: attributesOf(p.attributes),
              timeUnixNano: p.timeUnixNano as string,
              value: p[valueKind] as string | number,
              valueKind,
            });
          }
        }
      }
    }
  }
  return out;
}

/** Every log record of logs requests, flattened. */
export function logsOf(requests: readonly Json[]): Log[] {
  const out: Log[] = [];
  for (const req of requests) {
    for (const rl of list(req.resourceLogs)) {
      const resource = attributesOf((rl.resource as Json | undefined)?.attributes);
      for (const sl of list(rl.scopeLogs)) {
        const scope = String((sl.scope as Json | undefined)?.name ?? "");
        for (const l of list(sl.logRecords)) {
          out.push({
            resource,
            scope,
            timeUnixNano: l.timeUnixNano as string,
            ...(l.severityNumber === undefined
              ? {}
              : { severityNumber: l.severityNumber as number }),
            ...(l.body === undefined ? {} : { body: valueOf(l.body) }),
            attributes: attributesOf(l.attributes),
          });
        }
      }
    }
  }
  return out;
}

/**
 * Starts the stand-in collector on a free loopback port. Valid requests get what `answer`
 * returns (by default 200 with an empty export response, as a collector answers); invalid ones
 * get 400.
 *
 * @example
 * ```ts
 * await using collector = startOtlpStandin();
 * // ... an otlp output with url: collector.url sends ...
 * assert.deepEqual(collector.problems, []);
 * const bytes = collector.points().filter((p) => p.metric === "netflow.bytes_read");
 * ```
 */
export function startOtlpStandin(
  answer: (req: Captured, n: number) => Response | Promise<Response> = () =>
    Response.json({}, { status: 200 }),
): OtlpStandin {
  const problems: string[] = [];
  // Only what was answered 2xx counts as received, as with a real collector.
  const metrics: Json[] = [], logs: Json[] = [];
  const standin = startStandin(async (req, n) => {
    const checked = checkRequest(req);
    if (checked.problems.length > 0) {
      problems.push(...checked.problems.map((p) => `request ${n} (${req.path}): ${p}`));
      return new Response(checked.problems.join("\n"), { status: 400 });
    }
    const response = await answer(req, n);
    if (response.ok) (req.path === "/v1/metrics" ? metrics : logs).push(checked.json!);
    return response;
  });
  return {
    url: standin.url,
    requests: standin.requests,
    problems,
    points: () => pointsOf(metrics),
    logs: () => logsOf(logs),
    waitFor: (n, timeoutMs) => standin.waitFor(n, timeoutMs),
    async [Symbol.asyncDispose]() {
      await standin[Symbol.asyncDispose]();
      if (problems.length > 0) throw new Error(`OTLP stand-in:\n${problems.join("\n")}`);
    },
  };
}

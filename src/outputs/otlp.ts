/**
 * The `otlp` output: records to an OpenTelemetry collector (or any OTLP/HTTP receiver) as OTLP
 * over HTTP with the JSON encoding, in batches, with the `http` output's retries and spool.
 *
 * ```yaml
 * outputs:
 *   otel:
 *     type: otlp
 *     inputs: [netflow_per_minute, dnsflow_per_minute, bash]
 *     url: http://127.0.0.1:4318          # the collector's OTLP/HTTP base URL
 *     headers:
 *       api-key: ${OTLP_API_KEY}          # sent with every request; never printed
 *     spool_dir: /var/spool/ebpf-collector/otel
 * ```
 *
 * - **Where:** `bash` and `bash_activity` records are logs, `POST <url>/v1/logs` (an
 *   `ExportLogsServiceRequest`); every other measurement (`netflow`, `dnsflow`, a window's) is
 *   metrics, `POST <url>/v1/metrics` (an `ExportMetricsServiceRequest`). `Content-Type:
 *   application/json`.
 * - **JSON** as the OTLP specification says: lowerCamelCase names, 64-bit integers as decimal
 *   strings, enums as integers.
 * - **Resource:** `host.name` (the record's `host` tag), `service.name` `ebpf-collector`,
 *   `service.version`; scope `ebpf-collector`. A request holds one resource per host.
 * - **Metrics:** each integer or float field is a data point of the metric
 *   `<measurement>.<field>` (`netflow.bytes_read`), with the record's other tags as attributes,
 *   its time as `timeUnixNano`, and `asInt` (integers) or `asDouble` (floats). Fields named in
 *   `sum_fields` (by default the counts: bytes, retransmits, connections, requests) are
 *   monotonic delta sums (each record says what happened since the last one); the others (rtt,
 *   latency, rcode...) are gauges. Known units are set (`By`, `us`, `ns`). String and boolean
 *   fields are not metrics: skipped, counted as `fields_skipped`, as are integers outside
 *   int64; a record left with no metric is counted as `records_dropped{reason=no_metrics}`.
 *   No `startTimeUnixNano`: records do not say when their interval began.
 * - **Logs:** one log record per `bash` (or `bash_activity`) record: its time,
 *   `severityNumber` 9 (INFO), body the `cmd`, attributes the other fields (`pid`, `user`,
 *   ...) and tags but `host`.
 * - **Delivery** is the `http` output's (see http_sender.ts): batches of `batch_size` records or
 *   `batch_age`, gzip, one request at a time, retries with backoff and `Retry-After` on
 *   connection errors, 429 and 5xx, any other 4xx final (dropped, counted), `buffer_records` and
 *   `when_full` in memory, the `spool_dir` in an outage, at-least-once. A 200 that reports a
 *   partial success is logged (at most once a minute) and its rejected points or log records
 *   counted as `points_rejected` / `logs_rejected`; the batch is not sent again. Only the first
 *   8 KiB of an answer are read (a partial success is far smaller); a longer one is cut unread.
 * - **Counters:** the `http` output's, plus `fields_skipped`, `points_rejected`, `logs_rejected`.
 *
 * @module
 */
import type { BoundCounters } from "../counters.ts";
import type { ConfigError } from "../errors.ts";
import type { StageDef } from "../pipeline/stage.ts";
import type { FieldValue, Record } from "../record.ts";
import { printable } from "../log.ts";
import { TCP_FAILURES } from "../probes/netflow_fields.ts";
import { VERSION } from "../version.ts";
import {
  HttpSender,
  type Protocol,
  SENDER_SCHEMA,
  type SenderConfig,
  senderExplanation,
} from "./http_sender.ts";
import { parseUrl } from "./url.ts";

/** Options of an `otlp` output, as the schema reads them. */
export interface OtlpConfig extends SenderConfig {
  /** Extra request headers (e.g. an API key). */
  headers: { [name: string]: string };
  /** Fields sent as monotonic delta sums; every other numeric field is a gauge. */
  sum_fields: string[];
}

/** The collector's own name, as `service.name` and the instrumentation scope's name. */
export const SERVICE_NAME = "ebpf-collector";
export const METRICS_PATH = "/v1/metrics";
export const LOGS_PATH = "/v1/logs";
const DEFAULT_URL = "http://127.0.0.1:4318";
/** The counts of the measurements (../shared/reference/measurements.md). */
export const DEFAULT_SUM_FIELDS: readonly string[] = [
  "bytes_read",
  "bytes_written",
  "retransmits",
  "tcp_established",
  "tcp_closed",
  ...TCP_FAILURES.map(([field]) => field), // netflow's failure counts, as its probe names them
  "count",
];
/** Units of the measurements' fields, in UCUM as OpenTelemetry names them. */
const UNITS: { readonly [field: string]: string } = {
  bytes_read: "By",
  bytes_written: "By",
  rtt: "us",
  rtt_var: "us",
  latency: "ns",
  latency_max: "ns",
};
/** Measurements sent as logs; the rest are metrics. */
const LOG_MEASUREMENTS = new Set(["bash", "bash_activity"]); // one per command: events, not series
/** `SeverityNumber.SEVERITY_NUMBER_INFO` in opentelemetry/proto/logs/v1/logs.proto. */
const SEVERITY_INFO = 9;
/** `AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA` in metrics.proto. */
const TEMPORALITY_DELTA = 1;
/** Headers the output sets itself. */
const OWN_HEADERS = new Set(["content-type", "content-encoding", "content-length", "host"]);
const INT64_MIN = -(2n ** 63n), INT64_MAX = 2n ** 63n - 1n;

/** One metric data point of a record, its `NumberDataPoint` already JSON. */
export interface OtlpPoint {
  /** `<measurement>.<field>` */
  name: string;
  sum: boolean;
  /** The field's unit, or "". */
  unit: string;
  /** JSON of a `NumberDataPoint`. */
  point: string;
}

/** One record as a batch holds it: its host and JSON fragments that {@linkcode bodyOf} groups. */
export type OtlpItem =
  | { host: string; points: OtlpPoint[] }
  /** JSON of a `LogRecord`. */
  | { host: string; log: string };

/** What the protocol counts; a stage's counters, or a test's. */
type Counting = Pick<BoundCounters, "add" | "handle">;

const json = JSON.stringify;

/** An `AnyValue` in OTLP JSON. */
export function anyValue(value: FieldValue): string {
  switch (typeof value) {
    case "string":
      return `{"stringValue":${json(value)}}`;
    case "bigint":
      // Beyond int64 (not in any measurement): the digits, as a string rather than wrong.
      return value >= INT64_MIN && value <= INT64_MAX
        ? `{"intValue":"${value}"}`
        : `{"stringValue":"${value}"}`;
    case "number":
      return `{"doubleValue":${double(value)}}`;
    default:
      return `{"boolValue":${value}}`;
  }
}

/** A double in proto3 JSON: a number, or "NaN" / "Infinity" / "-Infinity" as strings. */
function double(n: number): string {
  return Number.isFinite(n) ? json(n) : `"${n}"`;
}

function keyValue(key: string, value: FieldValue): string {
  return `{"key":${json(key)},"value":${anyValue(value)}}`;
}

/** A `Resource` for one host, in OTLP JSON. */
export function resourceOf(host: string): string {
  return `{"attributes":[${keyValue("host.name", host)},${keyValue("service.name", SERVICE_NAME)},${
    keyValue("service.version", VERSION)
  }]}`;
}

const SCOPE = `{"name":${json(SERVICE_NAME)}}`;

/** The tags but `host` as attributes (host is the resource's). */
function tagAttributes(record: Record): string[] {
  const out: string[] = [];
  for (const key in record.tags) if (key !== "host") out.push(keyValue(key, record.tags[key]));
  return out;
}

/**
 * The OTLP/HTTP JSON protocol: `encode` turns a record into a metric or log fragment,
 * `bodyOf` groups a batch's fragments by host and metric name into one export request.
 * `host` stands in for a record without a `host` tag.
 *
 * @example
 * ```ts
 * const p = otlpProtocol({ headers: {}, sum_fields: [...DEFAULT_SUM_FIELDS] }, counters, "h");
 * const item = p.encode(record)!;
 * const body = p.bodyOf([item], p.pathOf(record)); // {"resourceMetrics":[...]}
 * ```
 */
export function otlpProtocol(
  config: Pick<OtlpConfig, "headers" | "sum_fields">,
  counters: Counting,
  host: string,
): Protocol<OtlpItem> {
  const sums = new Set(config.sum_fields);
  const skipped = counters.handle("fields_skipped");
  const noMetrics = counters.handle("records_dropped", { reason: "no_metrics" });

  function encodeMetrics(record: Record, h: string): OtlpItem | undefined {
    // What every data point of the record shares; each adds its value.
    const attributes = tagAttributes(record).join(",");
    const head = `{"attributes":[${attributes}],"timeUnixNano":"${record.time}"`;
    const points: OtlpPoint[] = [];
    for (const field in record.fields) {
      const v = record.fields[field];
      let value: string;
      if (typeof v === "bigint" && v >= INT64_MIN && v <= INT64_MAX) value = `"asInt":"${v}"`;
      else if (typeof v === "number") value = `"asDouble":${double(v)}`;
      else {
        skipped.inc();
        continue;
      }
      points.push({
        name: `${record.measurement}.${field}`,
        sum: sums.has(field),
        unit: Object.hasOwn(UNITS, field) ? UNITS[field] : "",
        point: `${head},${value}}`,
      });
    }
    if (points.length === 0) {
      noMetrics.inc();
      return undefined;
    }
    return { host: h, points };
  }

  function encodeLog(record: Record, h: string): OtlpItem {
    const { cmd, ...rest } = record.fields;
    const attributes = Object.entries(rest).map(([k, v]) => keyValue(k, v));
    // Keys must be unique: a tag named like a field gives way to the field.
    for (const key in record.tags) {
      if (key !== "host" && !Object.hasOwn(rest, key)) {
        attributes.push(keyValue(key, record.tags[key]));
      }
    }
    const body = cmd === undefined ? "" : `,"body":${anyValue(cmd)}`;
    return {
      host: h,
      log: `{"timeUnixNano":"${record.time}","severityNumber":${SEVERITY_INFO}${body},` +
        `"attributes":[${attributes.join(",")}]}`,
    };
  }

  return {
    encode(record) {
      const h = record.tags.host ?? host;
      return LOG_MEASUREMENTS.has(record.measurement)
        ? encodeLog(record, h)
        : encodeMetrics(record, h);
    },
    pathOf: (record) => LOG_MEASUREMENTS.has(record.measurement) ? LOGS_PATH : METRICS_PATH,
    bodyOf,
    headers() {
      const h = new Headers(config.headers);
      h.set("Content-Type", "application/json");
      return h;
    },
    accepted(body) {
      return partialSuccess(body, counters);
    },
  };
}

/**
 * One export request from a batch's items (all metrics, or all logs: one path): resources by
 * host, metrics by name, in the order they first came.
 */
export function bodyOf(items: readonly OtlpItem[], path: string): string {
  const hosts = new Map<string, OtlpItem[]>();
  for (const item of items) {
    const list = hosts.get(item.host);
    if (list) list.push(item);
    else hosts.set(item.host, [item]);
  }
  const resources: string[] = [];
  if (path === LOGS_PATH) {
    for (const [host, list] of hosts) {
      const logs = list.map((i) => "log" in i ? i.log : "").filter(Boolean);
      resources.push(
        `{"resource":${resourceOf(host)},"scopeLogs":[{"scope":${SCOPE},` +
          `"logRecords":[${logs.join(",")}]}]}`,
      );
    }
    return `{"resourceLogs":[${resources.join(",")}]}`;
  }
  for (const [host, list] of hosts) {
    const metrics = new Map<string, { first: OtlpPoint; points: string[] }>();
    for (const item of list) {
      if (!("points" in item)) continue;
      for (const p of item.points) {
        const m = metrics.get(p.name);
        if (m) m.points.push(p.point);
        else metrics.set(p.name, { first: p, points: [p.point] });
      }
    }
    const encoded = [...metrics.values()].map((m) => metric(m.first, m.points));
    resources.push(
      `{"resource":${resourceOf(host)},"scopeMetrics":[{"scope":${SCOPE},` +
        `"metrics":[${encoded.join(",")}]}]}`,
    );
  }
  return `{"resourceMetrics":[${resources.join(",")}]}`;
}

/** A `Metric`: a delta monotonic `sum` or a `gauge` of data points. */
function metric({ name, sum, unit }: OtlpPoint, points: string[]): string {
  const data = sum
    ? `"sum":{"dataPoints":[${points.join(",")}],` +
      `"aggregationTemporality":${TEMPORALITY_DELTA},"isMonotonic":true}`
    : `"gauge":{"dataPoints":[${points.join(",")}]}`;
  return `{"name":${json(name)}${unit ? `,"unit":${json(unit)}` : ""},${data}}`;
}

/**
 * Reads an export response (`ExportMetricsServiceResponse` / `ExportLogsServiceResponse`): a
 * partial success is counted, and returned as a message to log.
 */
export function partialSuccess(body: string, counters: Pick<Counting, "add">): string | undefined {
  let partial;
  try {
    partial = JSON.parse(body)?.partialSuccess;
  } catch {
    return undefined; // not JSON (an empty 200 is fine): nothing to say
  }
  if (!partial || typeof partial !== "object") return undefined;
  // Counts as the receiver wrote them (int64 as a string in JSON), where they make sense.
  const count = (v: unknown) => {
    const n = Number(v ?? 0);
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  };
  const points = count(partial.rejectedDataPoints);
  const logs = count(partial.rejectedLogRecords);
  if (points > 0) counters.add("points_rejected", points);
  if (logs > 0) counters.add("logs_rejected", logs);
  const message = typeof partial.errorMessage === "string" ? printable(partial.errorMessage) : "";
  if (!points && !logs && !message) return undefined;
  const what = points ? `${points} data points` : logs ? `${logs} log records` : "nothing";
  return `partial success: rejected ${what}${message ? `: ${message}` : ""}`;
}

export const otlpOutput: StageDef<OtlpConfig> = {
  type: "otlp",
  kind: "output",
  describe:
    "Sends metrics and logs to an OpenTelemetry collector as OTLP/HTTP JSON, with retries " +
    "and a spool.",
  schema: {
    url: {
      type: "custom",
      default: "",
      parse: (value, at) => parseUrl(value, at, DEFAULT_URL),
      doc:
        `the collector's OTLP/HTTP base URL (/v1/metrics, /v1/logs appended); default ${DEFAULT_URL}`,
    },
    headers: {
      type: "string_map",
      default: {},
      secret: true,
      doc: "request headers sent with every request, e.g. an API key",
    },
    sum_fields: {
      type: "strings",
      default: DEFAULT_SUM_FIELDS,
      doc: "fields sent as monotonic delta sums; other numeric fields are gauges",
    },
    ...SENDER_SCHEMA,
    batch_size: {
      ...SENDER_SCHEMA.batch_size,
      // A netflow record is 7 data points of ~0.7 KB of JSON each: 1000 make ~5 MB, well
      // under a collector's default 20 MiB request limit (5000 would not be).
      default: 1000,
    },
  },
  validate(config, at) {
    const problems: ConfigError[] = [];
    for (const [name, value] of Object.entries(config.headers)) {
      const here = at.child("headers").child(name);
      if (OWN_HEADERS.has(name.toLowerCase())) {
        problems.push(here.problem("is set by the output itself"));
        continue;
      }
      try {
        new Headers([[name, value]]);
      } catch {
        // The value may be a credential: never in the message.
        problems.push(here.problem("not a valid HTTP header name and value"));
      }
    }
    return problems;
  },
  example: { url: DEFAULT_URL },

  explain(config) {
    const url = config.url || DEFAULT_URL;
    const names = Object.keys(config.headers);
    return {
      details: [
        `POST ${url}${METRICS_PATH} (metrics) and ${url}${LOGS_PATH} (bash) as OTLP JSON in ` +
        `batches of ${config.batch_size} or ${config.batch_age} ms${config.gzip ? ", gzip" : ""}` +
        (names.length ? `; headers ${names.join(", ")}` : ""),
        ...senderExplanation(config, url).details,
      ],
      ...senderExplanation(config, url).permissions,
    };
  },

  build(config, ctx) {
    const protocol = otlpProtocol(config, ctx.counters, ctx.host);
    return new HttpSender({ ...config, url: config.url || DEFAULT_URL }, protocol, ctx).stage();
  },
};

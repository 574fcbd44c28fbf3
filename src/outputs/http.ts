/**
 * The `http` output: records as InfluxDB line protocol (ns precision), POSTed in batches to
 * DataKit or InfluxDB, with retries and an optional disk spool, so an outage loses nothing.
 *
 * ```yaml
 * outputs:
 *   influx:
 *     type: http
 *     inputs: [netflow_per_minute]
 *     preset: influxdb              # or influxdb_v2, datakit
 *     url: http://127.0.0.1:8086
 *     database: ebpf
 *     username: ${INFLUX_USER}      # credentials from the environment: never printed
 *     password: ${INFLUX_PASSWORD}
 *     spool_dir: /var/spool/ebpf-collector/influx
 * ```
 *
 * - **Presets** say where a batch goes: `influxdb` is v1 `POST /write?db=&precision=ns` (basic
 *   auth when `username` is set); `influxdb_v2` is `POST /api/v2/write?org=&bucket=&precision=ns`
 *   with `Authorization: Token`; `datakit` is DataKit's write API as its external inputs post:
 *   `bash` and `bash_activity` to `/v1/write/logging?input=ebpf-bash`, every other measurement to
 *   `/v1/write/network?input=ebpf-net%2F<measurement>`, all with `precision=ns`. One batch holds
 *   records of one path only.
 * - **Batches, retries, memory, spool, delivery, shutdown and counters** are those of every
 *   batching output: see http_sender.ts ({@linkcode HttpSender}).
 *
 * @module
 */
import type { BoundCounters } from "../counters.ts";
import { countingDroppedFields, encodeLineProtocol } from "../encode/mod.ts";
import type { StageDef } from "../pipeline/stage.ts";
import {
  HttpSender,
  type Protocol,
  SENDER_SCHEMA,
  type SenderConfig,
  senderExplanation,
} from "./http_sender.ts";
import { parseUrl } from "./url.ts";

export type Preset = "influxdb" | "influxdb_v2" | "datakit";

/** Options of an `http` output, as the schema reads them. */
export interface HttpConfig extends SenderConfig {
  preset: Preset;
  database: string;
  username: string;
  password: string;
  org: string;
  bucket: string;
  token: string;
}

const DEFAULT_URL: { [p in Preset]: string } = {
  influxdb: "http://127.0.0.1:8086",
  influxdb_v2: "http://127.0.0.1:8086",
  datakit: "http://127.0.0.1:9529",
};

/** Where a preset sends a measurement, and the request headers. */
export function endpoint(config: HttpConfig, measurement: string): string {
  switch (config.preset) {
    case "influxdb": {
      const q = new URLSearchParams({ db: config.database, precision: "ns" });
      return `/write?${q}`;
    }
    case "influxdb_v2": {
      const q = new URLSearchParams({ org: config.org, bucket: config.bucket, precision: "ns" });
      return `/api/v2/write?${q}`;
    }
    case "datakit":
      // What a shell did is a log, as DataKit keeps its bash input's; the rest is network data.
      return measurement === "bash" || measurement === "bash_activity"
        ? `/v1/write/logging?input=ebpf-bash&precision=ns`
        : `/v1/write/network?input=${encodeURIComponent(`ebpf-net/${measurement}`)}&precision=ns`;
  }
}

/** The request headers a preset needs (credentials included: never log these). */
export function headers(config: HttpConfig, gzip: boolean): Headers {
  const h = new Headers({ "Content-Type": "text/plain; charset=utf-8" });
  if (gzip) h.set("Content-Encoding", "gzip");
  if (config.preset === "influxdb" && config.username) {
    h.set("Authorization", `Basic ${btoa(`${config.username}:${config.password}`)}`);
  }
  if (config.preset === "influxdb_v2" && config.token) {
    h.set("Authorization", `Token ${config.token}`);
  }
  return h;
}

/** The line protocol of the `http` output's presets. */
function lineProtocol(config: HttpConfig, counters: BoundCounters): Protocol<string> {
  // Per record: the path of a measurement is built once, not once a record.
  const paths = new Map<string, string>();
  const options = countingDroppedFields(counters, { rawStringControls: true });
  return {
    encode: (record) => encodeLineProtocol(record, options),
    pathOf: (record) => {
      let path = paths.get(record.measurement);
      if (path === undefined) {
        path = endpoint(config, record.measurement);
        paths.set(record.measurement, path);
      }
      return path;
    },
    bodyOf: (lines) => lines.join("\n") + "\n",
    headers: () => headers(config, false),
  };
}

export const httpOutput: StageDef<HttpConfig> = {
  type: "http",
  kind: "output",
  describe:
    "Posts records as InfluxDB line protocol to DataKit or InfluxDB, with retries and a spool.",
  schema: {
    preset: {
      type: "string",
      oneOf: ["influxdb", "influxdb_v2", "datakit"],
      required: true,
      doc: "influxdb (v1 /write), influxdb_v2 (/api/v2/write) or datakit (/v1/write/...)",
    },
    url: {
      type: "custom",
      default: "",
      parse: parseUrl,
      doc: "the receiver's base URL; default http://127.0.0.1:8086 (InfluxDB) or :9529 (DataKit)",
    },
    database: { type: "string", default: "", doc: "influxdb: the database (db=)" },
    username: { type: "string", default: "", doc: "influxdb: basic-auth user" },
    password: { type: "string", default: "", secret: true, doc: "influxdb: basic-auth password" },
    org: { type: "string", default: "", doc: "influxdb_v2: the organisation" },
    bucket: { type: "string", default: "", doc: "influxdb_v2: the bucket" },
    token: { type: "string", default: "", secret: true, doc: "influxdb_v2: the API token" },
    ...SENDER_SCHEMA,
  },
  validate(config, at) {
    const problems = [];
    if (config.preset === "influxdb" && !config.database) {
      problems.push(at.child("database").problem("is required with preset influxdb"));
    }
    if (config.preset === "influxdb_v2") {
      for (const key of ["org", "bucket"] as const) {
        if (!config[key]) {
          problems.push(at.child(key).problem("is required with preset influxdb_v2"));
        }
      }
    }
    return problems;
  },
  example: { preset: "influxdb", url: "http://127.0.0.1:8086", database: "ebpf" },

  explain(config) {
    const url = config.url || DEFAULT_URL[config.preset];
    return {
      details: [
        `POST ${url}${endpoint(config, "<measurement>")} in batches of ${config.batch_size}` +
        ` or ${config.batch_age} ms${config.gzip ? ", gzip" : ""}`,
        ...senderExplanation(config, url).details,
      ],
      ...senderExplanation(config, url).permissions,
    };
  },

  build(config, ctx) {
    const url = config.url || DEFAULT_URL[config.preset];
    return new HttpSender({ ...config, url }, lineProtocol(config, ctx.counters), ctx).stage();
  },
};

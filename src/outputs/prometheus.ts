/**
 * The `prometheus` output: an HTTP `/metrics` endpoint in the Prometheus text exposition format
 * (version 0.0.4), for Prometheus to scrape.
 *
 * ```yaml
 * outputs:
 *   metrics:
 *     type: prometheus
 *     inputs: [netflow_per_minute, dnsflow_per_minute]
 *     listen: 127.0.0.1:9464
 *     idle_timeout: 5m
 * ```
 *
 * - **Series:** each numeric field of each record is a sample of `<measurement>_<field>` with the
 *   record's tags as labels (names made valid: `[a-zA-Z_][a-zA-Z0-9_]*`). String and boolean
 *   fields are not metrics.
 * - **Types:** fields that count (bytes, retransmits, connections, requests: the windows' sums)
 *   are counters: each record's value is added to the series' running total, exposed as
 *   `<name>_total`, so `rate()` works; the others (rtt, latency, rcode...) are gauges holding
 *   the last value.
 * - **A scrape never waits on collection:** it renders what the last records (the last
 *   completed window) left, from memory.
 * - **Idle series expire** `idle_timeout` after their last record (a counter reappearing later
 *   starts again from zero, which `rate()` reads as a reset), so the endpoint does not grow
 *   forever. At most `max_series` series are kept; records of further series are dropped and
 *   counted (`series_dropped`).
 * - **The collector's own counters** are exposed too, as `ebpf_collector_<name>` (untyped:
 *   some are running totals, some gauges), unless `self_metrics: false`.
 *
 * @module
 */
import { UserError } from "../errors.ts";
import { type At, describeValue } from "../pipeline/schema.ts";
import type { Stage, StageContext, StageDef } from "../pipeline/stage.ts";
import type { Record } from "../record.ts";
import { splitHostPort } from "./url.ts";

/** Options of a `prometheus` output. */
export interface PrometheusConfig {
  /** host:port to listen on. */
  listen: string;
  /** Milliseconds without a record after which a series is dropped. */
  idle_timeout: number;
  max_series: number;
  self_metrics: boolean;
}

/** Field names whose values are counts to be summed (the rest are gauges). */
const COUNTED =
  /^(bytes_.*|retransmits|tcp_established|tcp_closed|tcp_connect_.*|tcp_resets_.*|count|commands|.*_count)$/;

interface Series {
  name: string;
  measurement: string;
  field: string;
  /** Rendered label set, `{a="1",b="2"}` or "". */
  labels: string;
  counter: boolean;
  value: number;
  /** Record time of the last sample, ms. */
  timeMs: number;
  /** Clock time of the last record, ms (for expiry). */
  seenMs: number;
}

/** A valid metric or label name: invalid characters become `_`, a leading digit gets one. */
export function metricName(text: string): string {
  const name = text.replace(/[^a-zA-Z0-9_]/g, "_");
  return /^[0-9]/.test(name) ? `_${name}` : name;
}

/** A label value in the exposition format: `\`, `"` and newline escaped. */
export function labelValue(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function renderLabels(labels: [string, string][]): string {
  if (labels.length === 0) return "";
  return `{${labels.map(([k, v]) => `${metricName(k)}="${labelValue(v)}"`).join(",")}}`;
}

function formatNumber(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

function parseListen(value: unknown, at: At): string | undefined {
  const m = typeof value === "string"
    ? /^([^\s:]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(value)
    : null;
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    at.report(`expected host:port such as "127.0.0.1:9464", got ${describeValue(value)}`);
    return undefined;
  }
  return value as string;
}

/** The series state and its rendering: pure, so it is tested without a server. */
export class MetricsStore {
  readonly #series = new Map<string, Series>();
  readonly #maxSeries: number;
  readonly #idleMs: number;
  /** Records refused because `max_series` was reached. */
  dropped = 0;

  constructor(options: { maxSeries: number; idleMs: number }) {
    this.#maxSeries = options.maxSeries;
    this.#idleMs = options.idleMs;
  }

  get size(): number {
    return this.#series.size;
  }

  /** Takes one record's numeric fields at clock time `nowMs`. */
  add(record: Record, nowMs: number): void {
    const tags = Object.entries(record.tags).filter(([, v]) => v !== "").sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0
    );
    const labels = renderLabels(tags);
    const timeMs = Number(record.time / 1_000_000n);
    for (const [field, raw] of Object.entries(record.fields)) {
      if (typeof raw !== "bigint" && typeof raw !== "number") continue;
      const counter = COUNTED.test(field);
      const name = metricName(`${record.measurement}_${field}`) + (counter ? "_total" : "");
      const key = `${name}${labels}`;
      let s = this.#series.get(key);
      if (!s) {
        if (this.#series.size >= this.#maxSeries) {
          this.dropped++;
          continue;
        }
        s = {
          name,
          measurement: record.measurement,
          field,
          labels,
          counter,
          value: 0,
          timeMs,
          seenMs: nowMs,
        };
        this.#series.set(key, s);
      }
      s.value = counter ? s.value + Number(raw) : Number(raw);
      s.timeMs = timeMs;
      s.seenMs = nowMs;
    }
  }

  /** Drops series idle for longer than the timeout. */
  expire(nowMs: number): number {
    let n = 0;
    for (const [key, s] of this.#series) {
      if (nowMs - s.seenMs > this.#idleMs) {
        this.#series.delete(key);
        n++;
      }
    }
    return n;
  }

  /** The exposition text: one `# TYPE` per metric, then its samples. */
  render(self: { name: string; labels: { [k: string]: string }; value: bigint }[] = []): string {
    const byName = new Map<string, Series[]>();
    for (const s of this.#series.values()) {
      const list = byName.get(s.name);
      if (list) list.push(s);
      else byName.set(s.name, [s]);
    }
    const out: string[] = [];
    for (const name of [...byName.keys()].sort()) {
      const list = byName.get(name)!;
      out.push(
        `# HELP ${name} ${list[0].counter ? "Sum of" : "Last"} ${list[0].field} of the ` +
          `${list[0].measurement} records this output received.`,
        `# TYPE ${name} ${list[0].counter ? "counter" : "gauge"}`,
      );
      for (const s of list) out.push(`${name}${s.labels} ${formatNumber(s.value)}`);
    }
    const selfByName = new Map<string, string[]>();
    for (const c of self) {
      const name = metricName(`ebpf_collector_${c.name}`);
      const line = `${name}${renderLabels(Object.entries(c.labels))} ${c.value}`;
      const list = selfByName.get(name);
      if (list) list.push(line);
      else selfByName.set(name, [line]);
    }
    for (const [name, lines] of selfByName) {
      const counter = name.slice("ebpf_collector_".length);
      out.push(`# HELP ${name} The collector's own ${counter} counter.`);
      out.push(`# TYPE ${name} untyped`, ...lines);
    }
    return out.join("\n") + "\n";
  }
}

export const prometheusOutput: StageDef<PrometheusConfig> = {
  type: "prometheus",
  kind: "output",
  describe: "Serves the series on an HTTP /metrics endpoint for Prometheus to scrape.",
  schema: {
    listen: {
      type: "custom",
      default: "127.0.0.1:9464",
      parse: parseListen,
      doc: "host:port of the /metrics endpoint (0.0.0.0 to be scraped from elsewhere)",
    },
    idle_timeout: {
      type: "duration",
      default: "5m",
      doc: "a series with no record for this long is dropped from the endpoint",
    },
    max_series: {
      type: "integer",
      default: 100_000,
      min: 1,
      max: 10_000_000,
      doc: "series kept at most; records of further ones are dropped (series_dropped)",
    },
    self_metrics: {
      type: "boolean",
      default: true,
      doc: "also expose the collector's own counters as ebpf_collector_*",
    },
  },
  example: { listen: "127.0.0.1:9464", idle_timeout: "10m" },

  explain(config) {
    return {
      details: [
        `serves http://${config.listen}/metrics (text format); series idle for ` +
        `${config.idle_timeout} ms expire; at most ${config.max_series}`,
      ],
      net: [config.listen],
    };
  },

  build(config, ctx) {
    return serve(config, ctx);
  },
};

function serve(config: PrometheusConfig, ctx: StageContext): Stage {
  const store = new MetricsStore({ maxSeries: config.max_series, idleMs: config.idle_timeout });
  const [hostname, port] = splitHostPort(config.listen);
  let server: Deno.HttpServer;
  try {
    server = Deno.serve({ hostname, port, onListen() {} }, (request) => {
      const url = new URL(request.url);
      if (url.pathname !== "/metrics") return new Response("not found\n", { status: 404 });
      const expired = store.expire(Date.now());
      if (expired) ctx.counters.add("series_expired", expired);
      ctx.counters.set("series", BigInt(store.size));
      const body = store.render(config.self_metrics ? ctx.counterSnapshot() : []);
      return new Response(body, {
        headers: { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    });
  } catch (e) {
    throw new UserError(
      `${ctx.name}: cannot listen on ${config.listen}: ${(e as Error).message}`,
    );
  }
  const timer = setInterval(() => {
    const expired = store.expire(Date.now());
    if (expired) ctx.counters.add("series_expired", expired);
  }, Math.min(config.idle_timeout, 60_000));
  let dropped = 0;
  return {
    push(record) {
      store.add(record, Date.now());
      if (store.dropped !== dropped) {
        ctx.counters.add("series_dropped", store.dropped - dropped);
        dropped = store.dropped;
      }
    },
    flush() {},
    async close() {
      clearInterval(timer);
      await server.shutdown();
    },
  };
}

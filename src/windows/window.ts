/**
 * The `window` stage: aggregates records into one record per series per time window.
 *
 * ```yaml
 * windows:
 *   per_user:
 *     type: window
 *     inputs: [bash]
 *     every: 60s
 *     group_by: [user]
 *     fields:
 *       commands: { agg: count }
 *       longest: { from: cmd_length, agg: max }
 * ```
 *
 * - **Series key**: the record's `measurement`, its `host` and `source` tags, and the tags named
 *   in `group_by`. A window never mixes measurements, hosts or sources, whatever `group_by`
 *   says (naming `host` or `source` there changes nothing). A record that lacks a `group_by`
 *   tag is in the series of records that lack it, which is not the series of records where it
 *   is the empty string.
 * - **Windows** are aligned to the clock (`every: 60s` ends on the minute). At each tick the
 *   window that just ended is emitted: one record per series that saw records (a window without
 *   records emits nothing), all with `time` = the tick. `flush` emits the partial window with
 *   `time` = now, for either reason; then the state is empty.
 * - **Output record**: the input's measurement; tags `host`, `source` and the `group_by` tags, a
 *   tag the series' records lacked is omitted (not written as ""); fields in the configured
 *   order, an output that took no value in the window is omitted (`count` always is present). A
 *   series whose outputs are all omitted emits nothing.
 * - **Means of totals**: `{from: latency_sum, agg: mean, per: count}` is Σ latency_sum ÷ Σ count
 *   over the window's records: the mean for records that each stand for several events (the
 *   dns probe's rows); a record lacking either field is skipped.
 * - **Types**: see `aggregate.ts`. A value an output cannot use (missing, or a string or
 *   boolean for anything but `last`) is skipped and counted as `values_skipped`.
 * - **Cardinality budget**: at most `max_series` series per window. A record that would start a
 *   series beyond it goes instead to its measurement/host/source's `~other` series, whose
 *   `group_by` tags are all `~other`; each such record counts as `series_folded`. Sums and counts
 *   are conserved. The `~other` series are not counted in the budget, and `measurement`, `host`
 *   and `source` are never folded (they come from the pipeline, not from the data), so with an
 *   empty `group_by` there is nothing to fold and the budget does not apply.
 * - **Counters** `values_skipped`, `series_folded` and `late_records` are added once per flush,
 *   not per record: a counter update costs more than aggregating the record does.
 *   `late_records` counts records whose `time` is before the window they were added to began:
 *   they arrived after their own window closed (a DNS answer after the tick, a reader that
 *   fell behind) and count in the current one. The gauge `window_lag_ms` is how late the last
 *   window closed after its end (timer delay: an event loop busy elsewhere shows here).
 *
 * @module
 */
import type { Record } from "../record.ts";
import { type At, describeValue, isTable, suggestion } from "../pipeline/schema.ts";
import type { Stage, StageContext, StageDef } from "../pipeline/stage.ts";
import { formatDuration } from "../units.ts";
import { type Accumulator, type Aggregation, AGGREGATIONS, newAccumulator } from "./aggregate.ts";

/**
 * One configured output: `name: {from, agg}`; `from` is absent exactly when `agg` is count.
 * `per` (only with mean): the field counting what `from` totals.
 */
export interface WindowOutput {
  name: string;
  agg: Aggregation;
  from?: string;
  per?: string;
}

/** Options of a `window` stage, as the schema reads them. */
export interface WindowConfig {
  /** Window length in milliseconds. */
  every: number;
  group_by: string[];
  fields: WindowOutput[];
  max_series: number;
}

/** The `group_by` value of folded series. */
export const OTHER = "~other";

const OUTPUT_KEYS = ["from", "agg", "per"];
const FIELDS_EXAMPLE = "e.g. {commands: {agg: count}, latency: {from: latency, agg: mean}}";

/** Parses `fields`: a non-empty mapping of output names to `{from, agg}`. */
export function parseOutputs(value: unknown, at: At): WindowOutput[] {
  if (!isTable(value) || Object.keys(value).length === 0) {
    at.report(
      `expected a non-empty mapping of output names to {from: <field>, agg: <aggregation>}, ` +
        `${FIELDS_EXAMPLE}; got ${isTable(value) ? "an empty mapping" : describeValue(value)}`,
    );
    return [];
  }
  const outputs: WindowOutput[] = [];
  for (const [name, spec] of Object.entries(value)) {
    const here = at.child(name);
    const before = here.reported;
    if (name === "") here.reportKey("an output needs a name");
    if (!isTable(spec)) {
      here.report(`expected {from: <field>, agg: <aggregation>}, got ${describeValue(spec)}`);
      continue;
    }
    for (const key of Object.keys(spec)) {
      if (OUTPUT_KEYS.includes(key)) continue;
      here.child(key).reportKey(
        `unknown key "${key}"${suggestion(key, OUTPUT_KEYS)}; known: ${OUTPUT_KEYS.join(", ")}`,
      );
    }
    const agg = spec.agg;
    const known = AGGREGATIONS.join(", ");
    if (agg === undefined || agg === null) {
      here.report(`needs agg: one of ${known}`);
    } else if (typeof agg !== "string" || !(AGGREGATIONS as readonly string[]).includes(agg)) {
      const hint = typeof agg === "string" ? suggestion(agg, AGGREGATIONS) : "";
      here.child("agg").report(`unknown aggregation ${describeValue(agg)}${hint}; use ${known}`);
    }
    const from = spec.from;
    // Whether `from` is needed depends on agg: with a bad agg, a remark on from is noise.
    if (here.reported > before) continue;
    if (agg === "count") {
      if ("from" in spec) {
        here.child("from").reportKey("count counts records and reads no field; remove from");
      }
    } else if (from === undefined || from === null) {
      here.report(`needs from: the field to aggregate`);
    } else if (typeof from !== "string" || from === "") {
      here.child("from").report(`expected a field name, got ${describeValue(from)}`);
    }
    const per = spec.per;
    if (per !== undefined && agg !== "mean") {
      here.child("per").reportKey(`per goes with agg: mean (a mean of totals); remove it`);
    } else if (per !== undefined && (typeof per !== "string" || per === "")) {
      here.child("per").report(`expected a field name, got ${describeValue(per)}`);
    }
    if (here.reported > before) continue;
    const output: WindowOutput = agg === "count"
      ? { name, agg: "count" }
      : { name, agg: agg as Aggregation, from: from as string };
    if (typeof per === "string") output.per = per;
    outputs.push(output);
  }
  return outputs;
}

/** One series in the current window. */
interface Series {
  measurement: string;
  /** The output record's tags, built once when the series starts. */
  tags: { [key: string]: string };
  count: number;
  /** One per output, undefined for `count`. */
  accumulators: (Accumulator | undefined)[];
}

// A length prefix keeps the key unambiguous whatever the values hold; "-" is a missing tag,
// which no prefixed part can be.
function keyPart(value: unknown): string {
  return typeof value === "string" ? `${value.length}:${value}` : "-";
}

class WindowStage implements Stage {
  readonly #ctx: StageContext;
  readonly #outputs: WindowOutput[];
  readonly #froms: (string | undefined)[];
  readonly #pers: (string | undefined)[];
  readonly #groupBy: string[];
  readonly #otherKey: string;
  readonly #maxSeries: number;
  readonly #timer: { cancel(): void };
  #series = new Map<string, Series>();
  /** Series in this window that count against the budget (all but folded `~other` ones). */
  #budgeted = 0;
  #skipped = 0;
  #folded = 0;
  #late = 0;
  /** When the window being filled began: records older than this are late. */
  #windowStart: bigint;
  #closed = false;

  constructor(config: WindowConfig, ctx: StageContext) {
    this.#ctx = ctx;
    this.#outputs = config.fields;
    this.#froms = config.fields.map((o) => o.from);
    this.#pers = config.fields.map((o) => o.per);
    this.#groupBy = [...new Set(config.group_by)].filter((t) => t !== "host" && t !== "source");
    // The same encoding as a record whose group_by tags are all literally "~other", so such a
    // record and the folded ones share one series instead of emitting two with equal tags.
    this.#otherKey = this.#groupBy.map(() => keyPart(OTHER)).join("");
    this.#maxSeries = config.max_series;
    const every = BigInt(Math.max(1, Math.round(config.every))) * 1_000_000n;
    this.#windowStart = ctx.clock.now() / every * every;
    this.#timer = ctx.clock.every(config.every, (tick) => {
      this.#ctx.counters.set("window_lag_ms", (this.#ctx.clock.now() - tick) / 1_000_000n);
      this.#emit(tick);
    });
  }

  push(record: Record): void {
    if (record.time < this.#windowStart) this.#late++;
    const tags = record.tags;
    const base = keyPart(record.measurement) + keyPart(tags.host) + keyPart(tags.source);
    let key = base;
    for (const tag of this.#groupBy) key += keyPart(tags[tag]);
    let series = this.#series.get(key);
    if (series === undefined) {
      if (this.#budgeted < this.#maxSeries || this.#groupBy.length === 0) {
        series = this.#start(key, record, false);
        this.#budgeted++;
      } else {
        this.#folded++;
        series = this.#series.get(base + this.#otherKey) ??
          this.#start(base + this.#otherKey, record, true);
      }
    }
    series.count++;
    const fields = record.fields;
    const accumulators = series.accumulators;
    for (let i = 0; i < accumulators.length; i++) {
      const acc = accumulators[i];
      if (acc === undefined) continue;
      const per = this.#pers[i];
      const ok = per === undefined
        ? acc.add(fields[this.#froms[i]!])
        : acc.add(fields[this.#froms[i]!], fields[per]);
      if (!ok) this.#skipped++;
    }
  }

  flush(): void {
    this.#emit(this.#ctx.clock.now());
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#timer.cancel();
    this.#publishCounters();
  }

  #start(key: string, record: Record, folded: boolean): Series {
    const tags: { [key: string]: string } = {};
    for (const tag of ["host", "source", ...this.#groupBy]) {
      const value = folded && tag !== "host" && tag !== "source" ? OTHER : record.tags[tag];
      if (typeof value === "string") tags[tag] = value;
    }
    const series: Series = {
      measurement: record.measurement,
      tags,
      count: 0,
      accumulators: this.#outputs.map((o) =>
        o.agg === "count" ? undefined : newAccumulator(o.agg, o.per !== undefined)
      ),
    };
    this.#series.set(key, series);
    return series;
  }

  #emit(time: bigint): void {
    const ended = this.#series;
    this.#series = new Map();
    this.#budgeted = 0;
    this.#windowStart = time;
    this.#publishCounters();
    for (const series of ended.values()) {
      const fields: Record["fields"] = {};
      let any = false;
      for (let i = 0; i < this.#outputs.length; i++) {
        const acc = series.accumulators[i];
        const value = acc === undefined ? BigInt(series.count) : acc.result();
        if (value === undefined) continue;
        fields[this.#outputs[i].name] = value;
        any = true;
      }
      if (any) this.#ctx.emit({ measurement: series.measurement, tags: series.tags, fields, time });
    }
  }

  #publishCounters(): void {
    if (this.#skipped > 0) this.#ctx.counters.add("values_skipped", this.#skipped);
    if (this.#folded > 0) this.#ctx.counters.add("series_folded", this.#folded);
    if (this.#late > 0) this.#ctx.counters.add("late_records", this.#late);
    this.#skipped = 0;
    this.#folded = 0;
    this.#late = 0;
  }
}

/** The `window` stage type; see the module doc. */
export const windowStage: StageDef<WindowConfig> = {
  type: "window",
  kind: "window",
  describe: "Aggregates records into one record per series (measurement, host, source and " +
    "group_by tags) per time window.",
  schema: {
    every: {
      type: "duration",
      required: true,
      doc: "window length; windows end on multiples of it (60s ends on the minute)",
    },
    group_by: {
      type: "strings",
      default: [],
      doc: "tags that form the series key, besides measurement, host and source (always in it)",
    },
    fields: {
      type: "custom",
      required: true,
      doc: "outputs: name: {from: <field>, agg: sum|mean|max|min|last} or name: {agg: count}; " +
        "a mean of totals: {from: latency_sum, agg: mean, per: count}",
      parse: parseOutputs,
    },
    max_series: {
      type: "integer",
      default: 10_000,
      min: 1,
      doc: "series per window; records of further group_by values fold into a ~other series",
    },
  },
  build(config: WindowConfig, ctx: StageContext): Stage {
    return new WindowStage(config, ctx);
  },
  explain(config: WindowConfig) {
    const outputs = config.fields
      .map((o) => `${o.name}=${o.agg}(${o.from ?? ""}${o.per ? ` per ${o.per}` : ""})`)
      .join(", ");
    return {
      details: [
        `every ${formatDuration(config.every)} by [${config.group_by.join(", ")}] → ${outputs}; ` +
        `max ${config.max_series} series`,
      ],
    };
  },
  example: {
    every: "60s",
    group_by: ["user"],
    fields: {
      commands: { agg: "count" },
      longest: { from: "cmd_length", agg: "max" },
    },
    max_series: 10_000,
  },
};

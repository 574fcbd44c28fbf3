/**
 * The `top` output: a live view on the terminal, refreshed every `every`, of who talks to whom
 * right now: flows by rate (with their failures), DNS names, dropped packets, the latest commands
 * with what each did, and the collector's own health (docs/top.md). `deno task top` runs it on
 * examples/top.yaml.
 *
 * ```yaml
 * outputs:
 *   screen:
 *     type: top
 *     inputs: [merge_client_ports, dns, netdrop, redact_secrets, self]
 * ```
 *
 * The view (src/outputs/top/) is loaded when the stage is built, so a pipeline without it does
 * not pay for its code and `string-width`'s tables.
 */
import type { StageDef } from "../pipeline/stage.ts";
import type { TopConfig } from "./top/view.ts";

/** The environment variables the view reads (for `--allow-env`). */
export const TOP_ENV = ["TERM", "NO_COLOR", "COLUMNS", "LINES"];

export const topOutput: StageDef<TopConfig> = {
  type: "top",
  kind: "output",
  standardOutput: "exclusive",
  describe: "Draws a live view on the terminal (flows and their failures, DNS, drops, commands " +
    "and what they did, the collector's health); plain frames when stdout is not a terminal.",
  schema: {
    every: { type: "duration", default: "1s", doc: "how often a frame is drawn" },
    rate_window: {
      type: "duration",
      default: "5s",
      doc: "rates are sums over this sliding window, divided by the time it covers",
    },
    max_rows: {
      type: "integer",
      default: 50_000,
      min: 1,
      doc: "flows (and as many DNS and drop rows) kept; more are counted as " +
        "records_dropped{reason=rows_full}",
    },
    max_commands: { type: "integer", default: 200, min: 1, doc: "latest commands kept" },
  },
  example: { every: "1s", rate_window: "5s" },
  explain: (c) => ({
    details: [
      `draws a frame every ${c.every} ms (rates over ${c.rate_window} ms; at most ` +
      `${c.max_rows} rows); plain frames when standard output is not a terminal`,
    ],
    env: TOP_ENV,
  }),

  async build(config, ctx) {
    const { startTop } = await import("./top/view.ts");
    return startTop(config, ctx);
  },
};

/** The `stdout` output: one encoded record per line on standard output. */
import { encoderFor, type Format } from "../encode/mod.ts";
import type { OutputDef } from "../pipeline/stage.ts";
import { writeAll } from "./write_all.ts";

/** Options of a `stdout` output. */
export interface StdoutConfig {
  format: Format;
}

export const stdoutOutput: OutputDef<StdoutConfig> = {
  type: "stdout",
  describe: "Writes each record as one line (JSON or InfluxDB line protocol) to standard output.",

  configure(options) {
    return { format: options.oneOf("format", ["json", "line_protocol"] as const, "json") };
  },

  start(config, ctx) {
    const encode = encoderFor(config.format);
    const encoder = new TextEncoder();
    const labels = { output: ctx.name };
    let broken = false;
    return Promise.resolve({
      async write(records) {
        if (broken || records.length === 0) return;
        let text = "";
        for (const r of records) text += encode(r) + "\n";
        try {
          await writeAll(Deno.stdout, encoder.encode(text));
          ctx.counters.add("records_out", records.length, labels);
        } catch (e) {
          // A closed pipe (`| head`) is final: say so once and count what could not go out.
          broken = e instanceof Deno.errors.BrokenPipe;
          ctx.counters.add("output_errors", records.length, labels);
          ctx.log.warn(`${ctx.name}: cannot write to stdout: ${(e as Error).message}`);
        }
      },
      close: () => Promise.resolve(),
    });
  },
};

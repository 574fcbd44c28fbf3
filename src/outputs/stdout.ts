/** The `stdout` output: one encoded record per line on standard output. */
import { encoderFor, type Format } from "../encode/mod.ts";
import type { StageDef } from "../pipeline/stage.ts";
import { writeAll } from "./write_all.ts";

/** Options of a `stdout` output. */
export interface StdoutConfig {
  format: Format;
}

/** Text held before pushing back: past this, `push` waits for the write in flight. */
const HIGH_WATER = 1 << 20;

export const stdoutOutput: StageDef<StdoutConfig> = {
  type: "stdout",
  kind: "output",
  standardOutput: "shared",
  describe: "Writes each record as one line (JSON or InfluxDB line protocol) to standard output.",
  schema: {
    format: {
      type: "string",
      oneOf: ["json", "line_protocol"],
      default: "json",
      doc: "json: one JSON object a line; line_protocol: InfluxDB line protocol",
    },
  },
  example: { format: "line_protocol" },
  explain: (config) => ({ details: [`writes ${config.format} lines to standard output`] }),

  build(config, ctx) {
    const encode = encoderFor(config.format, ctx.counters);
    const encoder = new TextEncoder();
    let pending = "", count = 0, broken = false;
    let writing: Promise<void> | undefined;

    // Everything pushed before the write starts goes out in one write call.
    const writeOut = async () => {
      while (pending && !broken) {
        const text = pending, n = count;
        pending = "";
        count = 0;
        try {
          await writeAll(Deno.stdout, encoder.encode(text));
          ctx.counters.add("records_written", n);
        } catch (e) {
          // A closed pipe (`| head`) is final: say so once, count what could not go out.
          broken = e instanceof Deno.errors.BrokenPipe;
          ctx.counters.add("output_errors", n);
          ctx.log.warn(`${ctx.name}: cannot write to stdout: ${(e as Error).message}`);
        }
      }
      writing = undefined;
    };

    return {
      push(record) {
        if (broken) {
          ctx.counters.add("output_errors");
          return;
        }
        pending += encode(record) + "\n";
        count++;
        writing ??= Promise.resolve().then(writeOut);
        if (pending.length > HIGH_WATER) return writing; // push back until it is written
      },
      async flush() {
        writing ??= writeOut();
        await writing;
      },
      close() {},
    };
  },
};

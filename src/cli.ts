/**
 * Command-line flags. One entry point; modes are flags on it: running (the default, with
 * `--record`, `--watch`), `--replay`, `--test`, `--check`, `--explain[=dot]`, `--help`,
 * `--version`, `--doctor`. Exit codes: 0 ok, 1 runtime failure,
 * 2 bad input (flags or pipeline).
 */
import { parseArgs } from "node:util";
import { parseDuration } from "./units.ts";
import { UserError } from "./errors.ts";

/** What the flags asked for. */
export interface CliOptions {
  pipeline: string;
  /** Stop after this many ms; undefined runs until SIGINT/SIGTERM. */
  durationMs?: number;
  debug: boolean;
  /** Validate only: exit 0 or 2, no kernel, no root. */
  check: boolean;
  /** Print what the pipeline does (text, or Graphviz dot) instead of running it. */
  explain?: "text" | "dot";
  /** Run the pipeline's `tests:` instead of collecting. */
  test: boolean;
  /** Check what the pipeline needs from this machine, change nothing. */
  doctor: boolean;
  /** Write every probe record to this file while collecting. */
  record?: string;
  /** Run on this recording instead of the kernel. */
  replay?: string;
  /** With `replay`: skip (and count) lines that are not records instead of exiting 2. */
  replaySkipBad: boolean;
  /** Reload when the pipeline file changes (SIGHUP always reloads). */
  watch: boolean;
  help: boolean;
  version: boolean;
}

export const USAGE = `Usage: deno task run [options]

Collects what the pipeline file asks for (eBPF probes) and writes records to its outputs.
Records go to stdout (when an output says so); logs go to stderr.

Options:
  --pipeline FILE   pipeline file (default: pipeline.yaml)
  --duration TIME   stop after TIME (e.g. 30s, 5m, 1h30m); default: until SIGINT/SIGTERM
  --check           check the pipeline file and exit (0 ok, 2 errors); needs no root
  --explain[=dot]   show the graph, each stage's config with defaults, what each probe
                    attaches, and the Deno permissions the pipeline needs; dot: Graphviz
  --test            run the pipeline's tests: section (exit 0 all pass, 1 a test failed)
  --doctor          check what the pipeline needs from this machine, one line each (privileges,
                    BTF, libbpf, cgroup v2, each probe loaded and detached, outputs reachable);
                    exit 1 when something blocks
  --record FILE     also write every probe record to FILE (NDJSON; needs --allow-write=FILE)
  --replay FILE     run on a recording instead of the kernel: no root, record time drives
                    windows, the same recording gives the same output; a line that is
                    not a record stops it (exit 2) naming the line
  --replay-skip-bad with --replay: skip such lines instead, counted
  --watch           reload when the pipeline file changes (SIGHUP always reloads; a bad
                    file keeps the running pipeline)
  --debug           show libbpf's messages and stack traces
  --version         print the version
  -h, --help        print this help

Exit codes: 0 ok, 1 runtime failure, 2 bad flags or pipeline.
`;

/** Parses flags; unknown or malformed ones throw a UserError with exit code 2. */
export function parseCli(args: string[]): CliOptions {
  let parsed;
  try {
    parsed = parseArgs({
      // `--explain` alone means the text form (parseArgs needs a value for a string option).
      args: args.map((a) => a === "--explain" ? "--explain=text" : a),
      options: {
        pipeline: { type: "string" },
        duration: { type: "string" },
        debug: { type: "boolean", default: false },
        check: { type: "boolean", default: false },
        explain: { type: "string" },
        test: { type: "boolean", default: false },
        doctor: { type: "boolean", default: false },
        record: { type: "string" },
        replay: { type: "string" },
        "replay-skip-bad": { type: "boolean", default: false },
        watch: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
        version: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (e) {
    // node:util words these as e.g. "Unknown option '--foo'. To specify ...", some with a
    // newline between sentences: keep the first sentence (one line) and add where to look.
    throw new UserError(`${(e as Error).message.split(/\.\s/)[0]} (see --help)`, 2);
  }
  const { values } = parsed;
  let durationMs: number | undefined;
  if (values.duration !== undefined) {
    try {
      durationMs = parseDuration(values.duration);
    } catch (e) {
      throw new UserError(`--duration: ${(e as Error).message}`, 2);
    }
  }
  if (values.pipeline === "") throw new UserError("--pipeline needs a file name", 2);
  if (values.record !== undefined && values.replay !== undefined) {
    throw new UserError("--record and --replay do not go together: a replay reads no kernel", 2);
  }
  for (const flag of ["record", "replay"] as const) {
    if (values[flag] === "") throw new UserError(`--${flag} needs a file name`, 2);
  }
  for (const flag of ["pipeline", "record", "replay"] as const) {
    // The file is granted with --allow-read/--allow-write=a,b: a comma would split it in two.
    if (/[,\n\r]/.test(values[flag] ?? "")) {
      throw new UserError(
        `--${flag}: a file name with a comma or a line break cannot be granted to Deno; ` +
          "rename the file",
        2,
      );
    }
  }
  if (values["replay-skip-bad"] && values.replay === undefined) {
    throw new UserError("--replay-skip-bad goes with --replay FILE", 2);
  }
  if (values.explain !== undefined && values.explain !== "text" && values.explain !== "dot") {
    throw new UserError(`--explain takes no value or =dot, got "${values.explain}"`, 2);
  }
  return {
    pipeline: values.pipeline ?? "pipeline.yaml",
    durationMs,
    debug: values.debug,
    check: values.check,
    explain: values.explain as CliOptions["explain"],
    test: values.test,
    doctor: values.doctor,
    record: values.record,
    replay: values.replay,
    replaySkipBad: values["replay-skip-bad"],
    watch: values.watch,
    help: values.help,
    version: values.version,
  };
}

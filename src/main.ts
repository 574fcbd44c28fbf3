/**
 * The collector's entry point: flags → pipeline → preflight → run until a signal or
 * `--duration`, then drain, flush, summarise. Every error a user can meet is one line on
 * stderr and exit code 1 or 2; stack traces only with `--debug`.
 */
import { LIBBPF_DEBUG, LIBBPF_INFO, setLibbpfLog } from "../ffi/libbpf.ts";
import { type CliOptions, parseCli, USAGE } from "./cli.ts";
import { Counters } from "./counters.ts";
import { formatDuration } from "./units.ts";
import { describeError, UserError } from "./errors.ts";
import { type Logger, stderrLogger } from "./log.ts";
import { loadPipeline } from "./pipeline/load.ts";
import { startPipeline } from "./pipeline/run.ts";
import { explainDot, explainText } from "./pipeline/explain.ts";
import { LiveClock } from "./pipeline/clock.ts";
import { checkKernelAccess } from "./system/preflight.ts";
import { VERSION } from "./version.ts";

/** Runs the collector with `args`; resolves to the exit code. */
export async function main(args: string[]): Promise<number> {
  let options: CliOptions | undefined;
  let log: Logger = stderrLogger();
  try {
    options = parseCli(args);
    log = stderrLogger({ debug: options.debug });
    if (options.help) {
      await Deno.stdout.write(new TextEncoder().encode(USAGE));
      return 0;
    }
    if (options.version) {
      console.log(`ebpf-collector ${VERSION} (deno ${Deno.version.deno})`);
      return 0;
    }
    return await collect(options, log);
  } catch (e) {
    // One line per problem (a pipeline file can have several), each marked as an error.
    for (const line of describeError(e).split("\n")) log.info(`error: ${line}`);
    if (options?.debug && e instanceof Error) log.info(e.stack ?? "");
    return e instanceof UserError ? e.exitCode : 1;
  }
}

async function collect(options: CliOptions, log: Logger): Promise<number> {
  const pipeline = loadPipeline(options.pipeline);
  for (const w of pipeline.warnings) log.warn(w.message);
  if (options.check) {
    console.log(`${pipeline.file}: ok (${pipeline.stages.length} stages)`);
    return 0;
  }
  if (options.explain) {
    const text = options.explain === "dot" ? explainDot(pipeline) : explainText(pipeline);
    await Deno.stdout.write(new TextEncoder().encode(text));
    return 0;
  }
  checkKernelAccess();
  setLibbpfLog(
    options.debug ? LIBBPF_DEBUG : LIBBPF_INFO,
    options.debug ? (_, line) => log.debug(line) : undefined, // lines start with "libbpf: ",
  );

  const counters = new Counters();
  const started = performance.now();
  const running = await startPipeline(pipeline, {
    host: Deno.hostname(),
    counters,
    log,
    clock: new LiveClock(),
  });
  log.info(
    `collecting with ${pipeline.file} (${(performance.now() - started).toFixed(0)} ms to attach)` +
      (options.durationMs ? ` for ${formatDuration(options.durationMs)}` : "; Ctrl-C stops"),
  );

  // Wait for the first of: SIGINT, SIGTERM, the end of --duration.
  const { promise: stopRequested, resolve: requestStop } = Promise.withResolvers<string>();
  const onInt = () => requestStop("SIGINT"), onTerm = () => requestStop("SIGTERM");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  const timer = options.durationMs
    ? setTimeout(() => requestStop("duration"), options.durationMs)
    : undefined;
  const why = await stopRequested;
  clearTimeout(timer);

  log.info(`stopping (${why}): draining and flushing`);
  await running.stop();
  Deno.removeSignalListener("SIGINT", onInt);
  Deno.removeSignalListener("SIGTERM", onTerm);
  log.info(`summary: ${counters.summary() || "no records"}`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));

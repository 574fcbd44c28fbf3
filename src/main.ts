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
import { doctor, formatCheck } from "./doctor.ts";
import { type Logger, stderrLogger } from "./log.ts";
import { loadPipeline, parsePipeline, type Pipeline, readPipelineText } from "./pipeline/load.ts";
import { startPipeline } from "./pipeline/run.ts";
import { explainDot, explainText } from "./pipeline/explain.ts";
import { ShownText } from "./pipeline/shown.ts";
import {
  checkParsePermissions,
  checkPermissions,
  missingPermission,
  revokeStartupPermissions,
} from "./pipeline/permissions.ts";
import { Recorder, replayFile } from "./pipeline/replay.ts";
import { runPipelineTests } from "./pipeline/tests.ts";
import { LiveClock } from "./pipeline/clock.ts";
import { checkKernelAccess } from "./system/preflight.ts";
import { liveHostFacts } from "./system/host_facts.ts";
import { recordingHostFacts } from "./pipeline/host_facts.ts";
import { VERSION } from "./version.ts";

/**
 * Runs the collector with `args`; resolves to the exit code. `io.log` replaces the stderr
 * logger (for a test that runs it in-process and reads what it says).
 */
export async function main(args: string[], io: { log?: Logger } = {}): Promise<number> {
  let options: CliOptions | undefined;
  // Every line said here, errors included, shows no secret of the pipeline once it is loaded
  // (shown.ts): a start-up error may name a value that came from a ${VAR} password.
  const shown = new ShownText();
  let log: Logger = shown.logger(io.log ?? stderrLogger());
  try {
    options = parseCli(args);
    log = shown.logger(io.log ?? stderrLogger({ debug: options.debug }));
    if (options.help) {
      await Deno.stdout.write(new TextEncoder().encode(USAGE));
      return 0;
    }
    if (options.version) {
      console.log(`ebpf-collector ${VERSION} (deno ${Deno.version.deno})`);
      return 0;
    }
    return await collect(options, log, shown);
  } catch (e) {
    // One line per problem (a pipeline file can have several), each marked as an error.
    for (const line of describeError(e).split("\n")) log.info(`error: ${line}`);
    if (options?.debug && e instanceof Error) log.info(e.stack ?? "");
    return e instanceof UserError ? e.exitCode : 1;
  }
}

/** Runs what `options` ask for; `shown` learns the pipeline's secrets as it is (re)loaded. */
async function collect(options: CliOptions, log: Logger, shown: ShownText): Promise<number> {
  // Collecting: the signal handlers come first, so that a SIGHUP (systemd's ExecReload) or a
  // stop asked for while the pipeline loads and attaches cannot end the process unflushed.
  // A replay stops on SIGINT and SIGTERM too, and reloads nothing.
  const collecting = !options.check && !options.explain && !options.test && !options.doctor &&
    !options.replay;
  using signals = collecting || options.replay ? new Signals({ reload: collecting }) : undefined;
  signals?.onSecondStop((signal) => {
    log.warn(`${signal} again: exiting now, during start-up`);
    Deno.exit(130);
  });
  checkParsePermissions();
  const pipeline = await loadPipeline(options.pipeline);
  shown.add(pipeline);
  for (const w of pipeline.warnings) log.warn(w.message);
  if (options.check) {
    console.log(`${pipeline.file}: ok (${pipeline.stages.length} stages)`);
    return 0;
  }
  if (options.explain) {
    const text = options.explain === "dot" ? explainDot(pipeline) : explainText(pipeline, {
      replay: options.replay,
      record: options.record,
    });
    await Deno.stdout.write(new TextEncoder().encode(text));
    return 0;
  }
  if (options.test) return await runPipelineTests(pipeline, log);
  if (options.doctor) {
    const checks = await doctor(pipeline, (c) => console.log(formatCheck(c)));
    const failed = checks.filter((c) => c.status === "FAIL").length;
    log.info(failed ? `doctor: ${failed} problem(s) block this pipeline` : "doctor: ready");
    return failed ? 1 : 0;
  }
  // Before anything starts: a missing permission is one line naming the flag, not a failure
  // halfway through attaching.
  checkPermissions(pipeline, { replay: options.replay, record: options.record });
  const counters = new Counters();
  const host = Deno.hostname();
  if (options.replay) {
    return await replay(options, options.replay, signals!, { pipeline, host, counters, log });
  }

  checkKernelAccess(
    pipeline.stages.filter((s) => s.kind === "probe").map((s) => ({
      name: s.name,
      capabilities: s.def.capabilities ?? [],
    })),
  );
  setLibbpfLog(
    options.debug ? LIBBPF_DEBUG : LIBBPF_INFO,
    options.debug ? (_, line) => log.debug(line) : undefined, // lines start with "libbpf: ",
  );
  // The only place this host's facts are read for the stages; a recording keeps them.
  const live = liveHostFacts();
  const recorder = options.record
    ? new Recorder(options.record, live.portRange().range)
    : undefined;
  const hostFacts = recorder ? recordingHostFacts(live, (f) => recorder.addFact(f)) : live;
  const started = performance.now();
  const running = await startPipeline(
    pipeline,
    // A stage's stop (top's `q`) is a stop signal: a second one exits at once.
    {
      host,
      counters,
      log,
      clock: new LiveClock(),
      hostFacts,
      requestStop: (why) => signals!.stop(why),
    },
    { tap: recorder && ((probe, record, side) => recorder.add(probe, record, side)) },
  );
  const revoked = await revokeStartupPermissions(options.record);
  log.debug(`gave up ${revoked.join(" ") || "nothing"} after attaching`);
  log.info(
    `collecting with ${pipeline.file} (${(performance.now() - started).toFixed(0)} ms to attach)` +
      (options.durationMs ? ` for ${formatDuration(options.durationMs)}` : "; Ctrl-C stops") +
      (recorder ? `; recording to ${recorder.path}` : ""),
  );

  // Reloads run one at a time; a bad file keeps the running pipeline.
  let reloading = Promise.resolve();
  const reload = (why: string) => {
    reloading = reloading.then(async () => {
      try {
        const text = await readPipelineText(options.pipeline, { reload: true });
        const next = parsePipeline(options.pipeline, text, (name) => Deno.env.get(name));
        shown.add(next);
        const missing = missingPermission(next, { running: true });
        if (missing) throw new UserError(`it needs ${missing}, which this process does not hold`);
        for (const w of next.warnings) log.warn(w.message);
        const r = await running.reload(next);
        log.info(
          `reloaded ${options.pipeline} (${why}): kept ${r.kept.length}` +
            `${r.reconfigured.length ? ` (${r.reconfigured.join(", ")} reconfigured)` : ""}, ` +
            `started ${r.started.length}${r.started.length ? ` (${r.started.join(", ")})` : ""}, ` +
            `stopped ${r.stopped.length}${r.stopped.length ? ` (${r.stopped.join(", ")})` : ""}`,
        );
      } catch (e) {
        counters.add("reloads", 1, { result: "failed" });
        const lines = describeError(e).split("\n");
        log.warn(`reload (${why}) refused, the running pipeline is unchanged: ${lines[0]}`);
        for (const line of lines.slice(1)) log.warn(line);
      }
    });
  };
  // A SIGHUP that came during start-up reloads now.
  signals!.onReload(reload);
  const watcher = options.watch
    ? watchFile(options.pipeline, () => reload("file changed"))
    : undefined;

  // Wait for the first of: SIGINT, SIGTERM, the end of --duration.
  // A second signal exits at once: a flush can wait on a receiver that is down.
  signals!.onSecondStop((signal) => {
    log.warn(`${signal} again: exiting now, without finishing the flush`);
    log.info(`summary: ${counters.summary() || "no records"}`);
    Deno.exit(130);
  });
  const timer = options.durationMs
    ? setTimeout(() => signals!.requestStop("duration"), options.durationMs)
    : undefined;
  const why = await signals!.stopRequested;
  clearTimeout(timer);
  watcher?.close();
  signals!.onReload(undefined);
  await reloading;

  log.info(`stopping (${why}): draining and flushing (signal again to exit at once)`);
  await running.stop();
  recorder?.close();
  log.info(`summary: ${counters.summary() || "no records"}`);
  return 0;
}

/**
 * `--replay FILE` to its end, or until a stop: `--duration` (wall time), SIGINT or SIGTERM end
 * it as they end a live run, the rest of the file unread and what was read flushed (bounded by
 * each output's `timeout`: an output that pushes back on a receiver that refuses would hold the
 * replay for ever); a second signal exits at once.
 */
async function replay(
  options: CliOptions,
  file: string,
  signals: Signals,
  env: { pipeline: Pipeline; host: string; counters: Counters; log: Logger },
): Promise<number> {
  const { pipeline, host, counters, log } = env;
  const stop = new AbortController();
  let why: string | undefined;
  void signals.stopRequested.then((reason) => {
    why = reason;
    log.info(`stopping (${why}): the rest of ${file} is not read; flushing (signal again to exit)`);
    stop.abort();
  });
  signals.onSecondStop((signal) => {
    log.warn(`${signal} again: exiting now, without finishing the flush`);
    log.info(`summary: ${counters.summary() || "no records"}`);
    Deno.exit(130);
  });
  const timer = options.durationMs
    ? setTimeout(() => signals.requestStop("duration"), options.durationMs)
    : undefined;
  const started = performance.now();
  let n;
  try {
    // This host's facts only for a recording made before recordings kept their own.
    n = await replayFile(pipeline, file, {
      host,
      counters,
      log,
      hostFacts: liveHostFacts(),
      requestStop: (why) => signals.stop(why),
    }, {
      skipBad: options.replaySkipBad,
      stop: stop.signal,
    });
  } finally {
    clearTimeout(timer);
  }
  const seconds = (performance.now() - started) / 1000;
  log.info(
    `replayed ${n} records from ${file} in ${seconds.toFixed(2)} s` +
      (why ? ` (stopped: ${why})` : ""),
  );
  log.info(`summary: ${counters.summary() || "no records"}`);
  return 0;
}

/**
 * SIGHUP, SIGINT and SIGTERM for a collecting run (a replay: SIGINT and SIGTERM), listened for
 * from its first moment (without a listener, the default action of each ends the process). The first SIGINT or SIGTERM
 * resolves {@linkcode stopRequested}; another one calls the `onSecondStop` handler (exit at
 * once). A SIGHUP calls the `onReload` handler; one that comes before it is set (during
 * start-up) is kept, and several count as one reload, run when it is set. Disposing removes
 * the listeners.
 */
class Signals implements Disposable {
  readonly stopRequested: Promise<string>;
  readonly #resolveStop: (why: string) => void;
  #stopAsked = false;
  #secondStop?: (signal: string) => void;
  #reload?: (why: string) => void;
  #reloadPending = false;
  readonly #listeners: [Deno.Signal, () => void][] = [
    ["SIGINT", () => this.stop("SIGINT")],
    ["SIGTERM", () => this.stop("SIGTERM")],
  ];

  /** `reload: false` (a replay): SIGHUP is left alone. */
  constructor({ reload = true } = {}) {
    const { promise, resolve } = Promise.withResolvers<string>();
    this.stopRequested = promise;
    this.#resolveStop = resolve;
    if (reload) this.#listeners.push(["SIGHUP", () => this.#hup()]);
    for (const [signal, listener] of this.#listeners) Deno.addSignalListener(signal, listener);
  }

  /** Asks for a stop as a signal would (`why`: "duration"). */
  requestStop(why: string): void {
    this.#stopAsked = true;
    this.#resolveStop(why);
  }

  /** What a stop signal after the first does. */
  onSecondStop(handler: (signal: string) => void): void {
    this.#secondStop = handler;
  }

  /** Reloads on SIGHUP from now on (undefined: ignore it, e.g. while stopping). */
  onReload(handler: ((why: string) => void) | undefined): void {
    this.#reload = handler;
    if (handler && this.#reloadPending) {
      this.#reloadPending = false;
      handler("SIGHUP during start-up");
    }
  }

  #hup(): void {
    if (this.#reload) this.#reload("SIGHUP");
    else if (!this.#stopAsked) this.#reloadPending = true;
  }

  /** What a stop signal does (`why`: the signal, or what a stage's `requestStop` says). */
  stop(why: string): void {
    if (!this.#stopAsked) return this.requestStop(why);
    this.#secondStop?.(why);
  }

  [Symbol.dispose](): void {
    for (const [signal, listener] of this.#listeners) Deno.removeSignalListener(signal, listener);
  }
}

/** Calls `onChange` (debounced) when `path` is written or replaced; editors often do both. */
function watchFile(path: string, onChange: () => void): { close(): void } {
  const watcher = Deno.watchFs(path);
  let timer: ReturnType<typeof setTimeout> | undefined;
  (async () => {
    for await (const event of watcher) {
      if (event.kind === "access") continue;
      clearTimeout(timer);
      timer = setTimeout(onChange, 200);
    }
  })().catch(() => {});
  return {
    close() {
      clearTimeout(timer);
      watcher.close();
    },
  };
}

if (import.meta.main) Deno.exit(await main(Deno.args));

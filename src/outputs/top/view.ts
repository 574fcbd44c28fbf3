/**
 * The running `top` output: feeds records to the model and draws a frame every `every`.
 *
 * On a terminal (standard input and output both ttys) it takes the alternate screen, hides the
 * cursor, reads keys in raw mode and holds log lines (src/log.ts) until it gives the terminal
 * back. It gives it back on every way out: close (after the pipeline's flush), `Deno.exit`
 * (a second Ctrl-C), an uncaught error or rejection (the `unload`, `error` and
 * `unhandledrejection` events). Otherwise it writes plain frames, one per `every`, no escape
 * codes, `COLUMNS` wide (default 120) and `LINES` tall (default 40).
 *
 * Self-metrics (on the stage's counters, so the `collector` probe reports them): `frames_drawn`,
 * `frames_skipped` (the previous frame was still being written), `frame_time_us` and
 * `frame_time_max_us` (computing and laying out one frame), `rows_kept` (flows, DNS and drop rows
 * held) and `records_dropped{reason=rows_full}`.
 */
import { holdLogLines } from "../../log.ts";
import type { Stage, StageContext } from "../../pipeline/stage.ts";
import { writeAll, writeAllSync } from "../write_all.ts";
import { applyKeys, initialView } from "./keys.ts";
import { TopModel } from "./model.ts";
import { render, type Screen, type StatusFacts } from "./render.ts";

/** Options of a `top` output (milliseconds for durations). */
export interface TopConfig {
  every: number;
  rate_window: number;
  max_rows: number;
  max_commands: number;
}

/** What the view draws on: the real terminal, or a test's stand-in. */
export interface Terminal {
  /** A terminal to draw in place on and read keys from (else: plain frames). */
  readonly interactive: boolean;
  /** Its size now, in cells. */
  size(): { cols: number; rows: number };
  readonly color: boolean;
  write(text: string): Promise<void>;
  /** Raw mode on or off, the keys as they come, the resize signal (interactive only). */
  setRaw?(on: boolean): void;
  readKeys?(onKeys: (text: string) => void): void;
  onResize?(fn: (() => void) | undefined): void;
  /** Writes synchronously (restoring the terminal from an `unload` event cannot wait). */
  writeSync?(text: string): void;
}

/** The process's terminal; reads the variables of `TOP_ENV` (../top.ts). */
export function processTerminal(): Terminal {
  const env = (name: string) => Deno.env.get(name);
  const interactive = Deno.stdout.isTerminal() && Deno.stdin.isTerminal();
  const encoder = new TextEncoder();
  // https://no-color.org: present and not empty. A dumb terminal has no colour either.
  const color = interactive && !env("NO_COLOR") && env("TERM") !== "dumb";
  const sized = (name: string, fallback: number) => {
    const n = Number(env(name));
    return Number.isInteger(n) && n >= 20 && n <= 1000 ? n : fallback;
  };
  let resize: (() => void) | undefined;
  const onWinch = () => resize?.();
  return {
    interactive,
    color,
    size: () => {
      if (interactive) {
        const { columns, rows } = Deno.consoleSize();
        return { cols: columns, rows };
      }
      return { cols: sized("COLUMNS", 120), rows: sized("LINES", 40) };
    },
    write: (text) => writeAll(Deno.stdout, encoder.encode(text)),
    writeSync: (text) => writeAllSync(Deno.stdout, encoder.encode(text)),
    setRaw: (on) => Deno.stdin.setRaw(on),
    readKeys: (onKeys) => {
      (async () => {
        const buf = new Uint8Array(256), decoder = new TextDecoder();
        for (let n; (n = await Deno.stdin.read(buf)) !== null;) {
          onKeys(decoder.decode(buf.subarray(0, n), { stream: true }));
        }
      })().catch(() => {});
    },
    onResize: (fn) => {
      if (fn && !resize) Deno.addSignalListener("SIGWINCH", onWinch);
      if (!fn && resize) Deno.removeSignalListener("SIGWINCH", onWinch);
      resize = fn;
    },
  };
}

// Alternate screen and hidden cursor; back again (with attributes reset).
const TAKE = "\x1b[?1049h\x1b[?25l\x1b[2J";
const GIVE_BACK = "\x1b[0m\x1b[?25h\x1b[?1049l";

/** What the status line learns from the collector's counters. */
function countersFacts(ctx: StageContext): Pick<StatusFacts, "probes" | "disabled" | "lost"> {
  const hasIn = new Set<string>(), hasOut = new Set<string>(), disabled: string[] = [];
  let lost = 0n;
  for (const c of ctx.counterSnapshot()) {
    const stage = c.labels.stage;
    if (c.name === "records_in" && stage) hasIn.add(stage);
    else if (c.name === "records_out" && stage) hasOut.add(stage);
    else if (c.name === "probes_disabled" && stage) disabled.push(stage);
    // Gauges that are not losses are left out by ctx.isLossCounter (queue_length, map fills).
    if (ctx.isLossCounter(c.name)) lost += c.value;
  }
  // A probe reads no stage: it has records out and none in.
  const probes = [...hasOut].filter((s) => !hasIn.has(s)).sort();
  return { probes, disabled, lost };
}

/** Starts the view on `terminal` (the process's own by default). */
export function startTop(
  config: TopConfig,
  ctx: StageContext,
  terminal: Terminal = processTerminal(),
): Stage {
  const model = new TopModel({
    windowMs: config.rate_window,
    spanMs: ctx.inputSpanMs,
    maxRows: config.max_rows,
    maxCommands: config.max_commands,
    onFull: () => ctx.counters.add("records_dropped", 1, { reason: "rows_full" }),
  });
  let view = initialView();
  let snap = model.snapshot(Number(ctx.clock.now() / 1_000_000n));
  let frameMs: number | undefined, frameMaxUs = 0;
  let writing: Promise<void> | undefined;
  let closed = false, lastLog: string | undefined, heldLogs = 0;

  const draw = (refresh: boolean) => {
    if (closed) return;
    if (writing) {
      ctx.counters.add("frames_skipped");
      return;
    }
    const started = performance.now();
    const nowMs = Number(ctx.clock.now() / 1_000_000n);
    if (refresh && !view.paused) snap = model.snapshot(nowMs);
    const screen: Screen = {
      ...terminal.size(),
      color: terminal.color,
      fill: terminal.interactive,
    };
    const facts: StatusFacts = { nowMs, ...countersFacts(ctx), frameMs, lastLog, heldLogs };
    const lines = render(snap, facts, view, screen);
    const text = terminal.interactive
      ? lines.map((line, i) => `\x1b[${i + 1};1H${line}`).join("")
      : lines.map((line) => line.trimEnd()).join("\n") + "\n\n";
    frameMs = performance.now() - started;
    const us = Math.round(frameMs * 1000);
    frameMaxUs = Math.max(frameMaxUs, us);
    ctx.counters.add("frames_drawn");
    ctx.counters.set("frame_time_us", us);
    ctx.counters.set("frame_time_max_us", frameMaxUs);
    const size = model.size;
    ctx.counters.set("rows_kept", size.flows + size.dns + size.drops);
    writing = terminal.write(text).catch((e) => {
      ctx.counters.add("frames_skipped");
      ctx.log.warn(`${ctx.name}: cannot write a frame: ${(e as Error).message}`);
    }).finally(() => writing = undefined);
  };

  let release: (() => void) | undefined;
  const giveBack = () => {
    if (!release) return;
    release = undefined;
    terminal.onResize?.(undefined);
    try {
      terminal.setRaw?.(false);
    } catch { /* stdin already gone: nothing to restore */ }
    terminal.writeSync?.(GIVE_BACK);
    releaseLogs();
  };
  let releaseLogs = () => {};
  if (terminal.interactive) {
    releaseLogs = holdLogLines((line) => {
      lastLog = line;
      heldLogs++;
    });
    release = giveBack;
    globalThis.addEventListener("unload", giveBack);
    globalThis.addEventListener("error", giveBack);
    globalThis.addEventListener("unhandledrejection", giveBack);
    terminal.writeSync?.(TAKE);
    terminal.setRaw?.(true);
    terminal.onResize?.(() => draw(false));
    terminal.readKeys?.((keys) => {
      const { view: next, quit } = applyKeys(view, keys);
      view = next;
      if (quit) ctx.requestStop(quit);
      draw(false);
    });
  }
  const timer = ctx.clock.every(config.every, () => draw(true));
  if (terminal.interactive) draw(true); // the frame at once, not a blank screen for a second

  return {
    push(record) {
      model.add(record);
    },
    flush() {},
    async close() {
      timer.cancel();
      await writing;
      closed = true;
      giveBack();
      globalThis.removeEventListener("unload", giveBack);
      globalThis.removeEventListener("error", giveBack);
      globalThis.removeEventListener("unhandledrejection", giveBack);
    },
  };
}

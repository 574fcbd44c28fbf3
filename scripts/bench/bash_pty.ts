/**
 * Commands a second typed into an interactive bash on a real pty (tmux): batches of `:` (a
 * builtin, so no fork) typed ahead, each batch ending with a command that signals a tmux
 * channel the benchmark waits on. Every line goes through readline, where the bash probe's
 * uretprobe fires.
 */
import { BASH, PROMPT, Tmux } from "../../test/kernel/_tmux.ts";
import { output } from "./child.ts";
import type { Measurement } from "./workload.ts";

const BATCH = 1000;

/** A bash on a pty for the whole benchmark; dispose it to end the tmux server. */
export async function startBash(): Promise<Tmux> {
  const tmux = new Tmux();
  // No history file: thousands of `:` would otherwise be written to ~/.bash_history.
  await tmux.start("bench", ["env", "HISTFILE=/dev/null", ...BASH]);
  await tmux.waitForScreen("bench", PROMPT);
  return tmux;
}

export async function bashCommands(tmux: Tmux, seconds: number): Promise<Measurement> {
  const signal = `tmux -L ${tmux.socket} wait-for -S bench-batch`;
  const batch = ":\r".repeat(BATCH - 1) + signal; // Tmux.type adds the last Enter
  let commands = 0;
  const start = performance.now(), end = start + seconds * 1000;
  while (performance.now() < end) {
    const done = output("tmux", ["-L", tmux.socket, "wait-for", "bench-batch"]);
    await tmux.type("bench", batch);
    await done;
    commands += BATCH;
  }
  const rate = commands / ((performance.now() - start) / 1000);
  await tmux.type("bench", "clear"); // a short screen for the next run's rendering
  return { value: rate, events: commands };
}

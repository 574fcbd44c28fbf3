/**
 * Signals at awkward moments, sent to the real collector process (`deno task run`'s command
 * line). No kernel: the only probe is `collector`, which reports on the process itself.
 *
 * A slow start-up is made the way a user could meet one: the file output's path is a FIFO,
 * and opening it for writing waits until a reader opens it (here `cat`, started by the test).
 */
import assert from "node:assert/strict";
import { ROOT } from "./_run_command.ts";
import { Collector, tempPipeline } from "./kernel/_collector.ts";

/** x86_64 `openat`, as the first number of /proc/<pid>/task/<tid>/syscall shows it. */
const SYS_OPENAT = 257;

/**
 * Whether a thread of `pid` waits in open(2) for the other end of a FIFO: the kernel's
 * `wait_for_partner` in /proc/.../wchan; where the kernel hides wchan symbols, a thread inside
 * openat on two looks 100 ms apart (start-up's other opens do not last that long).
 */
async function waitsOnFifo(pid: number): Promise<boolean> {
  const openingThreads = () => {
    const found = new Set<string>();
    try {
      for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
        const dir = `/proc/${pid}/task/${task.name}`;
        if (Deno.readTextFileSync(`${dir}/wchan`) === "wait_for_partner") return "fifo";
        const nr = Number(Deno.readTextFileSync(`${dir}/syscall`).split(" ")[0]);
        if (nr === SYS_OPENAT) found.add(task.name);
      }
    } catch { /* exited, or a thread ended while we looked */ }
    return found;
  };
  const first = openingThreads();
  if (first === "fifo" || first.size === 0) return first === "fifo";
  await new Promise((r) => setTimeout(r, 100));
  const second = openingThreads();
  return second === "fifo" || [...first].some((tid) => second.has(tid));
}

async function until(what: string, predicate: () => Promise<boolean>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A FIFO under build/tmp/, removed afterwards. */
async function makeFifo(): Promise<string & AsyncDisposable> {
  Deno.mkdirSync(`${ROOT}build/tmp`, { recursive: true });
  const path = `${ROOT}build/tmp/fifo-${crypto.randomUUID()}`;
  const made = await new Deno.Command("mkfifo", { args: [path] }).output();
  assert.equal(made.code, 0, new TextDecoder().decode(made.stderr));
  return Object.assign(path, {
    [Symbol.asyncDispose]: () => Deno.remove(path).catch(() => {}),
  }) as string & AsyncDisposable;
}

/** Reads `fifo` to its end in a child process (so the test never blocks on it). */
function reader(fifo: string): AsyncDisposable & { text(): Promise<string> } {
  const child = new Deno.Command("cat", { args: [fifo], stdout: "piped", stderr: "null" })
    .spawn();
  const text = new Response(child.stdout).text();
  return {
    text: () => text,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* ended */ }
      await child.status;
      await text.catch(() => {});
    },
  };
}

/**
 * Starts the collector on a pipeline whose file output writes to a FIFO, and resolves once it
 * is stuck in start-up opening that FIFO.
 */
async function startStuck(fifo: string): Promise<Collector> {
  const pipeline = tempPipeline(`version: 1
probes:
  self: { type: collector, every: 100ms }
outputs:
  out: { type: file, inputs: [self], path: "${fifo}", format: json }
`);
  const collector = new Collector(["--pipeline", pipeline], [`--allow-write=${fifo}`]);
  await until("the collector to open the FIFO", () => waitsOnFifo(collector.pid));
  assert.ok(!collector.stderr.includes("collecting with"), "still starting");
  return collector;
}

/** Resolves once it collects; throws at once, with the exit status, if it died instead. */
async function collecting(collector: Collector): Promise<void> {
  await Promise.race([
    collector.attached(),
    collector.exited().then((s) => {
      throw new Error(`the collector exited (code ${s.code}, ${s.signal}):\n${collector.stderr}`);
    }),
  ]);
}

Deno.test("SIGHUP during start-up does not kill the collector; the reload runs once it collects", async () => {
  await using fifo = await makeFifo();
  await using collector = await startStuck(`${fifo}`);
  collector.signal("SIGHUP");
  collector.signal("SIGHUP"); // twice: still one reload
  await new Promise((r) => setTimeout(r, 200)); // time for a signal to kill it, if it can
  await using out = reader(`${fifo}`);
  await collecting(collector);
  await collector.waitFor("the reload", () => /reloaded .* \(SIGHUP/.test(collector.stderr));
  const status = await collector.stop("SIGINT");
  assert.equal(status.code, 0, collector.stderr);
  assert.equal(collector.stderr.match(/reloaded /g)?.length, 1, collector.stderr);
  assert.match(await out.text(), /"measurement":"ebpf_collector"/, "it collected");
});

Deno.test("SIGTERM during start-up stops the collector cleanly once it has started", async () => {
  await using fifo = await makeFifo();
  await using collector = await startStuck(`${fifo}`);
  collector.signal("SIGTERM");
  await new Promise((r) => setTimeout(r, 200));
  await using out = reader(`${fifo}`);
  const status = await collector.exited();
  assert.equal(status.code, 0, collector.stderr);
  assert.match(collector.stderr, /stopping \(SIGTERM\)/);
  assert.match(collector.stderr, /summary: /);
  // The last report at shutdown reached the output: nothing collected was lost.
  assert.match(await out.text(), /"measurement":"ebpf_collector"/);
});

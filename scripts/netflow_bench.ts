/**
 * What the `netflow` probe costs the traffic it watches, and what the collector itself uses.
 * Runs three loopback workloads with the collector OFF and ON, interleaved (off, on, off, on, ...
 * for --rounds rounds), and prints the medians:
 *
 * - iperf3 TCP throughput (one stream to 127.0.0.1);
 * - short TCP connections a second (connect, write 16 bytes, read the echo, close; 4 at a time,
 *   against an echo server in this process);
 * - UDP 64-byte datagrams received a second (a python3 sender and receiver, one process each;
 *   Deno.listenDatagram still needs --unstable-net and receives ~4x slower, which would hide
 *   a per-datagram cost);
 *
 * and, while ON, the collector's CPU (utime+stime from /proc/<pid>/stat over each workload, in %
 * of one core) and its RSS (VmRSS, the highest of samples every 200 ms). The probe's BPF
 * programs run in the processes doing the I/O, so their cost shows as lower workload numbers,
 * not as collector CPU. The collector is started with `deno task run`'s command line and a
 * pipeline of only `netflow` (poll 10s) writing JSON to stdout, sent to /dev/null: reading it
 * here would take CPU from the short-connection workload, which runs in this process (the
 * collector's summary line, printed after each ON round, shows how many records it wrote).
 *
 * Run as root, with iperf3 and python3 installed (noise on loopback is about ±10%, so use 3 or
 * more rounds and compare medians):
 *
 *   deno run -A scripts/netflow_bench.ts [--rounds 3] [--seconds S]
 *
 * --seconds sets the length of every workload run (default: 5 for iperf3, 3 for the others).
 */
import { parseArgs } from "node:util";
import { ROOT, runTaskArgs, tempPipeline } from "../test/_run_command.ts";

const PIPELINE = `version: 1
probes:
  netflow: { type: netflow, poll: 10s }
outputs:
  sink: { type: stdout, inputs: [netflow], format: json }
`;

/** Short TCP connections in flight at once: enough to keep this process's event loop busy. */
const TCP_CONCURRENCY = 4;
const TCP_MESSAGE = new TextEncoder().encode("netflow-bench-16");
/** Quiet time before each measured run, so one run's tail (or the collector's start) is not in the next. */
const SETTLE_MS = 1000;
const RSS_SAMPLE_MS = 200;
const START_TIMEOUT_MS = 60_000;

const UDP_PY = `
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if sys.argv[1] == "recv":
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1], flush=True)
    s.settimeout(30.0)
    n, first, last = 0, 0.0, 0.0
    try:
        while True:
            s.recv(2048)
            last = time.perf_counter()
            if n == 0:
                first = last
                s.settimeout(0.5)  # the sender is done once nothing comes for this long
            n += 1
    except socket.timeout:
        pass
    print(json.dumps({"received": n, "seconds": last - first}), flush=True)
else:
    to, seconds, payload = ("127.0.0.1", int(sys.argv[2])), float(sys.argv[3]), bytes(64)
    n, start = 0, time.perf_counter()
    while time.perf_counter() < start + seconds:
        for _ in range(100):
            s.sendto(payload, to)
        n += 100
    print(json.dumps({"sent": n, "seconds": time.perf_counter() - start}), flush=True)
`;

/** One measured run of a workload. */
interface Measurement {
  value: number;
  note?: string;
}

interface Workload {
  name: string;
  unit: string;
  digits: number;
  seconds: number;
  run(): Promise<Measurement>;
}

/** The collector's use of the machine during one workload run. */
interface Usage {
  cpuPercent: number;
  rssMaxKb: number;
}

/** A child process whose output is read as it comes, so it never blocks on a full pipe. */
class Child implements AsyncDisposable {
  stdout = "";
  stderr = "";
  readonly #child: Deno.ChildProcess;
  readonly #pumps: Promise<void>[];
  readonly #status: Promise<Deno.CommandStatus>;
  #exited = false;

  /** `discardStdout` sends stdout to /dev/null. */
  constructor(command: string, args: string[], options: { discardStdout?: boolean } = {}) {
    this.#child = new Deno.Command(command, {
      args,
      cwd: ROOT,
      stdin: "null",
      stdout: options.discardStdout ? "null" : "piped",
      stderr: "piped",
    }).spawn();
    this.#status = this.#child.status.then((status) => {
      this.#exited = true;
      return status;
    });
    this.#pumps = [pump(this.#child.stderr, (text) => this.stderr += text)];
    if (!options.discardStdout) {
      this.#pumps.push(pump(this.#child.stdout, (text) => this.stdout += text));
    }
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** Waits until `predicate` holds; throws if the process exits first or after `timeoutMs`. */
  async waitFor(what: string, predicate: () => boolean, timeoutMs = START_TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (this.#exited) {
        const status = await this.finished();
        throw new StartError(what, `it exited with code ${status.code}`, this.stderr);
      }
      if (Date.now() > deadline) throw new StartError(what, "timed out", this.stderr);
      await sleep(20);
    }
  }

  /** Resolves once the process has exited and all its output is read. */
  async finished(): Promise<Deno.CommandStatus> {
    const status = await this.#status;
    await Promise.all(this.#pumps);
    return status;
  }

  /** Sends `signal` (unless it already exited) and waits as `finished()` does. */
  stop(signal: Deno.Signal): Promise<Deno.CommandStatus> {
    if (!this.#exited) {
      try {
        this.#child.kill(signal);
      } catch { /* exited meanwhile */ }
    }
    return this.finished();
  }

  /** Leaves nothing running when a run fails half way. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop("SIGKILL");
  }
}

/** A child that did not get ready; `stderr` is its output, exactly. */
class StartError extends Error {
  constructor(readonly what: string, readonly why: string, readonly stderr: string) {
    super(`${what}: ${why}`);
  }
}

async function pump(stream: ReadableStream<Uint8Array>, onText: (text: string) => void) {
  for await (const text of stream.pipeThrough(new TextDecoderStream())) onText(text);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function median(values: number[]): number {
  const sorted = values.toSorted((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** `iperf3 -s` for the whole benchmark, ready once it says it listens. */
async function startIperfServer(): Promise<{ server: Child; port: number }> {
  const port = freePort();
  const server = new Child("iperf3", ["-s", "-p", String(port), "--forceflush"]);
  try {
    await server.waitFor("iperf3 -s", () => server.stdout.includes("Server listening"));
  } catch (e) {
    await server.stop("SIGKILL");
    throw e;
  }
  return { server, port };
}

async function iperfThroughput(port: number, seconds: number): Promise<Measurement> {
  const args = ["-c", "127.0.0.1", "-p", String(port), "-t", String(seconds), "-J"];
  const out = await new Deno.Command("iperf3", { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  let report;
  try {
    report = JSON.parse(text);
  } catch {
    throw new Error(
      `iperf3 -c: no JSON (exit ${out.code}): ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  if (report.error) throw new Error(`iperf3 -c: ${report.error}`);
  const retransmits = report.end?.sum_sent?.retransmits;
  return {
    value: report.end.sum_received.bits_per_second / 1e9,
    note: retransmits ? `${retransmits} retransmits` : undefined,
  };
}

/** Reads until `buf` is full; false if the peer closed first. */
async function readFull(conn: Deno.Conn, buf: Uint8Array): Promise<boolean> {
  for (let got = 0; got < buf.length;) {
    const n = await conn.read(buf.subarray(got));
    if (n === null) return false;
    got += n;
  }
  return true;
}

/** The server closes first, so TIME_WAIT sockets pile up on its side, not on the ephemeral ports. */
async function echoOnce(conn: Deno.Conn): Promise<void> {
  try {
    const buf = new Uint8Array(TCP_MESSAGE.length);
    if (await readFull(conn, buf)) await conn.write(buf);
  } catch {
    /* the client gave up; it counts that */
  } finally {
    conn.close();
  }
}

async function shortConnections(seconds: number): Promise<Measurement> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const accepting = (async () => {
    try {
      for await (const conn of listener) void echoOnce(conn);
    } catch { /* closed */ }
  })();
  let done = 0, failed = 0, firstError = "";
  const client = async (end: number) => {
    const buf = new Uint8Array(TCP_MESSAGE.length);
    while (performance.now() < end) {
      let conn: Deno.Conn | undefined;
      try {
        conn = await Deno.connect({ hostname: "127.0.0.1", port });
        await conn.write(TCP_MESSAGE);
        if (!await readFull(conn, buf)) throw new Error("closed before the echo");
        await conn.read(buf); // the server's close
        done++;
      } catch (e) {
        failed++;
        firstError ||= String(e);
      } finally {
        conn?.close();
      }
    }
  };
  const start = performance.now();
  await Promise.all(
    Array.from({ length: TCP_CONCURRENCY }, () => client(start + seconds * 1000)),
  );
  const elapsed = (performance.now() - start) / 1000;
  listener.close();
  await accepting;
  return {
    value: done / elapsed,
    note: failed ? `${failed} failed, first: ${firstError}` : undefined,
  };
}

async function udpDatagrams(seconds: number): Promise<Measurement> {
  await using receiver = new Child("python3", ["-c", UDP_PY, "recv"]);
  await receiver.waitFor("python3 UDP receiver", () => receiver.stdout.includes("\n"));
  const port = receiver.stdout.split("\n")[0];
  const out = await new Deno.Command("python3", {
    args: ["-c", UDP_PY, "send", port, String(seconds)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`python3 UDP sender: ${new TextDecoder().decode(out.stderr)}`);
  }
  const sender = JSON.parse(new TextDecoder().decode(out.stdout));
  const status = await receiver.finished();
  if (!status.success) throw new Error(`python3 UDP receiver: ${receiver.stderr}`);
  const got = JSON.parse(receiver.stdout.split("\n")[1]);
  const lost = 1 - got.received / sender.sent;
  return {
    value: got.received / got.seconds,
    note: `sent ${(sender.sent / sender.seconds).toFixed(0)}/s, ${
      (lost * 100).toFixed(1)
    }% dropped`,
  };
}

function cpuTicks(pid: number): number {
  // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[14 - 3]) + Number(fields[15 - 3]);
}

function rssKb(pid: number): number {
  const match = Deno.readTextFileSync(`/proc/${pid}/status`).match(/^VmRSS:\s+(\d+) kB/m);
  return match ? Number(match[1]) : NaN;
}

/** Measures `pid`'s CPU (% of one core) and highest RSS while `work` runs. */
async function withUsage<T>(
  pid: number,
  ticksPerSecond: number,
  work: () => Promise<T>,
): Promise<[T, Usage]> {
  let rssMaxKb = rssKb(pid);
  const timer = setInterval(() => rssMaxKb = Math.max(rssMaxKb, rssKb(pid)), RSS_SAMPLE_MS);
  const ticks0 = cpuTicks(pid), t0 = performance.now();
  try {
    const result = await work();
    const ticks = cpuTicks(pid) - ticks0, seconds = (performance.now() - t0) / 1000;
    rssMaxKb = Math.max(rssMaxKb, rssKb(pid));
    return [result, { cpuPercent: ticks / ticksPerSecond / seconds * 100, rssMaxKb }];
  } finally {
    clearInterval(timer);
  }
}

async function clockTicksPerSecond(): Promise<number> {
  const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" }).output();
  return Number(new TextDecoder().decode(out.stdout).trim()) || 100; // USER_HZ is 100 on x86 and arm64
}

async function requireTool(command: string, args: string[], hint: string): Promise<void> {
  try {
    const out = await new Deno.Command(command, { args, stdout: "null", stderr: "null" }).output();
    if (out.success) return;
  } catch { /* not found */ }
  throw new Error(`${command} is needed: ${hint}`);
}

function format(value: number, digits: number): string {
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) =>
    row.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join("  ")
  ).join("\n");
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string", default: "3" },
      seconds: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log("usage (as root): deno run -A scripts/netflow_bench.ts [--rounds N] [--seconds S]");
    return 0;
  }
  const rounds = Number(values.rounds);
  const seconds = values.seconds === undefined ? undefined : Number(values.seconds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error("--rounds: a whole number >= 1");
  if (seconds !== undefined && !(seconds >= 1)) throw new Error("--seconds: a number >= 1");
  if (Deno.uid() !== 0) throw new Error("run as root: the collector attaches BPF programs");
  await requireTool("iperf3", ["--version"], "apt-get install -y iperf3");
  await requireTool("python3", ["--version"], "apt-get install -y python3");
  const ticksPerSecond = await clockTicksPerSecond();

  await using stack = new AsyncDisposableStack();
  const { server, port } = await startIperfServer();
  stack.use(server);
  const pipeline = tempPipeline(PIPELINE);
  stack.defer(() => Deno.remove(pipeline));

  const workloads: Workload[] = [
    {
      name: "iperf3 TCP throughput",
      unit: "Gbit/s",
      digits: 2,
      seconds: seconds ?? 5,
      run() {
        return iperfThroughput(port, this.seconds);
      },
    },
    {
      name: "short TCP connections",
      unit: "conn/s",
      digits: 0,
      seconds: seconds ?? 3,
      run() {
        return shortConnections(this.seconds);
      },
    },
    {
      name: "UDP 64 B datagrams received",
      unit: "dgram/s",
      digits: 0,
      seconds: seconds ?? 3,
      run() {
        return udpDatagrams(this.seconds);
      },
    },
  ];
  const off = workloads.map((): number[] => []);
  const on = workloads.map((): number[] => []);
  const usage = workloads.map((): Usage[] => []);

  const kernel = Deno.readTextFileSync("/proc/sys/kernel/osrelease").trim();
  console.log(
    `netflow bench: ${rounds} round(s), ${navigator.hardwareConcurrency} CPUs, ` +
      `kernel ${kernel}, deno ${Deno.version.deno}`,
  );
  for (let round = 1; round <= rounds; round++) {
    for (const mode of ["off", "on"] as const) {
      let collector: Child | undefined;
      if (mode === "on") {
        collector = new Child(Deno.execPath(), [...runTaskArgs(), "--pipeline", pipeline], {
          discardStdout: true,
        });
        stack.use(collector);
        const c = collector;
        await c.waitFor("the collector", () => c.stderr.includes("collecting with"));
      }
      for (const [i, workload] of workloads.entries()) {
        await sleep(SETTLE_MS);
        let result: Measurement, used: Usage | undefined;
        if (collector) {
          [result, used] = await withUsage(collector.pid, ticksPerSecond, () => workload.run());
          on[i].push(result.value);
          usage[i].push(used);
        } else {
          result = await workload.run();
          off[i].push(result.value);
        }
        console.log(
          `  round ${round} ${mode.padEnd(3)} ${workload.name}: ` +
            `${format(result.value, workload.digits)} ${workload.unit}` +
            (used
              ? `; collector ${used.cpuPercent.toFixed(1)}% CPU, ` +
                `${(used.rssMaxKb / 1024).toFixed(0)} MiB RSS`
              : "") +
            (result.note ? ` (${result.note})` : ""),
        );
      }
      if (collector) {
        const status = await collector.stop("SIGINT");
        const summary = collector.stderr.match(/summary: (.*)/)?.[1] ?? "(no summary line)";
        console.log(
          `  round ${round} collector exited with code ${status.code}, ` +
            `summary: ${summary}`,
        );
        if (!status.success) console.log(collector.stderr);
      }
    }
  }

  console.log(`\nmedians of ${rounds} round(s):\n`);
  console.log(table([
    ["workload", "length", "off (median)", "on (median)", "on/off"],
    ...workloads.map((w, i) => {
      const a = median(off[i]), b = median(on[i]);
      return [
        `${w.name} (${w.unit})`,
        `${w.seconds} s`,
        format(a, w.digits),
        format(b, w.digits),
        `${(b / a).toFixed(3)} (${b >= a ? "+" : ""}${((b / a - 1) * 100).toFixed(1)}%)`,
      ];
    }),
  ]));
  console.log("\ncollector while ON:\n");
  console.log(table([
    ["workload", "CPU % of one core (median)", "RSS MiB (max)"],
    ...workloads.map((w, i) => [
      w.name,
      median(usage[i].map((u) => u.cpuPercent)).toFixed(1),
      (Math.max(...usage[i].map((u) => u.rssMaxKb)) / 1024).toFixed(1),
    ]),
  ]));
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    if (e instanceof StartError) {
      console.error(`${e.message}; its stderr, exactly:\n${e.stderr}`);
    } else {
      console.error(`netflow_bench: ${e instanceof Error ? e.message : e}`);
    }
    Deno.exit(1);
  }
}

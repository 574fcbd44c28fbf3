/**
 * Per-host figures for docs/scale.md: what one busy host sends a store each minute with the
 * default pipeline. The collector runs pipeline.yaml with an `http` output (preset influxdb) to
 * a local VictoriaMetrics, through a counting proxy that reads every request body, while a
 * workload on loopback keeps the host busy:
 *
 * - an `api-server` process with four TCP ports, a UDP `statsd` port, and a dnsmasq (its own
 *   port) that names five services;
 * - `web-client` (~20 short connections a second), two `api-worker`s (resolve a service, then
 *   connect: ~5 a second each), a `db-pool` of four long-lived connections that talk every
 *   200 ms, a `metrics-agent` sending UDP datagrams (10 a second) from an unconnected socket,
 *   and a `cron` that starts a short-lived `curl` every 5 s (a new pid each time: resolves, 3
 *   connections, exits); 5% of lookups ask for names nobody serves.
 *
 * Two more branches of the same pipeline read the same records: the windows without the
 * `ephemeral_port` stages (database `raw_ports`), and those windows with a `max_series` of 25
 * (database `budget`), so the series they make can be compared on the same traffic.
 *
 *   deno run -A scripts/scale_figures.ts [--minutes 3] [--every 60s]
 *
 * Run as root (the collector's probes), with victoria-metrics, dnsmasq and python3 installed.
 * The first window (the collector starts within it) is left out; `--minutes` full windows are
 * measured. Prints per window and on average: records, samples (numeric fields), bytes of line
 * protocol and of gzip on the wire, per measurement and per branch; the series each branch made
 * in VictoriaMetrics; the netflow tags with the most values in each window; the collector's CPU,
 * RSS, warnings, folded series and losses; the load average before and after. The collector sees
 * the whole host: what else runs there during the measurement is in the figures too.
 */
import { parseArgs } from "node:util";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { parseDuration } from "../src/units.ts";
import { explainedCommand, ROOT, tempPipeline } from "../test/_run_command.ts";
import { freePorts } from "../test/_server_process.ts";
import { startVictoriametrics } from "../test/_victoriametrics.ts";
import { sleep } from "./bench/child.ts";
import { cpuTicks, memoryKb } from "./bench/proc.ts";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "3" },
    every: { type: "string", default: "60s" },
  },
});
const WINDOWS = Number(values.minutes);
const EVERY_MS = parseDuration(values.every!);
const BUDGET = 25;

// ---------------------------------------------------------------------------------------------
// What crosses the wire, per database (branch), window time and measurement.

interface Tally {
  records: number;
  samples: number;
  bytes: number;
  /** `<measurement>,<tags> <field>` of each numeric field: a series in the store. */
  series: Set<string>;
}
/** db → window time (ms) → measurement → tally. */
const wire = new Map<string, Map<number, Map<string, Tally>>>();
/** db → gzip bytes of every request body, and uncompressed bytes (all windows). */
const bodies = new Map<string, { gzip: number; plain: number; requests: number }>();

/** The measurement, the number of numeric fields and the time (ms) of a line-protocol line. */
function readLine(line: string): { measurement: string; series: string[]; ms: number } {
  // Our lines never hold a string field with a space before the fields (windows are numeric;
  // `ebpf_collector` too); escaped spaces and commas in tags are skipped.
  let i = 0, measurementEnd = -1, keyEnd = -1;
  for (; i < line.length; i++) {
    const c = line[i];
    if (c === "\\") i++;
    else if (c === "," && measurementEnd < 0) measurementEnd = i;
    else if (c === " ") {
      keyEnd = i;
      break;
    }
  }
  if (measurementEnd < 0) measurementEnd = keyEnd;
  const timeStart = line.lastIndexOf(" ");
  const fields = line.slice(keyEnd + 1, timeStart);
  const numeric = fields.split(",").filter((f) => !/="/.test(f)).map((f) => f.split("=")[0]);
  const key = line.slice(0, keyEnd);
  return {
    measurement: line.slice(0, measurementEnd).replaceAll("\\", ""),
    series: numeric.map((field) => `${key} ${field}`),
    ms: Number(BigInt(line.slice(timeStart + 1)) / 1_000_000n),
  };
}

/** Window time (ms) → tag → the values it took in netflow lines of the main branch. */
const tagValues = new Map<number, Map<string, Set<string>>>();

/** Notes the tags of a netflow line (tag values here hold no commas or spaces). */
function noteTags(line: string, ms: number): void {
  if (!line.startsWith("netflow,")) return;
  const byTag = tagValues.get(ms) ?? new Map<string, Set<string>>();
  tagValues.set(ms, byTag);
  for (const pair of line.slice(0, line.indexOf(" ")).split(",").slice(1)) {
    const [tag, value] = pair.split("=");
    const values = byTag.get(tag) ?? new Set<string>();
    byTag.set(tag, values);
    values.add(value);
  }
}

function tally(db: string, body: string): void {
  const byTime = wire.get(db) ?? new Map<number, Map<string, Tally>>();
  wire.set(db, byTime);
  for (const line of body.split("\n")) {
    if (!line) continue;
    const { measurement, series, ms } = readLine(line);
    if (db === "ebpf") noteTags(line, ms);
    const byMeasurement = byTime.get(ms) ?? new Map<string, Tally>();
    byTime.set(ms, byMeasurement);
    const t = byMeasurement.get(measurement) ??
      { records: 0, samples: 0, bytes: 0, series: new Set<string>() };
    byMeasurement.set(measurement, t);
    t.records++;
    t.samples += series.length;
    for (const s of series) t.series.add(s);
    t.bytes += new TextEncoder().encode(line).length + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// VictoriaMetrics, and the counting proxy in front of it.

// Series limits raised: without the ephemeral-port collapse one run makes tens of thousands.
const vm = await startVictoriametrics([
  "-search.maxUniqueTimeseries=10000000",
  "-search.maxSeries=10000000",
]);
const [proxyPort, tcpBase, dnsPort] = freePorts(3);
const proxy = Deno.serve({ hostname: "127.0.0.1", port: proxyPort, onListen() {} }, async (req) => {
  const url = new URL(req.url);
  const raw = new Uint8Array(await req.arrayBuffer());
  const gzip = req.headers.get("content-encoding") === "gzip";
  const plain = gzip
    ? await new Response(new Blob([raw]).stream().pipeThrough(new DecompressionStream("gzip")))
      .text()
    : new TextDecoder().decode(raw);
  const db = url.searchParams.get("db") ?? "";
  const b = bodies.get(db) ?? { gzip: 0, plain: 0, requests: 0 };
  bodies.set(db, b);
  b.gzip += gzip ? raw.length : 0;
  b.plain += new TextEncoder().encode(plain).length;
  b.requests++;
  tally(db, plain);
  const answer = await fetch(`${vm.url}${url.pathname}${url.search}`, {
    method: "POST",
    body: raw,
    headers: req.headers,
  });
  const text = await answer.text();
  return new Response(text || null, { status: answer.status });
});

// ---------------------------------------------------------------------------------------------
// The pipeline: pipeline.yaml as it is, its dns probe on the workload's DNS port, plus the
// outputs and the two comparison branches.

const SERVICES = ["api", "auth", "db", "cache", "search"];
// deno-lint-ignore no-explicit-any
const doc = parseYaml(Deno.readTextFileSync(`${ROOT}pipeline.yaml`)) as any;
doc.probes.dns.ports = [dnsPort];
doc.probes.self.every = values.every;
for (const w of ["netflow_per_minute", "dnsflow_per_minute"]) doc.windows[w].every = values.every;
const raw = (window: string, input: string, maxSeries?: number) => ({
  ...doc.windows[window],
  inputs: [input],
  ...(maxSeries ? { max_series: maxSeries } : {}),
});
// The comparison branches read what the ephemeral_port stages read.
const [flows] = doc.transforms.merge_client_ports.inputs;
const [requests] = doc.transforms.merge_dns_client_ports.inputs;
doc.windows.netflow_raw_ports = raw("netflow_per_minute", flows);
doc.windows.dnsflow_raw_ports = raw("dnsflow_per_minute", requests);
doc.windows.netflow_budget = raw("netflow_per_minute", flows, BUDGET);
doc.windows.dnsflow_budget = raw("dnsflow_per_minute", requests, BUDGET);
const to = (database: string, inputs: string[]) => ({
  type: "http",
  inputs,
  preset: "influxdb",
  url: `http://127.0.0.1:${proxyPort}`,
  database,
});
doc.outputs.store = to("ebpf", ["netflow_per_minute", "dnsflow_per_minute", "self"]);
doc.outputs.store_raw_ports = to("raw_ports", ["netflow_raw_ports", "dnsflow_raw_ports"]);
doc.outputs.store_budget = to("budget", ["netflow_budget", "dnsflow_budget"]);
const pipeline = tempPipeline(stringifyYaml(doc));

/** Runs the collector with the flags `--explain` prints for the pipeline. */
async function startCollector(): Promise<Deno.ChildProcess> {
  const words = await explainedCommand(pipeline);
  const flags = words.slice(2, words.indexOf("src/main.ts"));
  console.error(`collector: deno run ${flags.join(" ")} src/main.ts --pipeline ${pipeline}`);
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, `${ROOT}src/main.ts`, "--pipeline", pipeline],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

// ---------------------------------------------------------------------------------------------
// The workload: one python3 program that forks the processes named above.

const WORKLOAD = `
import ctypes, os, random, socket, struct, sys, threading, time
libc = ctypes.CDLL(None)
def named(n): libc.prctl(15, n.encode(), 0, 0, 0)
seconds, base, dns_port = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
services = sys.argv[4].split(",")
end = time.time() + seconds

def resolve(name, qtype=1):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
    s.connect(("127.0.0.1", dns_port))
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0"
    s.send(q + struct.pack(">HH", qtype, 1))
    try:
        a = s.recv(512)
    except socket.timeout:
        return None
    finally:
        s.close()
    # The first answer's address: the last 4 bytes of an A answer.
    return socket.inet_ntoa(a[-4:]) if qtype == 1 and struct.unpack(">H", a[6:8])[0] else None

def talk(addr, port, request=200):
    c = socket.create_connection((addr, port), timeout=2)
    c.sendall(b"x" * request); c.shutdown(socket.SHUT_WR)
    while c.recv(65536): pass
    c.close()

def serve(port, reply):
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("0.0.0.0", port)); l.listen(512)
    def one(c):
        try:
            while True:
                d = c.recv(65536)
                if not d: break
                if port == base + 3: c.sendall(b"r" * 800)  # db: answers each request
            if port != base + 3: c.sendall(b"y" * reply)
        except OSError: pass
        c.close()
    while True:
        c, _ = l.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()

def statsd():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", base + 10))
    while True: u.recv(2048)

def every(period, fn):
    while time.time() < end:
        try: fn()
        except OSError: pass
        time.sleep(period)

def lookup():
    # 5% ask for a name nobody serves; some ask for AAAA.
    if random.random() < 0.05: resolve("nope%d.invalid" % random.randrange(3)); return None
    svc = random.choice(services)
    if random.random() < 0.2: resolve(svc + ".svc.test", 28)
    return resolve(svc + ".svc.test"), services.index(svc)

def worker():
    r = lookup()
    if r and r[0]: talk(r[0], base + 1 + r[1] % 2, 400)

def db_pool():
    conns = [socket.create_connection(("127.0.0.1", base + 3)) for _ in range(4)]
    while time.time() < end:
        for c in conns:
            c.sendall(b"q" * 120); c.recv(65536)
        time.sleep(0.2)

def cron():
    while time.time() < end:
        if os.fork() == 0:
            named("curl")
            for _ in range(3): worker()
            os._exit(0)
        os.wait(); time.sleep(5)

def metrics_agent():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    every(0.1, lambda: u.sendto(b"requests:1|c", ("127.0.0.1", base + 10)))

roles = [("web-client", lambda: every(0.05, lambda: talk("127.0.0.1", base, 200))),
         ("api-worker", lambda: every(0.2, worker)), ("api-worker", lambda: every(0.2, worker)),
         ("db-pool", db_pool), ("metrics-agent", metrics_agent), ("cron", cron)]
named("api-server")
for p, reply in [(base, 2000), (base + 1, 6000), (base + 2, 30000), (base + 3, 0)]:
    threading.Thread(target=serve, args=(p, reply), daemon=True).start()
threading.Thread(target=statsd, daemon=True).start()
time.sleep(0.3)
children = []
for role, fn in roles:
    pid = os.fork()
    if pid == 0:
        named(role); random.seed(os.getpid())
        try: fn()
        finally: os._exit(0)
    children.append(pid)
for pid in children: os.waitpid(pid, 0)
`;

const dnsmasq = new Deno.Command("dnsmasq", {
  args: [
    "--no-daemon",
    "--no-resolv",
    "--no-hosts",
    `--port=${dnsPort}`,
    "--listen-address=127.0.0.1",
    "--bind-interfaces",
    "--user=root",
    "--pid-file=",
    "--cache-size=0",
    "--log-facility=/dev/null",
    ...SERVICES.map((s, i) => `--address=/${s}.svc.test/127.0.0.${11 + i}`),
  ],
  stdout: "null",
  stderr: "null",
}).spawn();

const loadBefore = Deno.readTextFileSync("/proc/loadavg").trim();

// Start a few seconds after a window boundary, so the first (left out) window is nearly whole
// and the run is as short as it can be: that window, WINDOWS full ones, and the flush.
await sleep(EVERY_MS - (Date.now() % EVERY_MS) + 2000);
const collector = await startCollector();
let stderr = "";
const pump = (async () => {
  for await (const chunk of collector.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
})();
while (!stderr.includes("collecting with")) {
  if (/error/.test(stderr)) throw new Error(stderr);
  await sleep(50);
}
const firstFull = Math.ceil(Date.now() / EVERY_MS) * EVERY_MS; // the first whole window starts
const lastTick = firstFull + WINDOWS * EVERY_MS;
const seconds = (lastTick - Date.now()) / 1000 + 3;
const workload = new Deno.Command("python3", {
  args: ["-c", WORKLOAD, String(seconds), String(tcpBase), String(dnsPort), SERVICES.join(",")],
  stdout: "null",
  stderr: "piped",
}).spawn();
const ticks0 = cpuTicks(collector.pid);
const t0 = Date.now();
let rssMaxKiB = 0;
while (Date.now() < lastTick + 3000) {
  rssMaxKiB = Math.max(rssMaxKiB, memoryKb(collector.pid).rss);
  await sleep(1000);
}
const cpu = (cpuTicks(collector.pid) - ticks0) / ((Date.now() - t0) / 1000); // % of a core (USER_HZ 100)
const workloadErr = new TextDecoder().decode((await workload.output()).stderr);
collector.kill("SIGINT");
await collector.status;
await pump;
dnsmasq.kill("SIGTERM");
await dnsmasq.status;
const loadAfter = Deno.readTextFileSync("/proc/loadavg").trim();

// ---------------------------------------------------------------------------------------------
// Figures.

const full = (ms: number) => ms > firstFull && ms <= lastTick && ms % EVERY_MS === 0;
const minute = 60_000 / EVERY_MS; // windows a minute (figures are scaled to a minute)
const perMinute = (n: number) => Math.round((n / WINDOWS) * minute);
const out: string[] = [];
const line = (s = "") => out.push(s);
line(
  `windows: ${WINDOWS} × ${values.every} (first whole one at ${new Date(firstFull).toISOString()})`,
);
line(`load average before: ${loadBefore}; after: ${loadAfter}`);
line(`collector: CPU ${cpu.toFixed(1)}% of a core, RSS max ${(rssMaxKiB / 1024).toFixed(0)} MiB`);
await vm.flush();
const since = Math.floor(firstFull / 1000) - 3600;
for (const [db, byTime] of wire) {
  const windows = [...byTime.entries()].filter(([ms]) => full(ms)).map(([, m]) => m);
  const sum = new Map<string, Tally>();
  for (const byMeasurement of windows) {
    for (const [m, t] of byMeasurement) {
      const s = sum.get(m) ?? { records: 0, samples: 0, bytes: 0, series: new Set<string>() };
      sum.set(m, s);
      s.records += t.records, s.samples += t.samples, s.bytes += t.bytes;
      for (const key of t.series) s.series.add(key);
    }
  }
  const b = bodies.get(db)!;
  const seriesOf = (m: Map<string, Tally>) =>
    [...m.values()].reduce((n, t) => n + t.series.size, 0);
  line();
  line(`database ${db}, ${windows.length} whole windows; per minute (mean):`);
  const all = { records: 0, samples: 0, bytes: 0, series: 0 };
  for (const [m, t] of sum) {
    line(
      `  ${m}: ${perMinute(t.records)} records, ${perMinute(t.samples)} samples, ` +
        `${perMinute(t.bytes)} bytes of line protocol; ${t.series.size} series over the run`,
    );
    all.records += t.records, all.samples += t.samples, all.bytes += t.bytes;
    all.series += t.series.size;
  }
  line(
    `  all: ${perMinute(all.records)} records, ${perMinute(all.samples)} samples, ` +
      `${perMinute(all.bytes)} bytes; ${all.series} series over the run`,
  );
  const totalOf = (m: Map<string, Tally>, key: "records" | "bytes") =>
    [...m.values()].reduce((n, t) => n + t[key], 0);
  line(`  series a window: ${windows.map(seriesOf).join(", ")}`);
  line(`  records a window: ${windows.map((m) => totalOf(m, "records")).join(", ")}`);
  line(`  bytes a window: ${windows.map((m) => totalOf(m, "bytes")).join(", ")}`);
  line(
    `  requests over the whole run: ${b.requests}, ${b.plain} bytes of line protocol, ` +
      `${b.gzip} gzip: ratio ${(b.plain / b.gzip).toFixed(1)}`,
  );
  const stored = await vm.series(`{db="${db}"}`, since);
  line(`  VictoriaMetrics holds ${stored.length} series with db="${db}" (whole run)`);
}
const folded = /series_folded\{stage=(\w+_budget)\}=(\d+)/g;
line();
line(
  `counters: ${
    [...stderr.matchAll(folded)].map((m) => `series_folded{${m[1]}}=${m[2]}`).join(" ") ||
    "no series folded"
  }`,
);
for (const [ms, byTag] of [...tagValues].filter(([ms]) => full(ms))) {
  const most = [...byTag].sort((x, y) => y[1].size - x[1].size).slice(0, 5);
  line(
    `netflow tags with the most values in ebpf, window ${new Date(ms).toISOString()}: ` +
      most.map(([tag, values]) => `${tag} ${values.size}`).join(", "),
  );
}
const warnings = stderr.split("\n").filter((l) => l && !/^(summary|collecting with)/.test(l));
for (const w of warnings.slice(0, 20)) line(`collector: ${w}`);
const lost = [...stderr.matchAll(/(ring_lost|records_dropped[^=]*)\{[^}]*\}=([1-9]\d*)/g)];
line(`loss: ${lost.map((m) => m[0]).join(" ") || "none"}`);
if (workloadErr.trim()) {
  line(`workload stderr: ${workloadErr.trim().split("\n").slice(-3).join(" | ")}`);
}
console.log(out.join("\n"));

await proxy.shutdown();
await vm[Symbol.asyncDispose]();
await Deno.remove(pipeline).catch(() => {});

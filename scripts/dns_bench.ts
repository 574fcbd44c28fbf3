/**
 * How many DNS queries a second the `dns` probe keeps up with, losing none: a local dnsmasq
 * answers a python3 client that sends N queries as fast as it can (a window of outstanding
 * queries, each a new id), and the collector (only the `dns` probe, records to /dev/null)
 * must report exactly N requests, with `ring_lost` 0 and no timeouts.
 *
 *   deno run -A scripts/dns_bench.ts [--queries 50000] [--window 64] [--rate 10000]
 *
 * Run as root, with dnsmasq and python3 installed. Prints the query rate the client reached,
 * the requests the collector reported, its drops, and its CPU (% of one core) over the run.
 */
import { parseArgs } from "node:util";
import { ROOT, runTaskArgs, tempPipeline } from "../test/_run_command.ts";

const { values } = parseArgs({
  options: {
    queries: { type: "string", default: "50000" },
    window: { type: "string", default: "64" },
    rate: { type: "string", default: "0" }, // queries a second the client holds to; 0: flat out
  },
});
const queries = Number(values.queries), window = Number(values.window), rate = Number(values.rate);
const port = 5300 + Math.floor(Math.random() * 600);

// A client that keeps `window` queries in flight on one socket and counts the answers.
const CLIENT = `
import socket, struct, sys, time
n, window, port, rate = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(("127.0.0.1", port)); s.settimeout(2)
q = lambda i: struct.pack(">HHHHHH", i & 0xffff, 0x0100, 1, 0, 0, 0) + b"\\x05bench\\x04test\\x00\\x00\\x01\\x00\\x01"
sent = got = 0; start = time.time()
while got < n:
    while sent < n and sent - got < window:
        if rate and sent > rate * (time.time() - start):
            break
        s.send(q(sent)); sent += 1
    if rate and sent == got:
        time.sleep(0.0005); continue
    try:
        s.recv(512); got += 1
    except socket.timeout:
        break
print(got, time.time() - start)
`;

function cpuTicks(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks (100/s)
}

const dnsmasq = new Deno.Command("dnsmasq", {
  args: [
    "--no-daemon",
    "--no-resolv",
    "--no-hosts",
    `--port=${port}`,
    "--listen-address=127.0.0.1",
    "--bind-interfaces",
    "--user=root",
    "--pid-file=",
    "--address=/bench.test/127.0.0.7",
    "--cache-size=0",
    "--log-facility=/dev/null",
  ],
  stdout: "null",
  stderr: "null",
}).spawn();
const pipeline = tempPipeline(`version: 1
probes:
  dns: { type: dns, ports: [${port}], timeout: 2s }
outputs:
  sink: { type: stdout, inputs: [dns], format: json }
`);
const command = runTaskArgs();
const collector = new Deno.Command(Deno.execPath(), {
  args: [...command, "--pipeline", pipeline],
  cwd: ROOT,
  stdout: "null",
  stderr: "piped",
}).spawn();
let stderr = "";
const pump = (async () => {
  for await (const chunk of collector.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
})();
while (!stderr.includes("collecting with")) {
  if (stderr.includes("error")) throw new Error(stderr);
  await new Promise((r) => setTimeout(r, 50));
}
await new Promise((r) => setTimeout(r, 300));

const ticks0 = cpuTicks(collector.pid);
const out = await new Deno.Command("python3", {
  args: ["-c", CLIENT, String(queries), String(window), String(port), String(rate)],
  stdout: "piped",
}).output();
const [answered, seconds] = new TextDecoder().decode(out.stdout).trim().split(" ").map(Number);
await new Promise((r) => setTimeout(r, 3000)); // the collector drains; no timeouts pending
const ticks = cpuTicks(collector.pid) - ticks0;
collector.kill("SIGINT");
await collector.status;
await pump;
dnsmasq.kill("SIGTERM");
await dnsmasq.status;
await Deno.remove(pipeline).catch(() => {});

const counter = (name: string) =>
  Number(new RegExp(`${name}\\{stage=dns\\}=(\\d+)`).exec(stderr)?.[1] ?? NaN);
const reported = counter("records_out");
console.log(`queries answered by dnsmasq: ${answered} of ${queries} in ${seconds.toFixed(2)} s`);
console.log(`query rate: ${(answered / seconds).toFixed(0)} queries/s`);
console.log(
  `requests reported: ${reported} (ring_lost ${counter("ring_lost")}, ` +
    `malformed ${counter("malformed")}, unmatched ${counter("unmatched_responses")})`,
);
console.log(
  `collector CPU: ${
    (ticks / (seconds + 3)).toFixed(1)
  }% of one core over the run and the 3 s after`,
);

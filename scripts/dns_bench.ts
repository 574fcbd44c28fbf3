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
 * `deno task bench` measures the same client's rate with the collector off and on.
 */
import { parseArgs } from "node:util";
import { tempPipeline } from "../test/_run_command.ts";
import { freePort } from "../test/_server_process.ts";
import { sleep } from "./bench/child.ts";
import { Collector } from "./bench/collector.ts";
import { dnsQueries, startDnsmasq } from "./bench/dns.ts";
import { clockTicksPerSecond, cpuTicks } from "./bench/proc.ts";

const { values } = parseArgs({
  options: {
    queries: { type: "string", default: "50000" },
    window: { type: "string", default: "64" },
    rate: { type: "string", default: "0" }, // queries a second the client holds to; 0: flat out
  },
});
const queries = Number(values.queries), window = Number(values.window), rate = Number(values.rate);
const port = freePort();
const DRAIN_S = 3;

await using dnsmasq = await startDnsmasq(port);
await using collector = await Collector.start(tempPipeline(`version: 1
probes:
  dns: { type: dns, ports: [${port}], timeout: 2s }
outputs:
  sink: { type: stdout, inputs: [dns], format: json }
`));
await sleep(300);

const ticks0 = cpuTicks(collector.pid);
const { answered, seconds } = await dnsQueries({ port, queries, window, rate });
await sleep(DRAIN_S * 1000); // the collector drains; no timeouts pending
const cpuSeconds = (cpuTicks(collector.pid) - ticks0) / await clockTicksPerSecond();
const summary = await collector.stop();
await dnsmasq.stop("SIGTERM");

const counter = (name: string) => summary.get(name, "dns");
console.log(`queries answered by dnsmasq: ${answered} of ${queries} in ${seconds.toFixed(2)} s`);
console.log(`query rate: ${(answered / seconds).toFixed(0)} queries/s`);
console.log(
  `requests reported: ${counter("records_out")} (ring_lost ${counter("ring_lost")}, ` +
    `malformed ${counter("malformed")}, unmatched ${counter("unmatched_responses")})`,
);
console.log(
  `collector CPU: ${
    (cpuSeconds / (seconds + DRAIN_S) * 100).toFixed(1)
  }% of one core over the run and the ${DRAIN_S} s after`,
);

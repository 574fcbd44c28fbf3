/**
 * Figures for the `http` output against a real InfluxDB 1.6 (Debian's `influxd`, started here on
 * loopback): records a second sent, then an outage of --outage seconds while records keep
 * coming at --rate a second (spool write rate, process memory), then the drain when InfluxDB is
 * back (spool drain rate), and a check that every record arrived.
 *
 *   deno run -A scripts/http_bench.ts [--records 200000] [--outage 60] [--rate 5000]
 */
import { parseArgs } from "node:util";
import { httpOutput } from "../src/outputs/http.ts";
import { buildStage } from "../src/pipeline/testing.ts";
import type { Record } from "../src/record.ts";
import { startInfluxdb } from "../test/_influxdb.ts";

const { values } = parseArgs({
  options: {
    records: { type: "string", default: "200000" },
    outage: { type: "string", default: "60" },
    rate: { type: "string", default: "5000" },
  },
});
const total = Number(values.records), outageS = Number(values.outage), rate = Number(values.rate);
const T0 = 1_795_622_018_000_000_000n;
const flow = (i: number): Record => ({
  measurement: "netflow",
  tags: {
    host: "h",
    source: "netflow",
    dst_ip: `10.0.${(i >> 8) & 255}.${i & 255}`,
    dst_port: "443",
  },
  fields: { bytes_read: BigInt(i), bytes_written: 7n, rtt: 31n },
  time: T0 + BigInt(i),
});
const mib = () => (Deno.memoryUsage().rss / 2 ** 20).toFixed(0);

await using influx = await startInfluxdb();
await influx.createDatabase("bench");
const spool = await Deno.makeTempDir();
const options = {
  preset: "influxdb",
  url: influx.url,
  database: "bench",
  spool_dir: spool,
  max_backoff: "1s",
};
const out = await buildStage(httpOutput, options);
const sent = () => Number(out.counters.get("records_sent", { stage: "http" }));

// 1. Throughput to a live InfluxDB.
let start = performance.now();
for (let i = 0; i < total; i++) await out.stage.push(flow(i));
while (sent() < total) await new Promise((r) => setTimeout(r, 20));
let s = (performance.now() - start) / 1000;
console.log(
  `sent ${total} records to InfluxDB in ${s.toFixed(2)} s: ${(total / s).toFixed(0)} records/s`,
);

// 2. Outage: records keep coming at `rate`.
await influx.stop();
let n = total;
const rss: number[] = [];
start = performance.now();
while (performance.now() - start < outageS * 1000) {
  const due = total + Math.floor(((performance.now() - start) / 1000) * rate);
  while (n < due) await out.stage.push(flow(n++));
  rss.push(Deno.memoryUsage().rss);
  await new Promise((r) => setTimeout(r, 50));
}
s = (performance.now() - start) / 1000;
const spooled = out.counters.get("spooled_bytes", { stage: "http" });
console.log(
  `outage ${s.toFixed(0)} s at ${rate} records/s: ${n - total} records, ` +
    `${
      out.counters.get("spooled_batches", { stage: "http" })
    } batches / ${spooled} bytes spooled; ` +
    `RSS ${(Math.min(...rss) / 2 ** 20).toFixed(0)}-${(Math.max(...rss) / 2 ** 20).toFixed(0)} MiB`,
);

// 3. InfluxDB back: the spool drains.
const before = sent();
await influx.start();
start = performance.now();
while (sent() < n) await new Promise((r) => setTimeout(r, 20));
s = (performance.now() - start) / 1000;
console.log(
  `drained ${sent() - before} records in ${s.toFixed(2)} s after InfluxDB came back: ` +
    `${((sent() - before) / s).toFixed(0)} records/s; RSS now ${mib()} MiB`,
);
await out.stage.flush("shutdown");
await out.stage.close();
const [count] = (await influx.query(`SELECT COUNT(bytes_read) FROM netflow`, "bench")) as {
  series?: { values: [unknown, number][] }[];
}[];
console.log(`InfluxDB holds ${count.series?.[0].values[0][1]} points of ${n} sent`);
await Deno.remove(spool, { recursive: true });

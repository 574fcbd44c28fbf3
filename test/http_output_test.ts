/**
 * The `http` output against real receivers on loopback: InfluxDB 1.6.7 (Debian's), started by
 * the test; and, for what cannot run here (InfluxDB's v2 API, DataKit), a stand-in HTTP server
 * that checks exact paths, query strings, headers and bodies, and says so in the test name.
 */
import assert from "node:assert/strict";
import { Counters } from "../src/counters.ts";
import { ManualClock } from "../src/pipeline/clock.ts";
import { parsePipeline } from "../src/pipeline/load.ts";
import { startPipeline } from "../src/pipeline/run.ts";
import { buildStage } from "../src/pipeline/testing.ts";
import { httpOutput } from "../src/outputs/http.ts";
import { retryAfterMs } from "../src/outputs/http_sender.ts";
import { Spool } from "../src/outputs/spool.ts";
import type { Record } from "../src/record.ts";
import { influxTest, startInfluxdb } from "./_influxdb.ts";
import { blockingPipeline, startStandin } from "./_http_standin.ts";
import { explainedCommand, output as runToEnd, tempPipeline } from "./_run_command.ts";

const T0 = 1_795_622_018_000_000_000n;

const TRICKY = 'echo "a b",c=d \\ back\nslash héllo 世界 🎉';

function bash(i: number, cmd = `ls ${i}`): Record {
  return {
    measurement: "bash",
    tags: { host: "web 1,x=y", source: "bash" },
    fields: { cmd, pid: String(1000 + i), user: "root" },
    time: T0 + BigInt(i) * 1000n,
  };
}

function flow(i: number): Record {
  return {
    measurement: "netflow",
    tags: {
      host: "h",
      source: "netflow",
      dst_ip: "10.0.0.1",
      dst_port: String(i),
      transport: "tcp",
    },
    fields: { bytes_read: BigInt(i), bytes_written: 2n * BigInt(i), rtt: 31n },
    time: T0 + BigInt(i),
  };
}

async function output(options: { [key: string]: unknown }) {
  return await buildStage(httpOutput, { batch_age: "50ms", timeout: "2s", ...options });
}

Deno.test("http datakit preset (stand-in for DataKit): write paths, query strings, gzip, line protocol", async () => {
  await using standin = startStandin();
  const out = await output({ preset: "datakit", url: standin.url });
  await out.stage.push(bash(1, TRICKY));
  await out.stage.push(flow(7));
  await out.stage.push({ ...flow(8), measurement: "dnsflow" });
  await out.stage.push({ ...bash(2, "true"), measurement: "bash_activity" });
  await out.stage.flush("shutdown");
  await out.stage.close();

  const byPath = new Map(standin.requests.map((r) => [`${r.path}?${r.query}`, r]));
  assert.deepEqual([...byPath.keys()].sort(), [
    "/v1/write/logging?input=ebpf-bash&precision=ns",
    "/v1/write/network?input=ebpf-net%2Fdnsflow&precision=ns",
    "/v1/write/network?input=ebpf-net%2Fnetflow&precision=ns",
  ]);
  for (const r of standin.requests) {
    assert.equal(r.method, "POST");
    assert.equal(r.headers.get("content-encoding"), "gzip");
    assert.equal(r.headers.get("authorization"), null);
  }
  assert.equal(
    byPath.get("/v1/write/logging?input=ebpf-bash&precision=ns")!.body,
    // A newline in a string field goes as it is: InfluxDB and DataKit read it, and do not
    // unescape "\\n".
    'bash,host=web\\ 1\\,x\\=y,source=bash cmd="echo \\"a b\\",c=d \\\\ back\nslash héllo 世界 🎉",' +
      'pid="1001",user="root" 1795622018000001000\n' +
      // What the command did goes with the command, to DataKit's logging endpoint.
      'bash_activity,host=web\\ 1\\,x\\=y,source=bash cmd="true",pid="1002",user="root" ' +
      "1795622018000002000\n",
  );
  assert.equal(
    byPath.get("/v1/write/network?input=ebpf-net%2Fnetflow&precision=ns")!.body,
    "netflow,dst_ip=10.0.0.1,dst_port=7,host=h,source=netflow,transport=tcp " +
      "bytes_read=7i,bytes_written=14i,rtt=31i 1795622018000000007\n",
  );
  assert.equal(out.counters.get("records_sent", { stage: "http" }), 4n);
});

Deno.test("http influxdb_v2 preset (stand-in for InfluxDB 2, which cannot run here): path, org, bucket, token", async () => {
  await using standin = startStandin();
  const out = await output({
    preset: "influxdb_v2",
    url: standin.url,
    org: "my org",
    bucket: "ebpf",
    token: "s3cr3t",
    gzip: false,
  });
  for (let i = 0; i < 3; i++) await out.stage.push(flow(i));
  await out.stage.flush("shutdown");
  await out.stage.close();
  assert.equal(standin.requests.length, 1, "one batch");
  const r = standin.requests[0];
  assert.equal(r.path, "/api/v2/write");
  assert.equal(r.query.toString(), "org=my+org&bucket=ebpf&precision=ns");
  assert.equal(r.headers.get("authorization"), "Token s3cr3t");
  assert.equal(r.headers.get("content-encoding"), null);
  assert.equal(r.body.split("\n").filter(Boolean).length, 3);
  assert.ok(!out.logs.some((l) => l.includes("s3cr3t")), "the token is never logged");
});

Deno.test("http: a 400 drops the batch once, counted, no retries; the next batch goes", async () => {
  await using standin = startStandin((_req, n) =>
    n === 0 ? new Response("unable to parse", { status: 400 }) : new Response(null, { status: 204 })
  );
  const out = await output({ preset: "influxdb", url: standin.url, database: "db", batch_size: 2 });
  for (let i = 0; i < 4; i++) await out.stage.push(flow(i));
  await out.stage.flush("shutdown");
  await out.stage.close();
  assert.equal(standin.requests.length, 2, "no retry of the rejected batch");
  assert.equal(out.counters.get("records_dropped", { stage: "http", reason: "rejected" }), 2n);
  assert.equal(out.counters.get("records_sent", { stage: "http" }), 2n);
  assert.equal(out.counters.get("retries", { stage: "http" }), 0n);
  assert.ok(out.logs.some((l) => /rejected a batch of 2 records \(400\): unable to parse/.test(l)));
});

Deno.test("http: a 503 with Retry-After is retried after the time it asks for", async () => {
  await using standin = startStandin((_req, n) =>
    n === 0
      ? new Response("busy", { status: 503, headers: { "Retry-After": "1" } })
      : new Response(null, { status: 204 })
  );
  const out = await output({ preset: "influxdb", url: standin.url, database: "db" });
  await out.stage.push(flow(1));
  await standin.waitFor(2, 5000);
  await out.stage.flush("shutdown");
  await out.stage.close();
  const [first, second] = standin.requests;
  assert.ok(second.at - first.at >= 950, `retried after ${second.at - first.at} ms`);
  assert.equal(second.body, first.body);
  assert.equal(out.counters.get("retries", { stage: "http" }), 1n);
  assert.equal(out.counters.get("records_sent", { stage: "http" }), 1n);
});

Deno.test("http: Retry-After: 0 still waits the first backoff (100 ms) between retries", async () => {
  const started = Date.now();
  await using standin = startStandin(() =>
    Date.now() - started < 1000
      ? new Response("busy", { status: 503, headers: { "Retry-After": "0" } })
      : new Response(null, { status: 204 })
  );
  const out = await output({ preset: "influxdb", url: standin.url, database: "db" });
  await out.stage.push(flow(1));
  await new Promise((r) => setTimeout(r, 1000));
  // At most one try per 100 ms (it was thousands a second).
  assert.ok(standin.requests.length <= 12, `${standin.requests.length} requests in 1 s`);
  await out.stage.flush("shutdown");
  await out.stage.close();
  assert.equal(out.counters.get("records_sent", { stage: "http" }), 1n);
});

Deno.test("http: a Retry-After beyond max_backoff waits max_backoff", async () => {
  await using standin = startStandin((_req, n) =>
    n === 0
      ? new Response("busy", { status: 429, headers: { "Retry-After": "3000000" } })
      : new Response(null, { status: 204 })
  );
  const out = await output({
    preset: "influxdb",
    url: standin.url,
    database: "db",
    max_backoff: "300ms",
  });
  await out.stage.push(flow(1));
  await standin.waitFor(2, 3000); // not in 35 days
  const [first, second] = standin.requests;
  assert.ok(second.at - first.at >= 250, `retried after ${second.at - first.at} ms`);
  await out.stage.flush("shutdown");
  await out.stage.close();
  assert.equal(out.counters.get("records_sent", { stage: "http" }), 1n);
});

Deno.test("http: a Retry-After HTTP date is waited for", async () => {
  // Whole seconds: the date says "the start of the second after next".
  const at = new Date(Math.ceil((Date.now() + 1000) / 1000) * 1000);
  await using standin = startStandin((_req, n) =>
    n === 0
      ? new Response("busy", { status: 503, headers: { "Retry-After": at.toUTCString() } })
      : new Response(null, { status: 204 })
  );
  const out = await output({ preset: "influxdb", url: standin.url, database: "db" });
  await out.stage.push(flow(1));
  await standin.waitFor(2, 5000);
  const second = standin.requests[1];
  assert.ok(second.at >= at.getTime() - 50, `retried ${at.getTime() - second.at} ms early`);
  await out.stage.flush("shutdown");
  await out.stage.close();
});

Deno.test("retryAfterMs() reads seconds or an HTTP date, clamped between the first backoff and max_backoff", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(retryAfterMs("2", 30_000, now), 2000);
  assert.equal(retryAfterMs(" 0 ", 30_000, now), 100);
  assert.equal(retryAfterMs("3000000", 30_000, now), 30_000);
  assert.equal(retryAfterMs("Thu, 01 Jan 2026 00:00:05 GMT", 30_000, now), 5000);
  assert.equal(retryAfterMs("Wed, 31 Dec 2025 23:00:00 GMT", 30_000, now), 100, "a past date");
  assert.equal(retryAfterMs("Fri, 01 Jan 2027 00:00:00 GMT", 30_000, now), 30_000);
  for (const bad of [null, "", "soon", "-5", "1e3", "1.5"]) {
    assert.equal(retryAfterMs(bad, 30_000, now), undefined, `${bad}`);
  }
});

Deno.test("http spool: a batch the last run left cut short is skipped and counted; the others are sent", async () => {
  await using standin = startStandin();
  const dir = await Deno.makeTempDir();
  try {
    const path = "/write?db=db&precision=ns";
    const spool = Spool.open(dir, { maxBytes: 1 << 20 });
    for (const i of [1, 2, 3]) {
      spool.append(new TextEncoder().encode(`${path}\n1\nm v=${i}i ${i}\n`));
    }
    Deno.truncateSync(`${dir}/000000000002.lp`, 40); // a crash (or power loss) cut it
    Deno.writeTextFileSync(`${dir}/000000000004.lp`, ""); // and left this one empty
    const out = await output({
      preset: "influxdb",
      url: standin.url,
      database: "db",
      spool_dir: dir,
    });
    await standin.waitFor(2);
    await out.stage.flush("shutdown");
    await out.stage.close();
    assert.deepEqual(standin.requests.map((r) => r.body), ["m v=1i 1\n", "m v=3i 3\n"]);
    assert.equal(out.counters.get("spool_bad_batches", { stage: "http" }), 2n);
    assert.ok(
      out.logs.some((l) => /skipped batch 000000000002\.lp: cut short/.test(l)),
      out.logs.join("\n"),
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("http: what a receiver answers is logged on one line, its control characters escaped", async () => {
  await using standin = startStandin(() =>
    new Response("oops\nwarning: forged line\u001b[2J", { status: 400 })
  );
  const out = await output({ preset: "influxdb", url: standin.url, database: "db" });
  await out.stage.push(flow(1));
  await out.stage.flush("shutdown");
  await out.stage.close();
  const [line] = out.logs.filter((l) => l.includes("rejected a batch"));
  assert.match(line, /\(400\): oops\\nwarning: forged line\\u001b\[2J; dropped$/);
});

Deno.test("http: an error answer whose body stalls holds the sends only when it is logged", async () => {
  // Every answer is a 400 whose body says a few bytes and then nothing: reading it waits for
  // the timeout. Only the first is logged (once a minute), so only its body is worth reading.
  await using standin = startStandin(() =>
    new Response(
      new ReadableStream({ start: (c) => c.enqueue(new TextEncoder().encode("half an ans")) }),
      { status: 400 },
    )
  );
  const out = await output({
    preset: "influxdb",
    url: standin.url,
    database: "db",
    batch_size: 1,
    timeout: "1s",
  });
  for (let i = 0; i < 5; i++) await out.stage.push(flow(i));
  await standin.waitFor(5, 2500); // reading each body would take 5 s
  await out.stage.flush("shutdown");
  await out.stage.close();
  assert.equal(out.counters.get("records_dropped", { stage: "http", reason: "rejected" }), 5n);
  const logged = out.logs.filter((l) => l.includes("rejected a batch"));
  assert.equal(logged.length, 1);
  assert.match(logged[0], /\(400\): half an ans; dropped$/);
});

Deno.test("http: a receiver that is down or silent is logged with the reason, not fetch's wording", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close(); // nothing listens there now
  const down = await output({
    preset: "influxdb",
    url: `http://127.0.0.1:${port}`,
    database: "db",
  });
  await down.stage.push(flow(1));
  await new Promise((r) => setTimeout(r, 300));
  await down.stage.flush("shutdown");
  await down.stage.close();
  const [refused] = down.logs.filter((l) => l.includes("cannot send"));
  assert.match(refused, /: tcp connect error: Connection refused \(os error 111\); retrying$/);

  await using silent = startStandin(() => new Promise<Response>(() => {}));
  const slow = await output({
    preset: "influxdb",
    url: silent.url,
    database: "db",
    timeout: "200ms",
  });
  await slow.stage.push(flow(1));
  await silent.waitFor(1);
  await slow.stage.flush("shutdown");
  await slow.stage.close();
  const [timedOut] = slow.logs.filter((l) => l.includes("cannot send"));
  assert.match(timedOut, /: no answer within 200ms; retrying$/);
  for (const l of [...down.logs, ...slow.logs]) {
    assert.ok(!l.includes("run with --debug"), l);
  }
});

Deno.test("http when_full: block: a stop while the receiver is down ends within timeout and counts what was held", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close(); // nothing listens there now
  const pipeline = parsePipeline("block.yaml", blockingPipeline(`http://127.0.0.1:${port}`));
  const counters = new Counters();
  const logs: string[] = [];
  const log = { info: () => {}, warn: (m: string) => logs.push(m), debug: () => {} };
  const clock = new ManualClock(T0);
  const running = await startPipeline(pipeline, { host: "h", counters, log, clock }, {
    probes: "injected",
  });
  for (let i = 0; i < 10; i++) running.inject("bash", bash(i));
  assert.ok(running.busy, "the output pushes back: its memory holds 2 records");
  const started = Date.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stopped = await Promise.race([
    running.stop().then(() => true),
    new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), 5000)),
  ]);
  clearTimeout(timer);
  assert.ok(stopped, "stop() was still waiting for room after 5 s");
  const ms = Date.now() - started;
  assert.ok(ms < 1500, `stopped in ${ms} ms`);
  assert.equal(counters.get("records_dropped", { stage: "influx", reason: "shutdown" }), 10n);
  assert.ok(
    logs.some((l) => l === "influx: 10 records not sent at shutdown (no spool)"),
    logs.join("\n"),
  );
});

Deno.test("http drop_oldest under a stalled receiver keeps memory bounded and counts the drops", async () => {
  // A receiver that never answers: every request times out.
  await using standin = startStandin(() => new Promise<Response>(() => {}));
  const out = await output({
    preset: "influxdb",
    url: standin.url,
    database: "db",
    batch_size: 100,
    buffer_records: 1000,
    when_full: "drop_oldest",
    timeout: "300ms",
  });
  for (let i = 0; i < 20_000; i++) {
    const wait = out.stage.push(flow(i));
    assert.equal(wait, undefined, "drop_oldest never pushes back");
  }
  const dropped = Number(
    out.counters.get("records_dropped", { stage: "http", reason: "buffer_full" }),
  );
  // At most the buffer (and the batch in flight) is held: the rest was dropped, oldest first.
  assert.ok(dropped >= 20_000 - 1000 - 100, `${dropped} dropped`);
  await out.stage.flush("shutdown");
  await out.stage.close();
  assert.equal(out.counters.get("records_sent", { stage: "http" }), 0n);
});

influxTest(
  "http influxdb preset: every point, tag and field reads back equal from InfluxDB 1.6",
  async () => {
    await using influx = await startInfluxdb();
    await influx.createDatabase("ebpf");
    const out = await output({
      preset: "influxdb",
      url: influx.url,
      database: "ebpf",
      batch_size: 500,
    });
    const records = [bash(0, TRICKY), ...Array.from({ length: 1999 }, (_, i) => flow(i + 1))];
    for (const r of records) await out.stage.push(r);
    await out.stage.flush("shutdown");
    await out.stage.close();

    const rows = await influx.select("ebpf", "netflow");
    assert.equal(rows.length, 1999);
    const r7 = rows.find((r) => r.dst_port === "7")!;
    assert.deepEqual(
      { ...r7 },
      {
        time: T0 + 7n,
        bytes_read: 7,
        bytes_written: 14,
        dst_ip: "10.0.0.1",
        dst_port: "7",
        host: "h",
        rtt: 31,
        source: "netflow",
        transport: "tcp",
      },
    );
    const [cmd] = await influx.select("ebpf", "bash");
    assert.equal(cmd.cmd, TRICKY);
    assert.equal(cmd.host, "web 1,x=y");
    assert.equal(cmd.time, T0);
    assert.equal(out.counters.get("records_sent", { stage: "http" }), 2000n);
  },
);

influxTest(
  "http spool: InfluxDB down while records keep coming, then back: every record arrives",
  async () => {
    await using influx = await startInfluxdb();
    await influx.createDatabase("ebpf");
    const spool = await Deno.makeTempDir();
    try {
      const options = {
        preset: "influxdb",
        url: influx.url,
        database: "ebpf",
        batch_size: 100,
        buffer_records: 500,
        spool_dir: spool,
        max_backoff: "200ms",
      };
      let out = await output(options);
      let n = 0;
      const pushFor = async (ms: number) => {
        const end = Date.now() + ms;
        while (Date.now() < end) {
          await out.stage.push(flow(n++));
          if (n % 10 === 0) await new Promise((r) => setTimeout(r, 10)); // ~1,000 records/s
        }
      };
      await pushFor(300);
      await influx.stop();
      await pushFor(Number(Deno.env.get("HTTP_OUTAGE_MS") ?? 10_000)); // 60000 by hand
      // The collector is killed during the outage: no flush, a new one on the same spool.
      await out.stage.close();
      const spooled = Number(out.counters.get("spooled_batches", { stage: "http" }));
      assert.ok(spooled > 0, "batches were spooled during the outage");
      out = await output(options);
      await pushFor(300);
      await influx.start();
      await pushFor(300);
      await out.stage.flush("shutdown");
      await out.stage.close();

      // Each record is its own point (its own dst_port tag and time), so the count is exact.
      const [result] = (await influx.query("SELECT COUNT(bytes_read) FROM netflow", "ebpf")) as {
        series: { values: [unknown, number][] }[];
      }[];
      const arrived = result.series[0].values[0][1];
      // What the killed collector still held in memory and open batches is lost with it (at
      // most buffer_records + a batch); everything it had spooled, and all the rest, arrives.
      assert.ok(arrived >= n - 600 && arrived <= n, `${arrived} of ${n} records arrived`);
      assert.equal(out.counters.get("spooled_batches", { stage: "http" }), 0n, "the spool drained");
      assert.deepEqual([...Deno.readDirSync(spool)].length, 0);
    } finally {
      await Deno.remove(spool, { recursive: true });
    }
  },
);

influxTest(
  "--replay through the deno run command --explain prints delivers every record to InfluxDB",
  async () => {
    await using influx = await startInfluxdb();
    await influx.createDatabase("ebpf");
    const recording = tempPipeline(
      Array.from(
        { length: 300 },
        (_, i) =>
          `{"probe":"bash","measurement":"bash","tags":{"host":"h","source":"bash"},` +
          `"fields":{"cmd":"cmd ${i}","pid":"${i}","user":"root"},"time":${T0 + BigInt(i)}}`,
      ).join("\n") + "\n",
    );
    const pipeline = tempPipeline(`version: 1
probes:
  bash: { type: bash }
outputs:
  influx:
    type: http
    inputs: [bash]
    preset: influxdb
    url: ${influx.url}
    database: ebpf
`);
    // The command --explain prints for this replay, with its permissions: the network only to
    // InfluxDB's port, reading only the pipeline and the recording.
    const command = await explainedCommand(pipeline, ["--replay", recording]);
    assert.ok(command.includes(`--allow-net=127.0.0.1:${influx.port}`), command.join(" "));
    assert.ok(!command.includes("--allow-ffi"), "a replay loads no probe");
    const run = await runToEnd(Deno.execPath(), command.slice(1));
    assert.equal(run.code, 0, run.stderr);
    const rows = await influx.select("ebpf", "bash");
    assert.equal(rows.length, 300);
    assert.equal(rows[299].cmd, "cmd 299");
  },
);

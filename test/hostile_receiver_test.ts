/**
 * Receivers that answer with a body of 1 GB, against the real collector process (`deno task
 * run`'s command line, with `--allow-net` to the receiver only). The receiver is a server this
 * test starts on loopback; its bodies are streamed as the collector reads them, never built in
 * memory, so how much the collector read shows as how much the server produced. No kernel: the
 * only probe is `collector`, which reports on the process itself every 100 ms.
 */
import assert from "node:assert/strict";
import { Collector, tempPipeline } from "./kernel/_collector.ts";

const GIB = 1 << 30;
const MIB = 1 << 20;
/** The collector's peak RSS (VmHWM) must stay under this; reading one answer whole took 1.13 GB. */
const RSS_BOUND_MIB = 150; // measured: 62 MiB

/** A server whose every answer to the collector has a 1 GB body (`gzip`: a gzip bomb of it). */
function startHostileReceiver() {
  const requests: { path: string; db: string | null; body: string }[] = [];
  /** Body bytes each answer put on the wire (compressed, for the bomb). */
  const sent: number[] = [];
  const huge = () => {
    let made = 0;
    return new ReadableStream<Uint8Array<ArrayBuffer>>({
      pull(controller) {
        if (made >= GIB) return controller.close();
        made += 64 * 1024;
        controller.enqueue(new Uint8Array(64 * 1024).fill(0x61)); // "aaa...": no JSON, no text
      },
    }, { highWaterMark: 0 });
  };
  /** Counts what the server sends of `body` into `sent[index]`. */
  const counted = (body: ReadableStream<Uint8Array<ArrayBuffer>>) => {
    const index = sent.push(0) - 1;
    return body.pipeThrough(
      new TransformStream<Uint8Array<ArrayBuffer>, Uint8Array<ArrayBuffer>>(
        {
          transform(chunk, controller) {
            sent[index] += chunk.length;
            controller.enqueue(chunk);
          },
        },
        undefined,
        { highWaterMark: 0 },
      ),
    );
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const body = await req.text(); // gzip: false below, so comparable
    requests.push({ path: url.pathname, db: url.searchParams.get("db"), body });
    const headers = { "Content-Type": "text/plain" };
    if (url.pathname.startsWith("/gzip/")) {
      const bomb = huge().pipeThrough(new CompressionStream("gzip")) as ReadableStream<
        Uint8Array<ArrayBuffer>
      >;
      return new Response(counted(bomb), {
        status: 200,
        headers: { ...headers, "Content-Encoding": "gzip" },
      });
    }
    const status = url.pathname.startsWith("/plain/")
      ? 200
      : url.searchParams.get("db") === "rejecting"
      ? 400
      : 500;
    return new Response(counted(huge()), { status, headers });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    port: server.addr.port,
    requests,
    sent,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** The peak resident set of `pid` in MiB, from /proc/<pid>/status. */
function peakRssMib(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)![1]) / 1024;
}

Deno.test("1 GB answers from a receiver: at most a few KiB read, 4xx dropped, 5xx retried, 2xx bodies skipped; RSS bounded", async () => {
  await using receiver = startHostileReceiver();
  const pipeline = tempPipeline(`version: 1
probes:
  self: { type: collector, every: 100ms }
outputs:
  rejecting:
    { type: http, inputs: [self], preset: influxdb, url: "${receiver.url}", database: rejecting,
      gzip: false, batch_age: 100ms }
  failing:
    { type: http, inputs: [self], preset: influxdb, url: "${receiver.url}", database: failing,
      gzip: false, max_backoff: 200ms, timeout: 2s, when_full: drop_oldest }
  otel: { type: otlp, inputs: [self], url: "${receiver.url}/plain", gzip: false, batch_age: 100ms }
  bomb: { type: otlp, inputs: [self], url: "${receiver.url}/gzip", gzip: false, batch_age: 100ms }
`);
  await using collector = new Collector(["--pipeline", pipeline], [
    `--allow-net=127.0.0.1:${receiver.port}`,
  ]);
  await collector.attached();
  const of = (predicate: (r: { path: string; db: string | null }) => boolean) =>
    receiver.requests.filter(predicate);
  await collector.waitFor(
    "answers to every output",
    () =>
      of((r) => r.db === "rejecting").length >= 3 && of((r) => r.db === "failing").length >= 3 &&
      of((r) => r.path === "/plain/v1/metrics").length >= 3 &&
      of((r) => r.path === "/gzip/v1/metrics").length >= 3,
    20_000,
  );
  const peak = peakRssMib(collector.pid);
  const status = await collector.stop("SIGINT");
  assert.equal(status.code, 0, collector.stderr);
  assert.ok(!collector.stderr.includes("    at "), "no stack trace");

  assert.ok(peak < RSS_BOUND_MIB, `the collector's peak RSS was ${peak.toFixed(0)} MiB`);
  // Each answer was cut short: what the server sent is what filled the socket buffers.
  const most = Math.max(...receiver.sent);
  assert.ok(most < 64 * MIB, `an answer was read to ${(most / MIB).toFixed(0)} MiB`);

  // 400: each batch once (dropped, counted), never retried.
  const rejected = of((r) => r.db === "rejecting").map((r) => (r as { body: string }).body);
  assert.equal(new Set(rejected).size, rejected.length, "a rejected batch was sent again");
  assert.match(
    collector.stderr,
    /summary: .*records_dropped\{reason=rejected,stage=rejecting\}=\d+/,
  );
  assert.match(collector.stderr, /rejecting: .* rejected a batch of \d+ records \(400\): a{10}/);
  // 500: retried, the same batch again.
  const failing = of((r) => r.db === "failing").map((r) => (r as { body: string }).body);
  assert.equal(failing[1], failing[0], "a 500 is retried with the same batch");
  assert.match(collector.stderr, /summary: .*retries\{stage=failing\}=\d+/);
  // 2xx with a huge body: sent, the body not read (plain) or read a little (gzip bomb).
  assert.match(collector.stderr, /summary: .*records_sent\{stage=otel\}=\d+/);
  assert.match(collector.stderr, /summary: .*records_sent\{stage=bomb\}=\d+/);
});

/**
 * The test receivers themselves: a throwaway InfluxDB 1.6 (test/_influxdb.ts) and the HTTP
 * stand-in for DataKit / InfluxDB 2 (test/_http_standin.ts), checked with plain fetch so the
 * `http` output's tests can trust them.
 */
import assert from "node:assert/strict";
import { influxTest, startInfluxdb } from "./_influxdb.ts";
import { startStandin } from "./_http_standin.ts";

const T0 = 1_795_622_018_000_000_007n; // needs all 64 bits: a Number would round it
const TRICKY = 'echo "a b",c=d \\ back\nslash héllo 世界 🎉';

/** A line-protocol string field value: only `"` and `\` are escaped. */
function stringField(s: string): string {
  return `"${s.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

async function write(url: string, db: string, body: string): Promise<void> {
  const res = await fetch(`${url}/write?db=${db}&precision=ns`, { method: "POST", body });
  assert.equal(res.status, 204, await res.text());
}

const POINT = `bash,host=web\\ 1\\,x\\=y,source=bash cmd=${stringField(TRICKY)},pid=42i,` +
  `big=9223372036854775807i,ratio=0.5,whole=2.0,ok=true ${T0}`;

const ROW = {
  time: T0,
  host: "web 1,x=y",
  source: "bash",
  cmd: TRICKY,
  pid: 42,
  big: 9223372036854775807n, // beyond 2^53: kept exact as a bigint
  ratio: 0.5,
  whole: 2, // InfluxDB's JSON writes the float 2.0 as 2
  ok: true,
};

influxTest("startInfluxdb() reads back a point with a tricky string field exactly", async () => {
  await using influx = await startInfluxdb();
  assert.equal(influx.url, `http://127.0.0.1:${influx.port}`);
  await influx.createDatabase("harness");
  await write(influx.url, "harness", POINT);
  assert.deepEqual(await influx.select("harness", "bash"), [ROW]);
  assert.deepEqual(await influx.select("harness", "nothing_here"), []);
  const [show] = await influx.query("SHOW MEASUREMENTS", "harness") as {
    series: { values: string[][] }[];
  }[];
  assert.deepEqual(show.series[0].values, [["bash"]]);
});

influxTest("startInfluxdb() query() throws with InfluxDB's error body", async () => {
  await using influx = await startInfluxdb();
  await assert.rejects(() => influx.select("missing", "bash"), /database not found: missing/);
  await assert.rejects(() => influx.query("SELEKT 1"), /error parsing query/);
});

influxTest("startInfluxdb() stop() and start() keep the data and the port", async () => {
  await using influx = await startInfluxdb();
  await influx.createDatabase("harness");
  await write(influx.url, "harness", POINT);
  await influx.stop();
  await assert.rejects(() => fetch(`${influx.url}/ping`), "nothing listens while stopped");
  await influx.start();
  assert.deepEqual(await influx.select("harness", "bash"), [ROW]);
  await write(influx.url, "harness", `bash,host=h cmd="after" ${T0 + 1n}`);
  assert.equal((await influx.select("harness", "bash")).length, 2);
});

influxTest("startInfluxdb() disposing deletes its temp dir", async () => {
  let dir = "";
  {
    await using influx = await startInfluxdb();
    dir = influx.dir;
    assert.ok(Deno.statSync(`${dir}/influxdb.conf`).isFile);
  }
  assert.throws(() => Deno.statSync(dir), Deno.errors.NotFound);
});

Deno.test("startStandin() captures method, path, query, headers and a gzip body exactly", async () => {
  await using standin = startStandin();
  const body = `${TRICKY}\n`.repeat(3);
  const gzipped = await new Response(
    new Blob([body]).stream().pipeThrough(new CompressionStream("gzip")),
  ).bytes();
  const res = await fetch(`${standin.url}/v1/write/logging?input=ebpf-bash&precision=ns`, {
    method: "POST",
    headers: {
      "Content-Encoding": "gzip",
      "Content-Type": "text/plain; charset=utf-8",
      "Authorization": "Token s3cr3t",
      "X-Custom": "a, b",
    },
    body: gzipped,
  });
  assert.equal(res.status, 204);
  await res.body?.cancel();
  await fetch(`${standin.url}/plain`, { method: "PUT", body: "not gzipped" }).then((r) =>
    r.body?.cancel()
  );

  assert.equal(standin.requests.length, 2);
  const [r, plain] = standin.requests;
  assert.equal(r.method, "POST");
  assert.equal(r.path, "/v1/write/logging");
  assert.equal(r.query.toString(), "input=ebpf-bash&precision=ns");
  assert.equal(r.headers.get("content-encoding"), "gzip");
  assert.equal(r.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.equal(r.headers.get("authorization"), "Token s3cr3t");
  assert.equal(r.headers.get("x-custom"), "a, b");
  assert.equal(r.headers.get("content-length"), String(gzipped.length));
  assert.equal(r.body, body);
  assert.ok(r.at <= Date.now());
  assert.equal(plain.method, "PUT");
  assert.equal(plain.body, "not gzipped");
});

Deno.test("startStandin() answers what respond() returns: a 503 with Retry-After, then 204", async () => {
  await using standin = startStandin((req, n) =>
    n === 0
      ? new Response(`busy: ${req.body}`, { status: 503, headers: { "Retry-After": "1" } })
      : new Response(null, { status: 204 })
  );
  const first = await fetch(`${standin.url}/write`, { method: "POST", body: "x" });
  assert.equal(first.status, 503);
  assert.equal(first.headers.get("retry-after"), "1");
  assert.equal(await first.text(), "busy: x");
  const second = await fetch(`${standin.url}/write`, { method: "POST", body: "x" });
  assert.equal(second.status, 204);
  await second.body?.cancel();
  await standin.waitFor(2, 100);
  await assert.rejects(() => standin.waitFor(3, 50), /got 2 of 3 requests/);
});

Deno.test("startStandin() disposes while respond() never answers (a stalled receiver)", async () => {
  const standin = startStandin(() => new Promise<Response>(() => {}));
  const pending = fetch(`${standin.url}/write`, { method: "POST", body: "x" });
  await standin.waitFor(1);
  await standin[Symbol.asyncDispose]();
  const res = await pending;
  assert.equal(res.status, 503);
  await res.body?.cancel();
});

Deno.test("startStandin() makes dispose throw when respond() threw", async () => {
  const standin = startStandin(() => {
    throw new Error("bug in the test");
  });
  const res = await fetch(standin.url, { method: "POST", body: "x" });
  assert.equal(res.status, 500);
  await res.body?.cancel();
  await assert.rejects(
    async () => await standin[Symbol.asyncDispose](),
    /respond\(\) threw: Error: bug/,
  );
});

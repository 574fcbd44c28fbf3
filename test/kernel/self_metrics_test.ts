/**
 * The fault test of the collector's self-metrics: every map, ring and queue is shrunk until it
 * overflows, and each drop counter is seen moving in the `ebpf_collector` records the collector
 * probe emits (every second), with its warning on stderr, rate limited. A full map shows
 * `map_fill_<map>` = 1.
 *
 * - Kernel maps and rings (one run): netflow with 16 UDP flows (`flows_full`) and 16 closed
 *   flows (`closes_via_ring`: the ring takes the rest), 4 KiB rings while the collector is
 *   frozen with SIGSTOP (`ring_lost` for netflow and dns), and dns with 4 pending queries (the
 *   rest go to user space, `pending_full`, whose 4 drop the oldest: `pending_dropped`).
 * - Output queues (one run): 12,000 netflow records at once (one UDP flow per destination port)
 *   into three http outputs with 100-record buffers: one facing a stalled receiver that pushes
 *   back (the runtime's 10,000-record queue fills: `records_dropped_queue_full`), one that drops
 *   (`records_dropped_buffer_full`), one facing a receiver that is down, with a 64 KiB spool
 *   (`spool_dropped_batches`).
 *
 * Not provoked here: `read_failed` and `decode_errors` (the kernel programs write whole records
 * and read only memory that is there); their warnings are covered by loss_watch_test.ts.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { ROOT } from "../_run_command.ts";
import { startStandin } from "../_http_standin.ts";
import { freePort } from "../_server_process.ts";
import { Collector, tempPipeline } from "./_collector.ts";
import { kernelTest } from "./_kernel.ts";

type Row = ReturnType<Collector["records"]>[number];

/** The collector's reports for `stage`, oldest first. */
function reports(rows: Row[], stage: string): Row[] {
  return rows.filter((r) => r.measurement === "ebpf_collector" && r.tags.stage === stage);
}

/** The highest value `field` reached in `stage`'s reports (0 if never reported). */
function highest(rows: Row[], stage: string, field: string): number {
  return Math.max(0, ...reports(rows, stage).map((r) => Number(r.fields[field] ?? 0)));
}

/** Prints what the reports showed, for the closing note (SELF_METRICS_FIGURES=1). */
function figures(rows: Row[], stage: string, fields: string[]): void {
  if (!Deno.env.get("SELF_METRICS_FIGURES")) return;
  console.error(
    `FIGURE ${stage}: ${fields.map((f) => `${f}=${highest(rows, stage, f)}`).join(" ")}`,
  );
}

/** Prints the warning lines (SELF_METRICS_FIGURES=1). */
function figureWarnings(stderr: string): void {
  if (!Deno.env.get("SELF_METRICS_FIGURES")) return;
  for (const l of stderr.split("\n")) if (l.startsWith("warning: ")) console.error(`WARNING ${l}`);
}

/** Warning lines on stderr that start with `prefix` and contain `text`. */
function warnings(stderr: string, prefix: string, text: string): string[] {
  return stderr.split("\n").filter((l) => l.startsWith(`warning: ${prefix}`) && l.includes(text));
}

/** A DNS query for a.test with message id `id` (the tracker keys queries by it). */
function dnsQuery(id: number): Uint8Array {
  return new Uint8Array([
    id >> 8,
    id & 0xff,
    0x01,
    0x00,
    0,
    1,
    0,
    0,
    0,
    0,
    0,
    0, // header: RD, one question
    1,
    0x61,
    4,
    0x74,
    0x65,
    0x73,
    0x74,
    0, // a.test
    0,
    1,
    0,
    1, // A, IN
  ]);
}

async function sendAll(socket: dgram.Socket, port: number, messages: Uint8Array[]) {
  for (const m of messages) {
    await new Promise<void>((r) => socket.send(m, port, "127.0.0.1", () => r()));
  }
}

kernelTest(
  "self-metrics: full kernel maps and overflowing rings move each drop counter, fill reaches 1",
  { objects: ["netflow", "dns"] },
  async () => {
    const dnsPort = freePort(); // nobody answers: queries stay pending
    await using collector = new Collector([
      "--pipeline",
      tempPipeline(`version: 1
probes:
  flows:
    type: netflow
    poll: 1s
    max_closed_flows: 16
    max_udp_flows: 16
    ring_buffer_size: 4KiB
  dns:
    type: dns
    ports: [${dnsPort}]
    timeout: 30s
    max_pending: 4
    ring_buffer_size: 4KiB
  self:
    type: collector
    every: 1s
outputs:
  out: { type: stdout, inputs: [self, flows, dns], format: json }
`),
    ]);
    await collector.attached();
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const tcpPort = (listener.addr as Deno.NetAddr).port;
    const accepted: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const c of listener) accepted.push(c);
    })();
    const client = dgram.createSocket("udp4");
    const senders: dgram.Socket[] = [];
    const conns: Deno.Conn[] = [];
    try {
      // Maps: 40 connections closing (80 closed flows: no port folded here) for 16 slots, 40
      // UDP flows for 16, 10 queries for 4.
      for (let i = 0; i < 40; i++) {
        (await Deno.connect({ hostname: "127.0.0.1", port: tcpPort })).close();
      }
      for (let i = 0; i < 40; i++) {
        const s = dgram.createSocket("udp4");
        senders.push(s);
        await sendAll(s, tcpPort, [new Uint8Array(8)]);
      }
      await sendAll(client, dnsPort, Array.from({ length: 10 }, (_, i) => dnsQuery(i + 1)));
      await collector.waitFor("a report of full maps", () => {
        const rows = collector.records();
        return highest(rows, "flows", "map_fill_udp_flows") === 1 &&
          highest(rows, "flows", "map_fill_closed_flows") === 1 &&
          highest(rows, "dns", "map_fill_pending") === 1;
      }, 15_000);

      // Rings: the reader frozen while 150 connections close (300 close records, 36 fit in
      // 4 KiB) and 100 DNS queries go out (about 30 fit).
      collector.signal("SIGSTOP");
      try {
        for (let i = 0; i < 150; i++) {
          const c = await Deno.connect({ hostname: "127.0.0.1", port: tcpPort });
          c.close();
        }
        await sendAll(client, dnsPort, Array.from({ length: 100 }, (_, i) => dnsQuery(100 + i)));
        await new Promise((r) => setTimeout(r, 200));
      } finally {
        collector.signal("SIGCONT");
      }
      await collector.waitFor("a report of both rings' losses", () => {
        const rows = collector.records();
        return highest(rows, "flows", "ring_lost") > 0 && highest(rows, "dns", "ring_lost") > 0;
      }, 15_000);
    } finally {
      for (const c of [...conns, ...accepted]) c.close();
      for (const s of [...senders, client]) s.close();
      listener.close();
      await accepting.catch(() => {});
    }
    const status = await collector.stop("SIGINT");
    assert.equal(status.code, 0, collector.stderr);

    const rows = collector.records();
    figures(rows, "flows", [
      "closes_via_ring",
      "flows_full",
      "ring_lost",
      "map_entries_closed_flows",
      "map_capacity_closed_flows",
      "map_fill_closed_flows",
      "map_entries_udp_flows",
      "map_capacity_udp_flows",
      "map_fill_udp_flows",
    ]);
    figures(rows, "dns", [
      "pending_dropped",
      "ring_lost",
      "map_entries_pending",
      "map_capacity_pending",
      "map_fill_pending",
    ]);
    figures(rows, "_process", ["cpu_percent", "rss_bytes"]);
    figureWarnings(collector.stderr);
    for (const field of ["closes_via_ring", "flows_full", "ring_lost"]) {
      assert.ok(highest(rows, "flows", field) > 0, `flows ${field} moved`);
    }
    assert.equal(highest(rows, "flows", "map_capacity_closed_flows"), 16);
    assert.equal(highest(rows, "flows", "map_capacity_udp_flows"), 16);
    // 10 queries, 4 kept, then the ones the frozen ring held: all beyond 4 dropped oldest first.
    assert.ok(highest(rows, "dns", "pending_dropped") >= 6, "dns pending_dropped moved");
    assert.ok(highest(rows, "dns", "ring_lost") > 0, "dns ring_lost moved");
    assert.equal(highest(rows, "dns", "map_capacity_pending"), 4);
    const own = reports(rows, "_process");
    assert.ok(own.length >= 2, "a _process record every second");
    assert.ok(own.every((r) => typeof r.fields.cpu_percent === "number"), "cpu_percent, a float");

    // One warning per stage and kind, the count in it; not one per lost event.
    const err = collector.stderr;
    assert.ok(warnings(err, "flows: ", "events lost (UDP flow map full").length >= 1, err);
    assert.ok(warnings(err, "flows: ", "events lost (ring buffer full").length >= 1, err);
    assert.ok(warnings(err, "dns: ", "events lost (ring buffer full").length >= 1, err);
    assert.ok(warnings(err, "dns: ", "DNS queries dropped unanswered").length >= 1, err);
    const ringLines = warnings(err, "flows: ", "events lost (ring buffer full");
    assert.ok(ringLines.length <= 3, `rate limited: ${ringLines.join("\n")}`);
  },
);

kernelTest(
  "self-metrics: outputs that cannot keep up move queue_full, buffer_full and spool drops",
  { objects: ["netflow"] },
  async () => {
    // A receiver that holds every request until released: the http outputs fall behind.
    const { promise: released, resolve: release } = Promise.withResolvers<void>();
    await using stalled = startStandin(async () => {
      await released;
      return new Response(null, { status: 204 });
    });
    const down = `http://127.0.0.1:${freePort()}`; // nothing listens: refused at once
    const spool = Deno.makeTempDirSync({ dir: `${ROOT}build/tmp`, prefix: "spool-" });
    const sender = (url: string, extra: string) => `
    type: http
    inputs: [flows]
    preset: influxdb
    database: x
    url: ${url}
    batch_size: 100
    buffer_records: 100
    timeout: 2s
    max_backoff: 500ms${extra}`;
    const pipeline = tempPipeline(`version: 1
probes:
  flows: { type: netflow, poll: 1s }
  self: { type: collector, every: 1s }
outputs:
  out: { type: stdout, inputs: [self], format: json }
  blocked:${sender(stalled.url, "")}
  dropping:${sender(stalled.url, "\n    when_full: drop_newest")}
  spooling:${sender(down, `\n    spool_dir: ${spool}\n    spool_max_size: 64KiB`)}
`);
    const started = Date.now();
    await using collector = await Collector.explained(pipeline);
    const client = dgram.createSocket("udp4");
    try {
      // 12,000 flows, one per destination port: 12,000 netflow records at the next poll.
      const burst = Array.from({ length: 12_000 }, (_, i) => 20_000 + i);
      for (const port of burst) {
        await new Promise<void>((r) =>
          client.send(new Uint8Array(1), port, "127.0.0.1", () => r())
        );
      }
      await collector.waitFor("reports of each output's drops", () => {
        const rows = collector.records();
        return highest(rows, "blocked", "records_dropped_queue_full") > 0 &&
          highest(rows, "dropping", "records_dropped_buffer_full") > 0 &&
          highest(rows, "spooling", "spool_dropped_batches") > 0;
      }, 20_000);
    } finally {
      client.close();
      release(); // the receiver answers again: the blocked output drains before the stop
    }
    const status = await collector.stop("SIGINT");
    const seconds = (Date.now() - started) / 1000;
    assert.equal(status.code, 0, collector.stderr);
    Deno.removeSync(spool, { recursive: true });

    const rows = collector.records();
    figures(rows, "blocked", [
      "records_dropped_queue_full",
      "queue_length",
      "buffered_records",
      "buffered_batches",
    ]);
    figures(rows, "dropping", ["records_dropped_buffer_full", "buffered_records", "queue_length"]);
    figures(rows, "spooling", [
      "spool_dropped_batches",
      "spool_dropped_bytes",
      "spooled_batches",
      "spooled_bytes",
    ]);
    figureWarnings(collector.stderr);
    assert.equal(highest(rows, "blocked", "queue_length"), 10_000, "the runtime's queue filled");
    assert.ok(highest(rows, "blocked", "buffered_records") > 0);
    assert.ok(highest(rows, "dropping", "buffered_records") <= 100, "memory stays bounded");
    assert.ok(highest(rows, "spooling", "spooled_batches") > 0);
    assert.ok(highest(rows, "spooling", "spooled_bytes") <= 64 * 1024, "the spool stays bounded");

    const err = collector.stderr;
    const kinds = [
      warnings(err, "blocked: ", "records dropped (queue_full"),
      warnings(err, "dropping: ", "records dropped (buffer_full"),
      warnings(err, "spooling: ", "spooled batches dropped"),
    ];
    for (const lines of kinds) {
      assert.ok(lines.length >= 1, err);
      // At most once per 10 s, plus the last look at stop: not one line per lost record.
      assert.ok(lines.length <= Math.floor(seconds / 10) + 2, lines.join("\n"));
    }
  },
);

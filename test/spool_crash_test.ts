/**
 * The http output's spool across a crash of the real collector process: SIGKILL in the middle
 * of an outage (nothing listens on the receiver's port), then a new collector on the same spool
 * once the receiver is back. The receiver is the http stand-in (test/_http_standin.ts), which
 * records every request exactly, so a batch sent twice shows. No kernel: the only probe is
 * `collector`, which reports on the process itself every 100 ms.
 */
import assert from "node:assert/strict";
import { HEADER_BYTES } from "../src/outputs/spool.ts";
import { startStandin } from "./_http_standin.ts";
import { ROOT } from "./_run_command.ts";
import { freePort } from "./_server_process.ts";
import { Collector, tempPipeline } from "./kernel/_collector.ts";

/** The bodies of the batches in `dir`, oldest first, as the receiver will get them. */
function spooledBodies(dir: string): string[] {
  const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => /^\d+\.lp$/.test(n));
  return names.sort().map((name) => {
    // The spool's header line, then the output's: its path, its record count, then the body.
    const text = new TextDecoder().decode(
      Deno.readFileSync(`${dir}/${name}`).subarray(HEADER_BYTES),
    );
    return text.split("\n").slice(2).join("\n");
  });
}

Deno.test("SIGKILL mid-outage, then a restart on the same spool: every spooled batch arrives once, oldest first", async () => {
  const port = freePort(); // nothing listens there yet: the receiver is down
  const spool = Deno.makeTempDirSync({ dir: `${ROOT}build/tmp`, prefix: "spool-" });
  try {
    const pipeline = tempPipeline(`version: 1
probes:
  self: { type: collector, every: 100ms }
outputs:
  influx:
    type: http
    inputs: [self]
    preset: influxdb
    url: http://127.0.0.1:${port}
    database: ebpf
    batch_age: 100ms
    max_backoff: 200ms
    spool_dir: "${spool}"
`);
    const flags = [`--allow-net=127.0.0.1:${port}`, `--allow-write=${spool}`];
    {
      await using first = new Collector(["--pipeline", pipeline], flags);
      await first.attached();
      await first.waitFor("batches in the spool", () => spooledBodies(spool).length >= 5, 20_000);
      const status = await first.stop("SIGKILL");
      assert.equal(status.signal, "SIGKILL");
    }
    const spooled = spooledBodies(spool);
    assert.ok(spooled.length >= 5, `${spooled.length} batches spooled`);

    await using receiver = startStandin(undefined, port);
    await using second = new Collector(["--pipeline", pipeline], flags);
    await second.attached();
    await receiver.waitFor(spooled.length + 1, 20_000);
    const status = await second.stop("SIGINT");
    assert.equal(status.code, 0, second.stderr);

    const received = receiver.requests.map((r) => r.body);
    assert.deepEqual(received.slice(0, spooled.length), spooled, "the spool first, in order");
    for (const body of spooled) {
      assert.equal(received.filter((b) => b === body).length, 1, `sent more than once:\n${body}`);
    }
    assert.match(second.stderr, new RegExp(`influx: ${spooled.length} spooled batches`));
    assert.deepEqual(spooledBodies(spool), [], "the spool is empty");
  } finally {
    Deno.removeSync(spool, { recursive: true });
  }
});

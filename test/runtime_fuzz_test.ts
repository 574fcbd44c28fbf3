/**
 * A seeded fuzz of the running collector: random pipelines (every transform and window kind;
 * file, http and otlp outputs), random recordings (records of every probe, gaps of up to a year,
 * time going back, extreme values, bad lines, a line past 1 MiB) replayed through `main()`
 * in-process, while a receiver on loopback answers hostile things (4xx/5xx, 1 GB bodies, gzip
 * bombs of 64 MiB and broken gzip, Retry-After of 0, 3,000,000 s or garbage, partial successes
 * with odd numbers, stalled answers and bodies).
 *
 * Each case runs with `--duration` STOP_AFTER_MS (10 s) and must end within CASE_BOUND_MS (a
 * Worker runs it, so even a synchronous hang is caught): a stop must end. Only a case with an
 * output that pushes back on the receiver (`when_full: block`, a spool) may need the stop;
 * another one stopped by it is a failure. It must end with exit code 0, 1 or 2, every line it says one line with no stack trace, no
 * control character and no internal error ("run with --debug for the stack"), and the
 * process's RSS within RSS_GROWTH_MIB of where it was with the collector loaded. The run starts no
 * case after BUDGET_MS (60 s; the test then takes at most 80 s).
 *
 * Reproduce a failure with the seed and case it prints:
 *   FUZZ_SEED=123 FUZZ_CASE=7 deno test --allow-all test/runtime_fuzz_test.ts
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import type { FuzzCase, FuzzResult } from "./_fuzz_case.ts";
import { prng, STOP_AFTER_MS } from "./_fuzz_case.ts";

/**
 * A case is stopped after STOP_AFTER_MS; its stop flushes each output within its `timeout`
 * (at most 400 ms here) plus the request in flight, one output after another: 3 s at most.
 */
const CASE_BOUND_MS = STOP_AFTER_MS + 10_000;
const BUDGET_MS = Number(Deno.env.get("FUZZ_BUDGET_MS") ?? 60_000);
/**
 * How far the process's RSS may grow over the run from where it was once the worker had loaded
 * the collector (155 MiB here; 383 MiB when the runner had just type-checked). It grew by
 * 16-116 MiB in three runs of 60 s: V8 keeps the heap it grew to for the largest inputs (the
 * same 40 cases run 10 times plateau, the JS heap in use staying at 12 MiB after a GC). One
 * 1 GB answer read whole passes it.
 */
const RSS_GROWTH_MIB = 384;
const GIB = 1 << 30;

/** A loopback receiver whose answers the current case's PRNG picks. */
function startHostileReceiver() {
  let random = prng(0);
  /** 1 GB of "{{{...", or a gzip bomb of 64 MiB: made as it is read, from one reused chunk. */
  const CHUNK = new Uint8Array(64 * 1024).fill(0x7b);
  const huge = (gzip: boolean) => {
    // A bomb's compressed bytes are few enough to fill the socket's buffers whole: 64 MiB of
    // them keeps what the server compresses (CPU, garbage in this process) small.
    const size = gzip ? 64 << 20 : GIB;
    let made = 0;
    const body = new ReadableStream<Uint8Array<ArrayBuffer>>({
      pull(controller) {
        if (made >= size) return controller.close();
        made += CHUNK.length;
        controller.enqueue(CHUNK);
      },
    }, { highWaterMark: 0 });
    return gzip
      ? body.pipeThrough(new CompressionStream("gzip")) as ReadableStream<Uint8Array<ArrayBuffer>>
      : body;
  };
  /** Half an answer, then nothing for a second (longer than the outputs' timeouts). */
  const stalled = () =>
    new ReadableStream<Uint8Array<ArrayBuffer>>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("half an ans"));
        setTimeout(() => {
          try {
            controller.close();
          } catch { /* cancelled by the collector already */ }
        }, 1000);
      },
    });
  const answer = async (): Promise<Response> => {
    const r = random;
    const status = [200, 204, 400, 404, 413, 429, 500, 503][Math.floor(r() * 8)];
    const headers: { [k: string]: string } = {};
    if (r() < 0.5) {
      headers["Retry-After"] = [
        "0",
        "1",
        "3000000",
        "-1",
        "soon",
        "Wed, 21 Oct 2015 07:28:00 GMT",
        new Date(Date.now() + 500).toUTCString(),
        "1e9",
      ][Math.floor(r() * 8)];
    }
    if (r() < 0.1) await new Promise((res) => setTimeout(res, Math.floor(r() * 600))); // stall
    const kind = Math.floor(r() * 7);
    if (status === 204) return new Response(null, { status, headers });
    switch (kind) {
      case 0:
        return new Response(huge(false), { status, headers });
      case 1:
        return new Response(huge(true), {
          status,
          headers: { ...headers, "Content-Encoding": "gzip" },
        });
      case 2:
        return new Response("not gzip at all", {
          status,
          headers: { ...headers, "Content-Encoding": "gzip" },
        });
      case 3:
        return new Response(stalled(), { status, headers });
      case 4: {
        const n = ["5", "-3", "1e400", '"7"', "null", "18446744073709551616"][Math.floor(r() * 6)];
        return new Response(
          `{"partialSuccess":{"rejectedDataPoints":${n},"rejectedLogRecords":${n},` +
            `"errorMessage":"bad\\npoint \\u001b[31m"}}`,
          { status, headers },
        );
      }
      case 5:
        return new Response("line one\nline two\r\n\u001b[2J\u0007", { status, headers });
      default:
        return new Response("", { status, headers });
    }
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    await req.body?.cancel();
    return await answer();
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    /** Answers for the next case come from this seed. */
    reseed(seed: number) {
      random = prng(seed);
    },
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** Whether an output of `pipeline` (YAML) makes a replay wait for the receiver. */
function pushesBack(pipeline: string): boolean {
  const outputs = Object.values(parse(pipeline).outputs ?? {}) as { [key: string]: unknown }[];
  return outputs.some((o) => o.when_full === "block" || o.spool_dir !== undefined);
}

/** What is wrong with a case's result, if anything. */
function problems(result: FuzzResult): string[] {
  const found: string[] = [];
  if (![0, 1, 2].includes(result.code as number)) found.push(`exit code ${result.code}`);
  if (result.lines.some((l) => l.includes("(stopped: duration)")) && !pushesBack(result.pipeline)) {
    found.push(`stopped by --duration, though no output waits for the receiver`);
  }
  for (const line of result.lines) {
    if (/\n|\r/.test(line)) found.push(`a line that is several: ${JSON.stringify(line)}`);
    // deno-lint-ignore no-control-regex
    else if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(line)) {
      found.push(`a control character: ${JSON.stringify(line)}`);
    }
    if (/^\s+at /m.test(line)) found.push(`a stack trace: ${line}`);
    if (line.includes("run with --debug for the stack")) found.push(`an internal error: ${line}`);
    if (line.startsWith("console.")) found.push(`written around the logger: ${line}`);
  }
  return found;
}

Deno.test("runtime fuzz: random pipelines, recordings and hostile receivers end in bounded time and memory, with one-line messages", async () => {
  const seed = Number(Deno.env.get("FUZZ_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  const only = Deno.env.get("FUZZ_CASE");
  await using receiver = startHostileReceiver();
  const worker = new Worker(new URL("./_fuzz_worker.ts", import.meta.url), { type: "module" });
  const failures: string[] = [];
  worker.onerror = (e) => {
    e.preventDefault();
    failures.push(`the worker failed: ${e.message}`);
  };
  await new Promise((resolve) => worker.onmessage = resolve); // "ready": the collector is loaded
  const baseline = Deno.memoryUsage().rss;
  const started = Date.now();
  let cases = 0, stopped = 0;
  // RSS sampled while cases run (a burst is seen, not only what is left after a case).
  let peakRss = baseline;
  const sampler = setInterval(() => peakRss = Math.max(peakRss, Deno.memoryUsage().rss), 50);
  try {
    for (let i = only ? Number(only) : 0;; i++) {
      if (only ? i > Number(only) : Date.now() - started > BUDGET_MS) break;
      const caseSeed = (seed + Math.imul(i, 0x9e3779b9)) >>> 0;
      const where = `FUZZ_SEED=${seed} FUZZ_CASE=${i}`;
      receiver.reseed(caseSeed ^ 0x5bd1e995);
      const dir = await Deno.makeTempDir({ prefix: "runtime_fuzz_" });
      try {
        const answered = new Promise<FuzzResult>((resolve) =>
          worker.onmessage = (e) => resolve(e.data)
        );
        worker.postMessage({ seed: caseSeed, url: receiver.url, dir } satisfies FuzzCase);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const result = await Promise.race([
          answered,
          new Promise<undefined>((resolve) =>
            timer = setTimeout(() => resolve(undefined), CASE_BOUND_MS)
          ),
        ]);
        clearTimeout(timer);
        if (!result) {
          // The worker wrote the inputs before it ran them.
          const read = (name: string) => Deno.readTextFile(`${dir}/${name}`).catch(() => "?");
          failures.push(
            `${where}: still running after ${CASE_BOUND_MS} ms\npipeline:\n` +
              `${await read("pipeline.yaml")}\nrecording (head):\n` +
              (await read("recording.ndjson")).split("\n").slice(0, 5).join("\n").slice(0, 1500),
          );
          break; // the worker is stuck: terminated below
        }
        const found = problems(result);
        if (peakRss - baseline > RSS_GROWTH_MIB << 20) {
          found.push(`RSS grew by ${((peakRss - baseline) / (1 << 20)).toFixed(0)} MiB`);
        }
        if (failures.length) found.push(...failures.splice(0));
        if (found.length) {
          failures.push(
            `${where} (${result.flags.join(" ") || "no flags"}):\n  ${found.join("\n  ")}\n` +
              `pipeline:\n${result.pipeline}\nrecording (head):\n${result.recordingHead}`,
          );
          break;
        }
        cases++;
        if (result.lines.some((l) => l.includes("(stopped: duration)"))) stopped++;
      } finally {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    }
  } finally {
    clearInterval(sampler);
    worker.terminate();
  }
  if (failures.length) {
    assert.fail(`runtime fuzz failed after ${cases} good cases:\n${failures.join("\n")}`);
  }
  assert.ok(cases > 0);
  console.log(
    `runtime fuzz: ${cases} cases (${stopped} stopped by --duration) in ` +
      `${((Date.now() - started) / 1000).toFixed(0)} s, ` +
      `FUZZ_SEED=${seed}; RSS ${(baseline / (1 << 20)).toFixed(0)} MiB with the collector ` +
      `loaded, at most ${((peakRss - baseline) / (1 << 20)).toFixed(0)} MiB more`,
  );
});

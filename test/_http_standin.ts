/**
 * An HTTP receiver on loopback that stands in for what cannot run here (DataKit, InfluxDB's v2
 * API): it records every request exactly (gzip bodies unpacked) and answers what the test says.
 */

/** One request as the stand-in received it. */
export interface Captured {
  method: string;
  /** URL path, e.g. `/api/v2/write`. */
  path: string;
  query: URLSearchParams;
  headers: Headers;
  /** The body as text, gunzipped when the request says `Content-Encoding: gzip`. */
  body: string;
  /** `Date.now()` when the request arrived. */
  at: number;
}

/** A running stand-in; disposing it answers any request still waiting and closes the server. */
export interface Standin extends AsyncDisposable {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Every request so far, in arrival order. */
  readonly requests: Captured[];
  /** Resolves once at least `n` requests have arrived, or throws after `timeoutMs`. */
  waitFor(n: number, timeoutMs?: number): Promise<void>;
}

async function readBody(req: Request): Promise<string> {
  if (!req.body) return "";
  const gzip = (req.headers.get("content-encoding") ?? "").trim().toLowerCase() === "gzip";
  const stream = gzip ? req.body.pipeThrough(new DecompressionStream("gzip")) : req.body;
  return await new Response(stream).text();
}

/**
 * Starts the stand-in on a free loopback port (or `port`: a receiver that comes back where it
 * was). `respond` gets each request and its index
 * (0 for the first) and returns the answer; by default every request gets 204. A respond()
 * that never resolves models a stalled receiver: dispose still finishes (such requests get a
 * 503). If respond() throws or a gzip body does not unpack, the request gets a 500 and
 * dispose throws, so such a bug does not hide behind a retry.
 *
 * @example
 * ```ts
 * await using standin = startStandin((_req, n) =>
 *   n === 0 ? new Response("busy", { status: 503, headers: { "Retry-After": "1" } })
 *           : new Response(null, { status: 204 })
 * );
 * await standin.waitFor(2);
 * ```
 */
export function startStandin(
  respond: (req: Captured, n: number) => Response | Promise<Response> = () =>
    new Response(null, { status: 204 }),
  port = 0,
): Standin {
  const requests: Captured[] = [];
  const failures: string[] = [];
  let release!: () => void;
  const closing = new Promise<void>((r) => release = r);
  // A new Response for each request still waiting: one Response cannot be sent twice.
  const closed = () => closing.then(() => new Response("stand-in closing", { status: 503 }));

  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async (req) => {
    const at = Date.now();
    const url = new URL(req.url);
    let captured: Captured;
    try {
      captured = {
        method: req.method,
        path: url.pathname,
        query: url.searchParams,
        headers: new Headers(req.headers),
        body: await readBody(req),
        at,
      };
    } catch (e) {
      failures.push(`${req.method} ${url.pathname}${url.search}: reading the body: ${e}`);
      return new Response(`stand-in could not read the body: ${e}`, { status: 500 });
    }
    const n = requests.push(captured) - 1;
    try {
      return await Promise.race([respond(captured, n), closed()]);
    } catch (e) {
      failures.push(`request ${n}: respond() threw: ${e}`);
      return new Response(`stand-in respond() threw: ${e}`, { status: 500 });
    }
  });

  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    async waitFor(n: number, timeoutMs = 5000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (requests.length < n) {
        if (Date.now() > deadline) {
          throw new Error(`stand-in got ${requests.length} of ${n} requests in ${timeoutMs} ms`);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async [Symbol.asyncDispose](): Promise<void> {
      release();
      await server.shutdown();
      if (failures.length > 0) throw new Error(`stand-in:\n${failures.join("\n")}`);
    },
  };
}

/**
 * A pipeline whose one output, `influx` (http, preset influxdb), pushes back on the receiver at
 * `url`: `when_full: block` with room for 2 records, in batches of 1, a 300 ms timeout and
 * 100 ms between retries. A receiver that refuses holds whatever feeds it.
 */
export function blockingPipeline(url: string): string {
  return `version: 1
probes:
  bash: { type: bash }
outputs:
  influx:
    type: http
    inputs: [bash]
    preset: influxdb
    url: ${url}
    database: db
    batch_size: 1
    buffer_records: 2
    when_full: block
    timeout: 300ms
    max_backoff: 100ms
`;
}

/**
 * Short TCP connections a second: connect, write 16 bytes, read the echo, close; a few at a
 * time (a bounded client), against an echo server in this process on 127.0.0.1. Every
 * connection is two sockets opened and closed: the netflow probe's close records at their
 * highest rate.
 */
import type { Measurement } from "./workload.ts";

/** Connections in flight at once: enough to keep this process's event loop busy. */
const CONCURRENCY = 4;
const MESSAGE = new TextEncoder().encode("netflow-bench-16");

/** Reads until `buf` is full; false if the peer closed first. */
async function readFull(conn: Deno.Conn, buf: Uint8Array): Promise<boolean> {
  for (let got = 0; got < buf.length;) {
    const n = await conn.read(buf.subarray(got));
    if (n === null) return false;
    got += n;
  }
  return true;
}

/** The server closes first, so TIME_WAIT sockets pile up on its side, not on the ephemeral ports. */
async function echoOnce(conn: Deno.Conn): Promise<void> {
  try {
    const buf = new Uint8Array(MESSAGE.length);
    if (await readFull(conn, buf)) await conn.write(buf);
  } catch {
    /* the client gave up; it counts that */
  } finally {
    conn.close();
  }
}

export async function shortConnections(seconds: number): Promise<Measurement> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const accepting = (async () => {
    try {
      for await (const conn of listener) void echoOnce(conn);
    } catch { /* closed */ }
  })();
  let done = 0, failed = 0, firstError = "";
  const client = async (end: number) => {
    const buf = new Uint8Array(MESSAGE.length);
    while (performance.now() < end) {
      let conn: Deno.Conn | undefined;
      try {
        conn = await Deno.connect({ hostname: "127.0.0.1", port });
        await conn.write(MESSAGE);
        if (!await readFull(conn, buf)) throw new Error("closed before the echo");
        await conn.read(buf); // the server's close
        done++;
      } catch (e) {
        failed++;
        firstError ||= String(e);
      } finally {
        conn?.close();
      }
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, () => client(start + seconds * 1000)));
  const elapsed = (performance.now() - start) / 1000;
  listener.close();
  await accepting;
  return {
    value: done / elapsed,
    events: done,
    note: failed ? `${failed} failed, first: ${firstError}` : undefined,
  };
}

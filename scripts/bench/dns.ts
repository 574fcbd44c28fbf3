/**
 * DNS on loopback: a dnsmasq answering every name under bench.test from its config (no
 * upstream, no cache, no log), and a python3 client that keeps a window of queries in flight on
 * one socket, each with a new id, and counts the answers.
 */
import { Child, sleep } from "./child.ts";
import type { Measurement } from "./workload.ts";

/** A dnsmasq on 127.0.0.1:`port`, answering A queries for bench.test with 127.0.0.7. */
export async function startDnsmasq(port: number): Promise<Child> {
  const dnsmasq = new Child("dnsmasq", [
    "--no-daemon",
    "--no-resolv",
    "--no-hosts",
    `--port=${port}`,
    "--listen-address=127.0.0.1",
    "--bind-interfaces",
    "--user=root",
    "--pid-file=",
    "--address=/bench.test/127.0.0.7",
    "--cache-size=0",
    "--log-facility=/dev/null",
  ], { discardStdout: true });
  // Ready once it answers (it prints nothing when it starts with the log sent to /dev/null).
  const deadline = Date.now() + 10_000;
  while ((await dnsQueries({ port, queries: 1, seconds: 1 })).answered < 1) {
    if (dnsmasq.exited || Date.now() > deadline) {
      await dnsmasq.stop("SIGKILL");
      throw new Error(`dnsmasq on port ${port} does not answer: ${dnsmasq.stderr}`);
    }
    await sleep(50);
  }
  return dnsmasq;
}

// Queries in flight at once: `window`; stops after `n` answers or `seconds` (0: no limit), or
// when no answer comes for 2 s.
const CLIENT = `
import socket, struct, sys, time
n, window, port, rate, seconds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(("127.0.0.1", port)); s.settimeout(2)
q = lambda i: struct.pack(">HHHHHH", i & 0xffff, 0x0100, 1, 0, 0, 0) + b"\\x05bench\\x04test\\x00\\x00\\x01\\x00\\x01"
sent = got = 0; start = time.time(); end = start + seconds if seconds else float("inf")
while got < n:
    now = time.time()
    while sent < n and sent - got < window and now < end:
        if rate and sent > rate * (now - start):
            break
        s.send(q(sent)); sent += 1
    if sent == got:
        if now >= end:
            break
        time.sleep(0.0005); continue
    try:
        s.recv(512); got += 1
    except socket.timeout:
        break
print(got, time.time() - start)
`;

/** Options of one client run: `rate` 0 is flat out, `seconds` 0 is until `queries` answers. */
export interface DnsLoad {
  port: number;
  queries?: number;
  window?: number;
  rate?: number;
  seconds?: number;
}

/** Runs the client once: how many queries were answered, over how long. */
export async function dnsQueries(load: DnsLoad): Promise<{ answered: number; seconds: number }> {
  const args = [
    load.queries ?? 1e12,
    load.window ?? 64,
    load.port,
    load.rate ?? 0,
    load.seconds ?? 0,
  ].map(String);
  const out = await new Deno.Command("python3", {
    args: ["-c", CLIENT, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`python3 DNS client: ${new TextDecoder().decode(out.stderr)}`);
  }
  const [answered, seconds] = new TextDecoder().decode(out.stdout).trim().split(" ").map(Number);
  return { answered, seconds };
}

/** Queries answered a second over `seconds`; events: answers. */
export async function dnsRate(port: number, seconds: number): Promise<Measurement> {
  const { answered, seconds: took } = await dnsQueries({ port, seconds });
  return { value: answered / took, events: answered };
}

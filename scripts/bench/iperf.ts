/**
 * iperf3 on loopback: one server for the whole benchmark, TCP throughput (one stream) and a
 * 64-byte UDP flood (`-u -l 64 -b 0`: one send and one receive event per datagram, the worst
 * case for per-datagram hooks).
 */
import { freePort } from "../../test/_server_process.ts";
import { Child } from "./child.ts";
import type { Measurement } from "./workload.ts";

/** `iperf3 -s` for the whole benchmark, ready once it says it listens. */
export async function startIperfServer(): Promise<{ server: Child; port: number }> {
  const port = freePort();
  const server = new Child("iperf3", ["-s", "-p", String(port), "--forceflush"]);
  try {
    await server.waitFor("iperf3 -s", () => server.stdout.includes("Server listening"));
  } catch (e) {
    await server.stop("SIGKILL");
    throw e;
  }
  return { server, port };
}

// deno-lint-ignore no-explicit-any
async function iperfClient(port: number, seconds: number, extra: string[]): Promise<any> {
  const args = ["-c", "127.0.0.1", "-p", String(port), "-t", String(seconds), "-J", ...extra];
  const out = await new Deno.Command("iperf3", { args, stdout: "piped", stderr: "piped" })
    .output();
  let report;
  try {
    report = JSON.parse(new TextDecoder().decode(out.stdout));
  } catch {
    throw new Error(
      `iperf3 -c: no JSON (exit ${out.code}): ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  if (report.error) throw new Error(`iperf3 -c: ${report.error}`);
  return report;
}

/** Gbit/s received over one TCP stream to 127.0.0.1; its events are MiB received. */
export async function iperfThroughput(port: number, seconds: number): Promise<Measurement> {
  const report = await iperfClient(port, seconds, []);
  const retransmits = report.end?.sum_sent?.retransmits;
  return {
    value: report.end.sum_received.bits_per_second / 1e9,
    events: report.end.sum_received.bytes / 2 ** 20,
    note: retransmits ? `${retransmits} retransmits` : undefined,
  };
}

/** This host's UDP datagrams dropped for a full receive buffer (`RcvbufErrors`, /proc/net/snmp). */
function udpRcvbufErrors(): number {
  const [names, values] = Deno.readTextFileSync("/proc/net/snmp").split("\n")
    .filter((l) => l.startsWith("Udp: ")).map((l) => l.split(/\s+/));
  return Number(values?.[names?.indexOf("RcvbufErrors") ?? -1] ?? NaN);
}

/**
 * 64-byte datagrams received a second, the sender sending as fast as it can; events: datagrams.
 * The receiver cannot keep up: the note says how many the kernel dropped for its full buffer
 * (each one netdrop run; other UDP receivers on the host count in it too).
 */
export async function udpFlood(port: number, seconds: number): Promise<Measurement> {
  const before = udpRcvbufErrors();
  const report = await iperfClient(port, seconds, ["-u", "-l", "64", "-b", "0"]);
  const dropped = udpRcvbufErrors() - before;
  const sent = report.end.sum_sent, received = report.end.sum_received;
  const got = received.packets - received.lost_packets;
  return {
    value: got / received.seconds,
    events: got,
    note: `sent ${(sent.packets / sent.seconds).toFixed(0)}/s, ${
      received.lost_percent.toFixed(0)
    }% not received, ${dropped} dropped for a full receive buffer (RcvbufErrors)`,
  };
}

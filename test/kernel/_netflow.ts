/**
 * What the netflow kernel tests share (netdrop_test and netns_test too): a collector running only
 * the probe under test, its records, and the loopback and namespace helpers they use.
 */
import assert from "node:assert/strict";
import { Collector, tempPipeline } from "./_collector.ts";

export const NEEDS = { objects: ["netflow"] };

export type Flow = ReturnType<Collector["records"]>[number];

/**
 * A collector running only the probe `type`, as stage `stage`, polling every `poll` (1s), with
 * the `probe` lines (indented 4) in its settings, and `ephemeral_port` after it when asked.
 */
export async function startProbe(
  type: string,
  stage: string,
  options: { poll?: string; probe?: string; collapse?: boolean } = {},
): Promise<Collector> {
  const collapse = options.collapse
    ? `transforms:
  merged:
    type: ephemeral_port
    inputs: [${stage}]
`
    : "";
  const collector = new Collector([
    "--pipeline",
    tempPipeline(`version: 1
probes:
  ${stage}:
    type: ${type}
    poll: ${options.poll ?? "1s"}
${options.probe ?? ""}
${collapse}outputs:
  out:
    type: stdout
    inputs: [${options.collapse ? "merged" : stage}]
    format: json
`),
  ]);
  await collector.attached();
  return collector;
}

/** A collector running only the netflow probe (and `ephemeral_port` when asked). */
export function startNetflow(
  options: { poll?: string; probe?: string; collapse?: boolean } = {},
): Promise<Collector> {
  return startProbe("netflow", "flows", options);
}

/** Stops the collector (its last poll flushes) and returns its `measurement` records. */
export async function stopAndRead(collector: Collector, measurement = "netflow"): Promise<Flow[]> {
  const status = await collector.stop("SIGINT");
  assert.equal(status.code, 0, collector.stderr);
  return collector.records().filter((r) => r.measurement === measurement);
}

/** Sums a field over the records that match `where` (tag → value). NETFLOW_TEST_DEBUG=1 shows them. */
export function sum(flows: Flow[], field: string, where: Record<string, string>): number {
  return flows
    .filter((f) => Object.entries(where).every(([k, v]) => f.tags[k] === v))
    .reduce((total, f) => {
      if (Deno.env.get("NETFLOW_TEST_DEBUG")) console.error(field, JSON.stringify(f));
      return total + Number(f.fields[field] ?? 0);
    }, 0);
}

/** With NETFLOW_TEST_FIGURES=1, prints a compared pair (for closing notes and bug reports). */
export function figure(what: string, ours: number, reference: number): void {
  if (Deno.env.get("NETFLOW_TEST_FIGURES")) {
    console.error(`FIGURE ${what}: ours ${ours}, reference ${reference}`);
  }
}

/** The counter's value in the collector's exit summary line. */
export function summaryCounter(collector: Collector, name: string): number {
  const m = new RegExp(`${name}\\{stage=flows\\}=(\\d+)`).exec(collector.stderr);
  assert.ok(m, `no ${name} in the summary:\n${collector.stderr}`);
  return Number(m[1]);
}

/** Runs `cmd` to its end (`stdin` written to it, if given); its stdout, or throws with its stderr. */
export async function run(cmd: string, args: string[], stdin?: string): Promise<string> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}${text}`);
  }
  return text;
}

/** A TCP listener on 127.0.0.1, on a port the kernel picks. */
export function listenLoopback(): { listener: Deno.TcpListener; port: number } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return { listener, port: listener.addr.port };
}

export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * A network namespace joined to the host by a veth pair: `hostIp`/24 on the host's end, `nsIp`/24
 * on the namespace's, its loopback up. Both go on dispose (or if the set-up fails).
 */
export async function vethNamespace(
  prefix: string,
  hostIp: string,
  nsIp: string,
): Promise<{ ns: string; hostIf: string; nsIf: string } & AsyncDisposable> {
  const id = crypto.randomUUID().slice(0, 6);
  const ns = `${prefix}-${id}`, hostIf = `${prefix}h${id}`, nsIf = `${prefix}n${id}`;
  const remove = async () => {
    await run("ip", ["netns", "del", ns]).catch(() => {});
    await run("ip", ["link", "del", hostIf]).catch(() => {});
  };
  try {
    await run("ip", ["netns", "add", ns]);
    await run("ip", ["link", "add", hostIf, "type", "veth", "peer", "name", nsIf]);
    await run("ip", ["link", "set", nsIf, "netns", ns]);
    await run("ip", ["addr", "add", `${hostIp}/24`, "dev", hostIf]);
    await run("ip", ["link", "set", hostIf, "up"]);
    await run("ip", ["-n", ns, "addr", "add", `${nsIp}/24`, "dev", nsIf]);
    await run("ip", ["-n", ns, "link", "set", nsIf, "up"]);
    await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
  } catch (e) {
    await remove();
    throw e;
  }
  return { ns, hostIf, nsIf, [Symbol.asyncDispose]: remove };
}

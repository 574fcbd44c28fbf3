/**
 * What a probe may do in the kernel for the stages after it (the {@linkcode Pushdown} of the
 * stage contract), worked out from the checked graph:
 *
 * - **Client ports**: when every path from the probe reaches an `ephemeral_port` stage (a
 *   stage with `foldsClientPorts`) before any stage that reads or writes ports or `direction`
 *   (every stage but those whose `tagsUsed` leaves them out), and all those stages fold the same
 *   range, the probe may fold the client's port in the kernel: the records reaching the
 *   `ephemeral_port` stages are the same, and the kernel sums what would have been separate
 *   records. A path that ends without reaching anything (a stage nobody reads, or one that
 *   passes none of its input records on: `emitsOnlyOwnRecords`) does not count.
 * - **Answer TTL**: the stages that read the probe's answers as a side input (those with
 *   `answerTtl`), with the tightest of their TTL clamps.
 *
 * The runtime hands the result to the probe's build (`ctx.pushdown`) and rebuilds the probe on
 * a reload that changes it.
 */
import type { StageNode } from "./pipeline.ts";
import type { PortRange, Pushdown } from "./stage.ts";

/** The tags whose value a client-port fold changes, or that decide which port is the client's. */
const PORT_TAGS = ["src_port", "dst_port", "direction"];

/** The pushdown `graph` allows probe `probe`. */
export function pushdownFor(probe: StageNode, graph: readonly StageNode[]): Pushdown {
  const readers = new Map<string, StageNode[]>();
  for (const n of graph) {
    for (const input of n.inputs) {
      const list = readers.get(input) ?? [];
      list.push(n);
      readers.set(input, list);
    }
  }
  const out: { clientPorts?: PortRange | "kernel"; answerTtl?: Pushdown["answerTtl"] } = {};
  const ranges = foldRanges(probe.name, readers);
  if (ranges !== undefined && ranges.size === 1) {
    out.clientPorts = JSON.parse([...ranges][0]);
  }
  // Side readers that keep names (dns_domain); others read other side records (command_activity
  // reads the bash probe's process events) and want nothing of answers.
  const ttls = graph
    .filter((n) => n.sideInputs.some((s) => s.stage === probe.name) && n.def.answerTtl)
    .map((n) => n.def.answerTtl!(n.config));
  if (ttls.length > 0) {
    out.answerTtl = {
      minMs: Math.min(...ttls.map((t) => t.minMs)),
      maxMs: Math.min(...ttls.map((t) => t.maxMs)),
    };
  }
  return out;
}

/**
 * The ranges (as JSON) of the fold stages every path from `from` reaches first; undefined when
 * a path meets a stage that may read ports first. Each stage is visited once.
 */
function foldRanges(from: string, readers: Map<string, StageNode[]>): Set<string> | undefined {
  const ranges = new Set<string>();
  const seen = new Set<string>();
  const stack = [from];
  while (stack.length > 0) {
    for (const n of readers.get(stack.pop()!) ?? []) {
      if (seen.has(n.name)) continue;
      seen.add(n.name);
      const fold = n.def.foldsClientPorts?.(n.config);
      if (fold !== undefined) {
        ranges.add(JSON.stringify(fold));
        continue;
      }
      const tags = n.def.tagsUsed?.(n.config);
      if (tags === undefined || tags.some((t) => PORT_TAGS.includes(t))) return undefined;
      if (n.def.emitsOnlyOwnRecords) continue; // the probe's records end here
      stack.push(n.name);
    }
  }
  return ranges;
}

/**
 * The longest span one record reaching `node` may sum: the longest `intervalMs` of the probes
 * upstream of it (see StageContext.inputSpanMs).
 */
export function inputSpanMs(node: StageNode, graph: readonly StageNode[]): number {
  const byName = new Map(graph.map((n) => [n.name, n]));
  const seen = new Set<string>();
  const stack = [...node.inputs];
  let span = 0;
  while (stack.length > 0) {
    const n = byName.get(stack.pop()!);
    if (n === undefined || seen.has(n.name)) continue;
    seen.add(n.name);
    if (n.kind === "probe") span = Math.max(span, n.def.intervalMs?.(n.config) ?? 0);
    else stack.push(...n.inputs);
  }
  return span;
}

/** The pushdown as `--explain` shows it, one line each; none when there is nothing. */
export function describePushdown(p: Pushdown): string[] {
  const lines: string[] = [];
  if (p.clientPorts !== undefined) {
    const range = p.clientPorts === "kernel"
      ? "this host's ip_local_port_range"
      : `${p.clientPorts.low}-${p.clientPorts.high}`;
    lines.push(
      `pushdown: client ports in ${range} are folded to * in the kernel (every path goes ` +
        `through ephemeral_port first), so records hold * ports`,
    );
  }
  if (p.answerTtl !== undefined) {
    lines.push(
      `pushdown: answers seen again are sent to dns_domain once per TTL clamped to ` +
        `${p.answerTtl.minMs}..${p.answerTtl.maxMs} ms`,
    );
  }
  return lines;
}

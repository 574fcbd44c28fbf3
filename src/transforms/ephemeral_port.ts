/**
 * The `ephemeral_port` transform: writes the client side's ephemeral port as `*`, so flows that
 * differ only in the port the kernel picked for a connection merge into one series.
 *
 * ```yaml
 * transforms:
 *   merge_clients:
 *     type: ephemeral_port
 *     inputs: [netflow]
 *     range: "32768-60999" # or [32768, 60999]; default: the host's kernel range
 * ```
 *
 * Which port is the client's follows from the netflow tags (src is this host, dst the peer):
 * on an `outgoing` flow this host is the client, so `src_port` collapses; on an `incoming` one
 * the peer is, so `dst_port` does. A packet's direction (`ingress`, `egress`: netdrop's) names
 * no client, so there the one end whose port is inside `range` collapses, when the other's is
 * not. Only a port inside `range` collapses: a client that bound a
 * fixed port keeps it. Records with another or no `direction`, or whose port is missing, not a
 * plain decimal, or outside the range, go on unchanged (the same object); a changed record goes
 * on as a copy with new tags (another branch of the pipeline may hold the input), its fields
 * shared, and is counted as `ports_collapsed`. The measurement is not checked: `dnsflow` has the
 * same tags and the same clients.
 *
 * Without `range` the stage takes the host's `net.ipv4.ip_local_port_range` from its host facts
 * when it starts: this host's kernel when collecting (the Linux default 32768-60999 if that
 * cannot be read, with a warning), the recording host's in a replay (kept in the recording's
 * first line; a recording made before it had none replays with this host's), 32768-60999 in
 * `--test`. That is the right range for outgoing flows collected here. For incoming flows the client's range is the
 * peer's, not ours: Windows clients pick from 49152-65535, so a server with such clients may
 * want `range: "32768-65535"`.
 */
import { type At, describeValue } from "../pipeline/schema.ts";
import type { PortRangeFact } from "../pipeline/host_facts.ts";
import type { PortRange, StageDef } from "../pipeline/stage.ts";
import type { Logger } from "../log.ts";

/** Options of an `ephemeral_port` transform. */
export interface EphemeralPortConfig {
  /** The client ports to collapse; undefined: the kernel's, read when the stage starts. */
  range?: PortRange;
}

const FORM = `"low-high" (e.g. "32768-60999") or a list [low, high]`;

/** Checks one port, reporting at `at`; returns whether it is usable. */
function checkPort(n: number, at: At): boolean {
  if (n >= 1 && n <= 65535) return true;
  at.report(`port ${n} is outside 1..65535`);
  return false;
}

/** Checks both ends and their order, reporting each problem; the range if all is well. */
function checkRange(low: number, high: number, at: At, lowAt: At, highAt: At) {
  const ok = checkPort(low, lowAt) && checkPort(high, highAt);
  if (!ok) return undefined;
  if (low > high) {
    at.report(`the low port ${low} is above the high port ${high}; write "${high}-${low}"`);
    return undefined;
  }
  return { low, high };
}

/**
 * Reads `range` as written in the file (`"32768-60999"` or `[32768, 60999]`), reporting every
 * problem at its position; undefined when there was one (the stage is then never built).
 */
function parseRange(value: unknown, at: At): PortRange | undefined {
  if (typeof value === "string") {
    const m = /^\s*(\d{1,6})\s*-\s*(\d{1,6})\s*$/.exec(value);
    if (!m) {
      at.report(`expected ${FORM}, got ${describeValue(value)}`);
      return undefined;
    }
    return checkRange(Number(m[1]), Number(m[2]), at, at, at);
  }
  if (Array.isArray(value)) {
    if (value.length !== 2) {
      at.report(`expected two ports [low, high], got ${value.length} item(s)`);
      return undefined;
    }
    let ok = true;
    value.forEach((item, i) => {
      if (typeof item !== "number" || !Number.isInteger(item)) {
        at.child(i).report(`expected an integer port, got ${describeValue(item)}`);
        ok = false;
      }
    });
    if (!ok) return undefined;
    return checkRange(value[0], value[1], at, at.child(0), at.child(1));
  }
  at.report(`expected ${FORM}, got ${describeValue(value)}`);
  return undefined;
}

// Ports as probes write them: plain decimal, no sign, no leading zero. Port 0 never matches
// (every range starts at 1 or above), and "*" (already collapsed) does not either.
const PORT = /^[1-9]\d{0,4}$/;

/** The host's range, saying why when it is the Linux default instead. */
function kernelRange(fact: PortRangeFact, log: Logger): PortRange {
  if (fact.problem !== undefined) log.warn(fact.problem);
  return fact.range;
}

/** Directions a packet travelled (netdrop's), which say nothing of who is the client. */
const PACKET_DIRECTIONS = new Set(["ingress", "egress"]);

/** The one end whose port is a client's, when only one is (both: which is unknown). */
function onlyEphemeralEnd(src: boolean, dst: boolean): "src_port" | "dst_port" | undefined {
  return src === dst ? undefined : src ? "src_port" : "dst_port";
}

/** `type: ephemeral_port`: writes ephemeral client ports as `*` so flows merge. */
export const ephemeralPortTransform: StageDef<EphemeralPortConfig> = {
  type: "ephemeral_port",
  kind: "transform",
  describe: "Writes the client side's ephemeral port as * so netflow records of one service merge.",
  schema: {
    range: {
      type: "custom",
      doc: `Ports to collapse, "low-high" or [low, high]; default: the host's ip_local_port_range.`,
      parse: parseRange,
    },
  },
  build(config, ctx) {
    const { low, high } = config.range ?? kernelRange(ctx.hostFacts.portRange(), ctx.log);
    const collapsed = ctx.counters.handle("ports_collapsed");
    const ephemeral = (port: string | undefined) => {
      if (port === undefined || !PORT.test(port)) return false;
      const n = Number(port);
      return n >= low && n <= high;
    };
    return {
      push(record) {
        const tags = record.tags;
        const key = tags.direction === "outgoing"
          ? "src_port"
          : tags.direction === "incoming"
          ? "dst_port"
          : PACKET_DIRECTIONS.has(tags.direction)
          ? onlyEphemeralEnd(ephemeral(tags.src_port), ephemeral(tags.dst_port))
          : undefined;
        if (key === undefined || !ephemeral(tags[key])) return ctx.emit(record);
        collapsed.inc();
        ctx.emit({ ...record, tags: { ...tags, [key]: "*" } });
      },
      flush() {},
      close() {},
    };
  },
  explain(config) {
    // Not read here: --explain may run on another host than the collector.
    const range = config.range
      ? `${config.range.low}-${config.range.high}`
      : "the host's ip_local_port_range (the recording's in a replay), read at start";
    return {
      details: [
        `outgoing: src_port in ${range} → *; incoming: dst_port in ${range} → *; ` +
        `ingress, egress: the one port in ${range} → *`,
        "collapsed records are counted as ports_collapsed",
      ],
    };
  },
  example: { range: "32768-60999" },
  foldsClientPorts: (config) => config.range ?? "kernel",
};

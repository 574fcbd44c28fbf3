/**
 * What the `top` view costs with many flows: `--flows` netflow records a second (distinct
 * server ports, so `ephemeral_port` would not fold them) and `--drops` netdrop records a second
 * (distinct sources, as a flood from random addresses makes) for `--seconds`, one frame a second on
 * a `--cols`×`--rows` screen (drawn in place, as on a terminal, into memory). Prints the frame
 * time (the `frame_time_us` self-metric: computing rates, sorting, laying out one frame) as
 * median and max, and the heap and RSS growth with the rows held (`rows_kept`).
 *
 * No root, no kernel: records go straight to the stage on a manual clock.
 *
 *   deno run -A --v8-flags=--max-semi-space-size=1 scripts/top_bench.ts [--flows 10000] [--drops 0] [--seconds 10]
 */
import { parseArgs } from "node:util";
import { buildStage } from "../src/pipeline/testing.ts";
import type { Record } from "../src/record.ts";
import { topOutput } from "../src/outputs/top.ts";
import { startTop, type Terminal } from "../src/outputs/top/view.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    flows: { type: "string", default: "10000" },
    drops: { type: "string", default: "0" },
    seconds: { type: "string", default: "10" },
    cols: { type: "string", default: "200" },
    rows: { type: "string", default: "60" },
  },
});
const flows = Number(values.flows), drops = Number(values.drops), seconds = Number(values.seconds);
const cols = Number(values.cols), rows = Number(values.rows);

let written = 0;
const terminal: Terminal = {
  interactive: true,
  color: true,
  size: () => ({ cols, rows }),
  write: (text) => {
    written += text.length;
    return Promise.resolve();
  },
};
const def = { ...topOutput, build: (c: never, ctx: never) => startTop(c, ctx, terminal) };
const T0 = 1_764_000_000_000_000_000n;

function record(port: number, time: bigint): Record {
  return {
    measurement: "netflow",
    tags: {
      host: "bench",
      source: "netflow",
      direction: "outgoing",
      dst_domain: "",
      dst_ip: "127.0.0.1",
      dst_ip_type: "loopback",
      dst_port: String(port),
      family: "IPv4",
      pid: String(1000 + (port % 50)),
      process_name: `client${port % 50}`,
      src_ip: "127.0.0.1",
      src_ip_type: "loopback",
      src_port: "*",
      transport: "tcp",
    },
    fields: {
      bytes_read: BigInt(port),
      bytes_written: BigInt(port * 3),
      retransmits: 0n,
      tcp_established: 0n,
      tcp_closed: 0n,
      rtt: 50n,
    },
    time,
  };
}

/** A SYN from a random source to a closed port: a NO_SOCKET drop. */
function drop(i: number, time: bigint): Record {
  return {
    measurement: "netdrop",
    tags: {
      host: "bench",
      source: "netdrop",
      reason: "NO_SOCKET",
      direction: "ingress",
      family: "IPv4",
      transport: "tcp",
      src_ip: "198.18.0.1",
      src_port: "9",
      dst_ip: `198.19.${i >> 8 & 255}.${i & 255}`,
      dst_port: "*",
      netns: "4026531840",
    },
    fields: { packets: 1n, bytes: 60n, cgroup_id: 1n },
    time,
  };
}

(globalThis as { gc?: () => void }).gc?.();
const before = Deno.memoryUsage();
const t = await buildStage(def, { max_rows: Math.max(flows, drops, 1) }, undefined, {
  inputSpanMs: 1000,
});
const frameUs: number[] = [];
for (let s = 1; s <= seconds; s++) {
  const time = T0 + BigInt(s) * 1_000_000_000n;
  for (let i = 0; i < flows; i++) t.stage.push(record(10_000 + i, time));
  for (let i = 0; i < drops; i++) t.stage.push(drop(i, time));
  t.clock.advance(time);
  frameUs.push(Number(t.counters.get("frame_time_us", { stage: "top" })));
  await new Promise((r) => setTimeout(r, 0)); // the frame's write settles
}
(globalThis as { gc?: () => void }).gc?.();
const after = Deno.memoryUsage();
await t.stage.close();

// The first frame runs cold (V8 compiles the view as it goes): reported apart.
const [first, ...rest] = frameUs;
rest.sort((a, b) => a - b);
const ms = (us: number) => `${(us / 1000).toFixed(1)} ms`;
const mib = (n: number) => `${(n / (1 << 20)).toFixed(1)} MiB`;
console.log(
  `${flows} flows, ${drops} drop keys, ${seconds} frames of ${cols}x${rows}: first frame ${
    ms(first)
  }, then median ` +
    `${ms(rest[rest.length >> 1])}, max ${ms(rest.at(-1)!)}; rows kept ` +
    `${t.counters.get("rows_kept", { stage: "top" })}; heap +${
      mib(after.heapUsed - before.heapUsed)
    }, RSS +${mib(after.rss - before.rss)}; ${(written / seconds / 1024).toFixed(1)} KiB a frame`,
);

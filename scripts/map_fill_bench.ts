/**
 * What counting a map's entries costs (map_fill.ts): netflow's TCP socket map (a hash) and its
 * UDP flow map (a per-CPU hash, whose fill the probe takes from its own poll instead) filled to
 * `--entries` from user space (the object is loaded, not attached), then counted `--runs` times
 * with countEntries (bpf_map_lookup_batch, 4096 a call). Prints the median and the fastest run.
 *
 * Run as root after `deno task build`:
 *
 *   deno run -A scripts/map_fill_bench.ts [--entries 65536] [--runs 9]
 */
import { parseArgs } from "node:util";
import { libbpf } from "../ffi/libbpf.ts";
import { BpfObject } from "../ffi/object.ts";
import { countEntries } from "../src/probes/map_fill.ts";
import { ROOT } from "../test/_run_command.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    entries: { type: "string", default: "65536" },
    runs: { type: "string", default: "9" },
  },
});
const entries = Number(values.entries), runs = Number(values.runs);

using obj = BpfObject.open(`${ROOT}build/bpf/netflow.bpf.o`);
for (const name of ["tcp_socks", "udp_flows"]) obj.map(name).setMaxEntries(entries);
obj.load();
for (const name of ["tcp_socks", "udp_flows"]) {
  const map = obj.map(name);
  const perCpu = name === "udp_flows";
  const slot = (map.valueSize + 7) & ~7; // a per-CPU value: one 8-byte-aligned slot per CPU
  const value = new Uint8Array(perCpu ? slot * libbpf().libbpf_num_possible_cpus() : map.valueSize);
  const key = new Uint8Array(map.keySize);
  const view = new DataView(key.buffer);
  for (let i = 0; i < entries; i++) {
    view.setUint32(0, i, true);
    map.update(key, value);
  }
  const times: number[] = [];
  let counted = 0;
  for (let r = 0; r < runs; r++) {
    const t = performance.now();
    counted = countEntries(map, perCpu);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  console.log(
    `${name}: ${counted} entries counted in ${times[runs >> 1].toFixed(1)} ms (median of ` +
      `${runs}, fastest ${times[0].toFixed(1)} ms)`,
  );
}

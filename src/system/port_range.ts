/**
 * This host's ephemeral port range (`net.ipv4.ip_local_port_range`): the ports the kernel picks
 * for a client's end. The `ephemeral_port` transform collapses them, and a probe folding them
 * in the kernel for it reads the same range.
 */
import { readKernelFile } from "../../ffi/libc.ts";
import { LINUX_DEFAULT_RANGE, type PortRangeFact } from "../pipeline/host_facts.ts";

const KERNEL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range";

/**
 * The kernel's local port range, read through `read` (libc, since Deno refuses /proc under the
 * collector's permissions); the Linux default and the reason when it cannot be read or parsed.
 */
export function kernelPortRange(
  read: (path: string) => string = readKernelFile,
): PortRangeFact {
  let text: string;
  try {
    text = read(KERNEL_RANGE_FILE);
  } catch (e) {
    return { range: LINUX_DEFAULT_RANGE, problem: fallback((e as Error).message) };
  }
  // The file holds "low<TAB>high\n".
  const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(text);
  const [low, high] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  if (!m || low < 1 || high > 65535 || low > high) {
    return {
      range: LINUX_DEFAULT_RANGE,
      // JSON, so a stray newline in the file cannot split the log line.
      problem: fallback(`unexpected content ${JSON.stringify(text.slice(0, 40))}`),
    };
  }
  return { range: { low, high } };
}

function fallback(why: string): string {
  const { low, high } = LINUX_DEFAULT_RANGE;
  return `cannot read ${KERNEL_RANGE_FILE} (${why}); collapsing ports ${low}-${high}, ` +
    `the Linux default; set range to choose them`;
}

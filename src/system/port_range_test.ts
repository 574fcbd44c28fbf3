import assert from "node:assert/strict";
import { readKernelFile } from "../../ffi/libc.ts";
import { kernelPortRange } from "./port_range.ts";

Deno.test("kernelPortRange() reads this host's ip_local_port_range", () => {
  const [low, high] = readKernelFile("/proc/sys/net/ipv4/ip_local_port_range")
    .trim().split(/\s+/).map(Number);
  assert.deepEqual(kernelPortRange(), { range: { low, high } });
});

Deno.test("kernelPortRange() falls back to 32768-60999 and says why when it cannot read", () => {
  const unreadable = kernelPortRange(() => {
    throw new Error("open /proc/sys/net/ipv4/ip_local_port_range: EACCES");
  });
  assert.deepEqual(unreadable.range, { low: 32768, high: 60999 });
  assert.match(unreadable.problem ?? "", /cannot read .*ip_local_port_range \(open .*EACCES\)/);
  assert.match(unreadable.problem ?? "", /collapsing ports 32768-60999, the Linux default/);
  for (const text of ["", "garbage\n", "40000 30000\n", "0 100\n", "1 70000\n"]) {
    const odd = kernelPortRange(() => text);
    assert.deepEqual(odd.range, { low: 32768, high: 60999 }, text);
    assert.match(odd.problem ?? "", /unexpected content/, text);
  }
  assert.deepEqual(kernelPortRange(() => "1024\t65535\n"), { range: { low: 1024, high: 65535 } });
});

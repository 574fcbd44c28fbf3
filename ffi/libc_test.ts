import assert from "node:assert/strict";
import { readKernelFile } from "./libc.ts";

// The collector's own permissions refuse Deno.readTextFileSync under /proc (checked by hand:
// "Requires all access"); tests run with --allow-all, so Deno's read is the reference here.
Deno.test("readKernelFile() reads a /proc file exactly as Deno does when it may", () => {
  const path = "/proc/sys/net/ipv4/ip_local_port_range";
  const text = readKernelFile(path);
  assert.match(text, /^\d+\s+\d+\n$/);
  assert.equal(text, Deno.readTextFileSync(path));
});

Deno.test("readKernelFile() reads a file longer than one read() call returns", () => {
  const text = readKernelFile("/proc/self/maps");
  assert.ok(text.split("\n").length > 10);
  assert.ok(text.endsWith("\n"), "not cut short");
});

Deno.test("readKernelFile() reports a missing file with its errno", () => {
  assert.throws(() => readKernelFile("/proc/no-such-file"), /open \/proc\/no-such-file: ENOENT/);
});

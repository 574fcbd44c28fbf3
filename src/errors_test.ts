import assert from "node:assert/strict";
import { LibbpfError, LibraryMissingError } from "../ffi/errors.ts";
import { describeError, UserError } from "./errors.ts";

Deno.test("describeError() gives a rejected load's verifier reason and the EPERM hint", () => {
  const log = [
    "libbpf: prog 'handle_exec': BPF program load failed: Permission denied",
    "libbpf: prog 'handle_exec': -- BEGIN PROG LOAD LOG --",
    "R1 invalid mem access 'scalar'",
    "processed 12 insns (limit 1000000)",
    "-- END PROG LOAD LOG --",
  ];
  assert.equal(
    describeError(new LibbpfError("bpf_object__load", 1, log)),
    "bpf_object__load: EPERM (Operation not permitted) (needs root, or CAP_BPF and CAP_PERFMON)" +
      " [verifier: R1 invalid mem access 'scalar']",
  );
  assert.equal(
    describeError(new LibbpfError("bpf_map_lookup_elem", 2, ["libbpf: map 'x': failed"])),
    "bpf_map_lookup_elem: ENOENT (No such file or directory) [libbpf: map 'x': failed]",
  );
});

Deno.test("describeError() gives a user's error as it is and others with their name", () => {
  assert.match(
    describeError(new LibraryMissingError("libbpf.so.1", new Error("gone"))),
    /^cannot load libbpf.so.1: gone \(install it/,
  );
  assert.equal(describeError(new UserError("bad flag", 2)), "bad flag");
  assert.equal(describeError(new TypeError("x")), "TypeError: x (run with --debug for the stack)");
});

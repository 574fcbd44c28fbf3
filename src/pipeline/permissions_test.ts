import assert from "node:assert/strict";
import { missingPermission, runCommand } from "./permissions.ts";
import { parsePipeline } from "./load.ts";

const TEXT = `version: 1
probes:
  shell: { type: bash }
outputs:
  out: { type: file, inputs: [shell], path: "\${EBPF_DIR:-/var/log}/b.jsonl" }
  influx: { type: http, inputs: [shell], preset: influxdb, url: "http://10.1.2.3:8086", database: e }
`;
const pipeline = parsePipeline("p.yaml", TEXT, () => undefined);

/** Grants everything but the descriptors `deny` matches. */
function allBut(deny: (d: Deno.PermissionDescriptor) => boolean) {
  return (d: Deno.PermissionDescriptor) => !deny(d);
}

Deno.test("missingPermission() is undefined when every needed permission is held", () => {
  assert.equal(missingPermission(pipeline, { granted: () => true }), undefined);
});

Deno.test("missingPermission() names the exact flag for each kind of permission", () => {
  const cases: [(d: Deno.PermissionDescriptor) => boolean, string][] = [
    [(d) => d.name === "ffi", "--allow-ffi"],
    [(d) => d.name === "read" && d.path === "/etc/passwd", "--allow-read=/etc/passwd"],
    [(d) => d.name === "read" && d.path === "p.yaml", "--allow-read=p.yaml"],
    [(d) => d.name === "write", "--allow-write=/var/log/b.jsonl"],
    [(d) => d.name === "net", "--allow-net=10.1.2.3:8086"],
    [(d) => d.name === "env" && d.variable === "EBPF_DIR", "--allow-env=EBPF_DIR"],
    [(d) => d.name === "sys", "--allow-sys=hostname"],
  ];
  for (const [deny, flag] of cases) {
    assert.equal(missingPermission(pipeline, { granted: allBut(deny) }), flag);
  }
});

Deno.test("missingPermission() for a replay: its file, no FFI; for a reload: no host name", () => {
  assert.equal(
    missingPermission(pipeline, {
      replay: "rec.ndjson",
      granted: allBut((d) => d.name === "ffi"),
    }),
    undefined,
  );
  assert.equal(
    missingPermission(pipeline, {
      replay: "rec.ndjson",
      granted: allBut((d) => d.name === "read" && d.path === "rec.ndjson"),
    }),
    "--allow-read=rec.ndjson",
  );
  assert.equal(
    missingPermission(pipeline, { running: true, granted: allBut((d) => d.name === "sys") }),
    undefined,
  );
});

Deno.test("runCommand() is a deno run line with the flags, the script and the pipeline", () => {
  const line = runCommand(pipeline);
  assert.match(
    line,
    /^DENO_NO_UPDATE_CHECK=1 deno run --cached-only --v8-flags=--max-semi-space-size=1,--enable-experimental-regexp-engine --allow-ffi --allow-read=p\.yaml,\/bin\/bash,\/etc\/passwd /,
  );
  assert.match(line, /--allow-write="\$\{EBPF_DIR:-\/var\/log\}"\/b\.jsonl /);
  assert.match(line, /--allow-net=10\.1\.2\.3:8086 \S+ --pipeline p\.yaml$/);
});

Deno.test("runCommand() for --replay and --record adds their file and flag", () => {
  const replay = runCommand(pipeline, { replay: "rec.ndjson" });
  assert.ok(!replay.includes("--allow-ffi"), replay);
  assert.match(replay, /--allow-read=p\.yaml,rec\.ndjson,/);
  assert.match(replay, / --pipeline p\.yaml --replay rec\.ndjson$/);
  const record = runCommand(pipeline, { record: "out.ndjson" });
  assert.match(record, /--allow-write=out\.ndjson,/);
  assert.match(record, / --pipeline p\.yaml --record out\.ndjson$/);
});

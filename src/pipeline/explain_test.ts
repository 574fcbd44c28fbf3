import assert from "node:assert/strict";
import { explainDot, explainText } from "./explain.ts";
import { permissionFlags } from "./permissions.ts";
import { parsePipeline } from "./load.ts";

const TEXT = `version: 1
probes:
  shell: { type: bash, binary: "\${BASH_PATH:-/bin/bash}" }
outputs:
  console: { type: stdout, inputs: [shell] }
`;

Deno.test("explainText() shows the graph, defaults marked, and each probe's attach point", () => {
  const text = explainText(parsePipeline("p.yaml", TEXT, () => undefined));
  assert.match(
    text,
    /graph \(records flow downward\):\n {2}shell {4}probe\n {2}console {2}output +<- shell\n/,
  );
  assert.match(text, /max_cmd_bytes: 16384 \(default\) {2}# longest command kept/);
  assert.match(text, /format: json \(default\)/);
  assert.match(text, /= uretprobe \/bin\/bash:readline_internal_teardown/);
});

Deno.test("explainText() shows ${VAR} by name, never its value", () => {
  const pipeline = parsePipeline(
    "p.yaml",
    TEXT,
    (n) => n === "BASH_PATH" ? "/usr/bin/bash" : undefined,
  );
  assert.equal(pipeline.stages[0].config.binary, "/usr/bin/bash");
  const text = explainText(pipeline);
  assert.match(text, /binary: \$\{BASH_PATH:-\/bin\/bash\} {2}#/);
  assert.ok(!text.includes("binary: /usr/bin/bash"), "the value is not shown");
});

Deno.test("permissionFlags() derives reads and env from the stages and the variables used", () => {
  const flags = permissionFlags(parsePipeline("p.yaml", TEXT, () => undefined));
  assert.deepEqual(flags, [
    "--allow-ffi",
    "--allow-read=p.yaml,${BASH_PATH:-/bin/bash},/etc/passwd",
    "--allow-sys=hostname",
    "--allow-env=LOG_TOKENS,LOG_STREAM,BASH_PATH",
    "--deny-run",
    "--deny-net",
  ]);
});

Deno.test("explainDot() draws every stage and every edge for Graphviz", () => {
  const dot = explainDot(parsePipeline("p.yaml", TEXT, () => undefined));
  assert.match(dot, /^digraph pipeline \{/);
  assert.match(dot, /"shell" \[shape=box, label="shell\\nprobe bash"\];/);
  assert.match(dot, /"shell" -> "console";/);
});

Deno.test("permissionFlags() shows a path from ${VAR} as written, not its value", () => {
  const text = TEXT.replace(
    "outputs:\n",
    'outputs:\n  log: { type: file, inputs: [shell], path: "${EBPF_DIR:-/var/log}/b.jsonl" }\n',
  );
  const flags = permissionFlags(
    parsePipeline("p.yaml", text, (n) => n === "EBPF_DIR" ? "/secret/dir" : undefined),
  );
  assert.ok(flags.includes("--allow-write=${EBPF_DIR:-/var/log}/b.jsonl"), flags.join(" "));
  assert.ok(!flags.join(" ").includes("/secret/dir"));
});

Deno.test("permissionFlags() writes a rotated file's path with the ${VAR} of the path it extends", () => {
  const pipeline = parsePipeline(
    "p.yaml",
    `version: 1
probes:
  bash: { type: bash }
outputs:
  log: { type: file, inputs: [bash], path: "\${EBPF_LOG_DIR:-build}/b.jsonl", max_size: 1MiB, keep: 2 }
`,
    () => undefined,
  );
  const writes = permissionFlags(pipeline).find((f) => f.startsWith("--allow-write="));
  assert.equal(
    writes,
    "--allow-write=${EBPF_LOG_DIR:-build}/b.jsonl,${EBPF_LOG_DIR:-build}/b.jsonl.1,${EBPF_LOG_DIR:-build}/b.jsonl.2",
  );
});

import assert from "node:assert/strict";
import { ConfigErrors } from "../errors.ts";
import { explainText } from "./explain.ts";
import { parsePipeline } from "./load.ts";
import { ShownText } from "./shown.ts";

const TEXT = `version: 1
probes:
  self: { type: collector }
outputs:
  a: { type: http, inputs: [self], preset: influxdb, database: x, url: "http://admin:\${EBPF_PW}@127.0.0.1:18080/" }
  b: { type: http, inputs: [self], preset: influxdb_v2, org: o, bucket: b, url: "http://bob:literalpw@127.0.0.1:18081", token: tok3n-literal }
  c: { type: otlp, inputs: [self], headers: { api-key: "\${EBPF_KEY}" }, url: "https://\${EBPF_HOST:-otel.example}:4318" }
`;
const ENV: { [name: string]: string } = {
  EBPF_PW: "s3cr3t-pw",
  EBPF_KEY: "k3y-value",
  EBPF_HOST: "collector.internal",
};
const pipeline = parsePipeline("p.yaml", TEXT, (n) => ENV[n]);

Deno.test("explainText() shows no secret: ${VAR}s as written, literal passwords as ***", () => {
  const text = explainText(pipeline);
  for (const secret of ["s3cr3t-pw", "k3y-value", "literalpw", "tok3n-literal"]) {
    assert.ok(!text.includes(secret), `${secret} shown:\n${text}`);
  }
  assert.match(text, /= POST http:\/\/admin:\$\{EBPF_PW\}@127\.0\.0\.1:18080\/write\?db=x/);
  assert.match(text, /url: http:\/\/bob:\*\*\*@127\.0\.0\.1:18081 /);
  assert.match(text, /= POST http:\/\/bob:\*\*\*@127\.0\.0\.1:18081\/api\/v2\/write/);
});

Deno.test("ShownText.mask() hides a secret variable wherever it appears, and URL passwords", () => {
  const shown = ShownText.of(pipeline);
  assert.equal(
    shown.mask("a: cannot send to http://admin:s3cr3t-pw@127.0.0.1:18080: refused"),
    "a: cannot send to http://admin:${EBPF_PW}@127.0.0.1:18080: refused",
  );
  assert.equal(shown.mask("header api-key=k3y-value"), "header api-key=${EBPF_KEY}");
  assert.equal(shown.mask("token tok3n-literal"), "token ***");
  assert.equal(
    shown.mask("c: https://collector.internal:4318 answered 500"),
    "c: https://${EBPF_HOST:-otel.example}:4318 answered 500",
  );
  assert.equal(
    shown.mask("redis://:hunter2@db:6379 and ftp://u:p@h"),
    "redis://:***@db:6379 and ftp://u:***@h",
  );
  assert.equal(shown.mask("nothing secret: 18080 s3cr3t"), "nothing secret: 18080 s3cr3t");
});

Deno.test("a pipeline error quoting a value from ${VAR} shows the variable, not its value", () => {
  const text = "version: 1\nprobes:\n  self: { type: collector }\noutputs:\n" +
    '  a: { type: http, inputs: [self], preset: influxdb, database: x, url: "${EBPF_URL}" }\n';
  assert.throws(
    () => parsePipeline("p.yaml", text, () => "ftp://admin:s3cr3t@db.example"),
    (e: unknown) => {
      assert.ok(e instanceof ConfigErrors);
      assert.equal(e.message, 'p.yaml:5:72: outputs.a.url: not an http(s) URL: "${EBPF_URL}"');
      return true;
    },
  );
});

import assert from "node:assert/strict";
import type { Record } from "../record.ts";
import { encodeJson } from "./json.ts";

const base: Record = {
  measurement: "bash",
  tags: { host: "web-1", source: "bash" },
  fields: { cmd: "ls -l", pid: 4242n },
  time: 1764085464123456789n,
};

Deno.test("a record encodes as one line with keys in measurement, tags, fields, time order", () => {
  assert.equal(
    encodeJson(base),
    '{"measurement":"bash","tags":{"host":"web-1","source":"bash"},' +
      '"fields":{"cmd":"ls -l","pid":4242},"time":1764085464123456789}',
  );
});

Deno.test("the output parses as JSON and has no newline", () => {
  const line = encodeJson({ ...base, fields: { cmd: "echo 'a\nb'\r\n" } });
  assert.ok(!line.includes("\n"));
  assert.ok(!line.includes("\r"));
  assert.deepEqual(JSON.parse(line).fields, { cmd: "echo 'a\nb'\r\n" });
});

Deno.test("integers past 2^53 and the time are written as exact digits", () => {
  const line = encodeJson({
    ...base,
    fields: { big: 9007199254740993n, max: 18446744073709551615n, neg: -9223372036854775808n },
  });
  assert.match(line, /"big":9007199254740993,/);
  assert.match(line, /"max":18446744073709551615,/);
  assert.match(line, /"neg":-9223372036854775808\}/);
  assert.match(line, /"time":1764085464123456789\}$/);
});

Deno.test("a negative time is written as a negative integer", () => {
  assert.match(encodeJson({ ...base, time: -1n }), /"time":-1\}$/);
});

Deno.test("floats stay JSON numbers and round-trip", () => {
  const values = [1.5, 0.1, -2.25, 1e21, 5e-324, 3, -0];
  const line = encodeJson({
    ...base,
    fields: Object.fromEntries(values.map((v, i) => [`f${i}`, v])),
  });
  const parsed = JSON.parse(line).fields;
  values.forEach((v, i) => assert.equal(parsed[`f${i}`], v === 0 ? 0 : v));
  assert.match(line, /"f0":1.5,/);
});

Deno.test("NaN and Infinity floats are written as null so the line stays valid JSON", () => {
  const line = encodeJson({ ...base, fields: { a: NaN, b: Infinity, c: -Infinity, d: 1.5 } });
  assert.match(line, /"fields":\{"a":null,"b":null,"c":null,"d":1.5\}/);
  assert.deepEqual(JSON.parse(line).fields, { a: null, b: null, c: null, d: 1.5 });
});

Deno.test("booleans are written as JSON booleans", () => {
  assert.match(
    encodeJson({ ...base, fields: { ok: true, bad: false } }),
    /\{"ok":true,"bad":false\}/,
  );
});

Deno.test("quotes, backslashes and control characters in strings are JSON-escaped", () => {
  const cmd = 'say "hi" \\ done\n\ttab\u0001';
  const line = encodeJson({
    measurement: 'm"1',
    tags: { 'k"ey': "v\\al" },
    fields: { cmd },
    time: 1n,
  });
  assert.match(line, /"cmd":"say \\"hi\\" \\\\ done\\n\\ttab\\u0001"/);
  const parsed = JSON.parse(line);
  assert.equal(parsed.measurement, 'm"1');
  assert.deepEqual(parsed.tags, { 'k"ey': "v\\al" });
  assert.equal(parsed.fields.cmd, cmd);
});

Deno.test("unicode passes through unchanged", () => {
  const line = encodeJson({
    ...base,
    tags: { user: "josé" },
    fields: { cmd: "echo 日本語 🚀" },
  });
  assert.match(line, /"user":"josé"/);
  assert.match(line, /"cmd":"echo 日本語 🚀"/);
});

Deno.test("tags and fields keep the order of the object", () => {
  const line = encodeJson({
    measurement: "m",
    tags: { zeta: "1", alpha: "2" },
    fields: { z: 1n, a: 2n },
    time: 0n,
  });
  assert.match(line, /"tags":\{"zeta":"1","alpha":"2"\},"fields":\{"z":1,"a":2\}/);
});

Deno.test("a record with no tags and no fields encodes as empty objects", () => {
  assert.equal(
    encodeJson({ measurement: "m", tags: {}, fields: {}, time: 0n }),
    '{"measurement":"m","tags":{},"fields":{},"time":0}',
  );
});

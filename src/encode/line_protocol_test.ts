import assert from "node:assert/strict";
import type { Record } from "../record.ts";
import { EncodeError, encodeLineProtocol } from "./line_protocol.ts";

const base: Record = {
  measurement: "bash",
  tags: { host: "web-1", source: "bash" },
  fields: { pid: 4242n },
  time: 1764085464123456789n,
};

function fieldsOf(fields: Record["fields"]): string {
  // The field set is the middle part; tests below keep spaces out of tags and the time.
  const line = encodeLineProtocol({ ...base, fields });
  return line.slice(line.indexOf(" ") + 1, line.lastIndexOf(" "));
}

Deno.test("a record encodes as measurement, tags, fields and the time in nanoseconds", () => {
  assert.equal(
    encodeLineProtocol({
      measurement: "bash",
      tags: { source: "bash", host: "web-1" },
      fields: { cmd: "ls -l", pid: 4242n, load: 0.5, interactive: true },
      time: 1764085464123456789n,
    }),
    "bash,host=web-1,source=bash " +
      'cmd="ls -l",pid=4242i,load=0.5,interactive=true 1764085464123456789',
  );
});

Deno.test("tags are sorted by key whatever the object order", () => {
  const line = encodeLineProtocol({
    ...base,
    tags: { zone: "z", Host: "H", host: "h", a_b: "1", "é": "e", "😀": "s", "\uffff": "f" },
  });
  // Code point order: upper case before underscore before lower case, U+FFFF before U+1F600.
  assert.match(line, /^bash,Host=H,a_b=1,host=h,zone=z,é=e,\uffff=f,😀=s /);
});

Deno.test("integers get an i suffix and stay exact past 2^53", () => {
  assert.equal(
    fieldsOf({ a: 9007199254740993n, b: -9223372036854775808n, c: 9223372036854775807n }),
    "a=9007199254740993i,b=-9223372036854775808i,c=9223372036854775807i",
  );
});

Deno.test("integers outside the signed 64-bit range are omitted", () => {
  assert.equal(fieldsOf({ huge: 2n ** 63n, small: -(2n ** 63n) - 1n, ok: 1n }), "ok=1i");
});

Deno.test("floats are written so they parse back to the same value, without an exponent", () => {
  const cases: [number, string][] = [
    [1.5, "1.5"],
    [3, "3"],
    [0.1, "0.1"],
    [-2.25, "-2.25"],
    [1e21, "1000000000000000000000"],
    [1.5e-7, "0.00000015"],
    [-1.234e25, "-12340000000000000000000000"],
    [-0, "-0"],
  ];
  for (const [value, text] of cases) {
    assert.equal(fieldsOf({ f: value }), `f=${text}`);
    assert.ok(Object.is(Number(text), value), `${text} parses back to ${value}`);
  }
  for (const value of [5e-324, Number.MAX_VALUE, 1 / 3, 123456.789e-20]) {
    assert.ok(Object.is(Number(fieldsOf({ f: value }).slice(2)), value), `${value} round-trips`);
  }
});

Deno.test("each field left out is told to onDroppedField with why", () => {
  const dropped: string[] = [];
  const line = encodeLineProtocol({
    ...base,
    fields: { huge: 2n ** 63n, nan: NaN, "\\": 1n, ok: 1n, inf: -Infinity },
  }, { onDroppedField: (reason) => dropped.push(reason) });
  assert.match(line, / ok=1i /);
  assert.deepEqual(dropped, [
    "integer_out_of_range",
    "float_not_finite",
    "empty_key",
    "float_not_finite",
  ]);
});

Deno.test("NaN and Infinity floats are omitted because line protocol cannot represent them", () => {
  assert.equal(fieldsOf({ a: NaN, b: 1.5, c: Infinity, d: -Infinity }), "b=1.5");
});

Deno.test("string fields are quoted, escape quotes and backslashes, and stay on one line", () => {
  assert.equal(
    fieldsOf({ cmd: 'echo "hi" \\ C:\\dir\nnext\ttab\r\f' }),
    'cmd="echo \\"hi\\" \\\\ C:\\\\dir\\nnext\\ttab\\r\\f"',
  );
});

Deno.test("booleans are written as true and false", () => {
  assert.equal(fieldsOf({ yes: true, no: false }), "yes=true,no=false");
});

Deno.test("a tag value with space, comma and equals sign is escaped", () => {
  const line = encodeLineProtocol({ ...base, tags: { path: "/tmp/a b,c=d" } });
  assert.equal(line, "bash,path=/tmp/a\\ b\\,c\\=d pid=4242i 1764085464123456789");
});

Deno.test("tag keys and field keys escape space, comma and equals sign", () => {
  const line = encodeLineProtocol({
    ...base,
    tags: { "a b,c=d": "v" },
    fields: { "x y,z=w": 1n },
  });
  assert.equal(line, "bash,a\\ b\\,c\\=d=v x\\ y\\,z\\=w=1i 1764085464123456789");
});

Deno.test("the measurement escapes space and comma but not the equals sign", () => {
  const line = encodeLineProtocol({ ...base, measurement: "my m,x=y", tags: {} });
  assert.equal(line, "my\\ m\\,x=y pid=4242i 1764085464123456789");
});

Deno.test("control characters in names are written as escapes so a line stays one line", () => {
  const line = encodeLineProtocol({
    measurement: "m\n1",
    tags: { "k\t": "a\r\nb\f" },
    fields: { "f\n": 1n },
    time: 1n,
  });
  assert.equal(line, "m\\n1,k\\t=a\\r\\nb\\f f\\n=1i 1");
  assert.ok(!/[\n\r\t\f]/.test(line));
});

Deno.test("tags with an empty value are omitted", () => {
  const line = encodeLineProtocol({ ...base, tags: { host: "web-1", user: "", "": "x" } });
  assert.equal(line, "bash,host=web-1 pid=4242i 1764085464123456789");
});

Deno.test("a trailing backslash is dropped so it cannot escape the next delimiter", () => {
  const line = encodeLineProtocol({
    measurement: "m\\",
    tags: { dir: "C:\\", "k\\": "v", only: "\\\\" },
    fields: { "f\\": 1n, g: "end\\" },
    time: 1n,
  });
  assert.equal(line, 'm,dir=C:,k=v f=1i,g="end\\\\" 1');
});

Deno.test("unicode passes through unchanged", () => {
  const line = encodeLineProtocol({
    measurement: "bash",
    tags: { user: "josé" },
    fields: { cmd: "echo 日本語 🚀" },
    time: 1n,
  });
  assert.equal(line, 'bash,user=josé cmd="echo 日本語 🚀" 1');
});

Deno.test("negative times within the 64-bit range are written as is", () => {
  assert.match(encodeLineProtocol({ ...base, time: -1n }), / -1$/);
});

Deno.test("a record with no fields throws an EncodeError naming the measurement", () => {
  assert.throws(
    () => encodeLineProtocol({ ...base, fields: {} }),
    (err: unknown) => {
      assert.ok(err instanceof EncodeError);
      assert.equal(err.name, "EncodeError");
      assert.equal(err.measurement, "bash");
      assert.match(err.message, /"bash".*no field/);
      return true;
    },
  );
});

Deno.test("a record whose fields are all unrepresentable throws an EncodeError", () => {
  assert.throws(
    () => encodeLineProtocol({ ...base, fields: { a: NaN, b: Infinity, c: 2n ** 64n } }),
    EncodeError,
  );
});

Deno.test("an empty measurement throws an EncodeError", () => {
  assert.throws(
    () => encodeLineProtocol({ ...base, measurement: "" }),
    /measurement name is empty/,
  );
});

Deno.test("a time outside the signed 64-bit range throws an EncodeError", () => {
  assert.throws(() => encodeLineProtocol({ ...base, time: 2n ** 63n }), EncodeError);
});

Deno.test("rawStringControls keeps newlines and tabs in string fields, escaping only quote and backslash", () => {
  const record = {
    measurement: "bash",
    tags: { host: "a\nb" },
    fields: { cmd: 'a\tb\nc "d" \\e' },
    time: 1n,
  };
  assert.equal(
    encodeLineProtocol(record, { rawStringControls: true }),
    'bash,host=a\\nb cmd="a\tb\nc \\"d\\" \\\\e" 1',
  );
  assert.equal(encodeLineProtocol(record), 'bash,host=a\\nb cmd="a\\tb\\nc \\"d\\" \\\\e" 1');
});

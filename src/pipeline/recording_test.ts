import assert from "node:assert/strict";
import type { Record } from "../record.ts";
import {
  decodeLine,
  decodeRecorded,
  encodeHeader,
  encodeHostFact,
  encodeRecorded,
  RecordingError,
} from "./recording.ts";

const RECORD: Record = {
  measurement: "bash",
  tags: { host: "web-1", source: "bash" },
  fields: {
    cmd: 'echo "héllo" \\ 🎉',
    pid: "4242",
    big: 9007199254740993n,
    neg: -5n,
    whole_float: 5,
    ratio: 0.25,
    huge_float: 1e21,
    truncated: true,
  },
  time: 1795622018659544231n,
};

Deno.test("a recorded record decodes to exactly the same record, field types included", () => {
  const line = encodeRecorded("bash", RECORD);
  assert.ok(!line.includes("\n"));
  const { probe, record } = decodeRecorded(line, 1);
  assert.equal(probe, "bash");
  assert.deepEqual(record, RECORD);
  assert.equal(typeof record.fields.whole_float, "number", "5.0 stays a float");
  assert.equal(record.fields.big, 9007199254740993n, "integers stay exact past 2^53");
});

Deno.test("encodeRecorded() writes floats so they read back as floats", () => {
  const line = encodeRecorded("p", { ...RECORD, fields: { a: 5, b: 5n, c: 1e21, d: -0.5 } });
  assert.match(line, /"fields":\{"a":5\.0,"b":5,"c":1e\+21,"d":-0\.5\}/);
});

Deno.test("decodeRecorded() rejects a broken line, naming the line and what is wrong", () => {
  assert.throws(
    () => decodeRecorded("{nope", 7),
    (e: RecordingError) => e.line === 7 && /^line 7: not JSON/.test(e.message),
  );
  assert.throws(
    () => decodeRecorded('{"probe":"p","measurement":"m","tags":{},"fields":{},"time":1.5}', 2),
    /time" must be integer/,
  );
  assert.throws(
    () => decodeRecorded('{"probe":"p","measurement":"m","tags":{"a":1},"fields":{},"time":1}', 3),
    /tags" must map names to strings/,
  );
  assert.throws(
    () =>
      decodeRecorded('{"probe":"p","measurement":"m","tags":{},"fields":{"x":[1]},"time":1}', 4),
    /field "x"/,
  );
});

Deno.test("a side record (sent with ctx.emitSide) keeps its side flag through the round trip", () => {
  const answer: Record = {
    measurement: "dns_answer",
    tags: { host: "h" },
    fields: { name: "svc.test", address: "127.0.0.9", ttl: 30n },
    time: 1795622018659544231n,
  };
  const line = encodeRecorded("dns", answer, true);
  assert.match(line, /^\{"probe":"dns","side":true,/);
  assert.deepEqual(decodeRecorded(line, 1), { probe: "dns", record: answer, side: true });
  assert.deepEqual(decodeRecorded(encodeRecorded("dns", answer), 1), {
    probe: "dns",
    record: answer,
  });
  assert.throws(
    () => decodeRecorded(line.replace('"side":true', '"side":1'), 3),
    /line 3: "side" must be true/,
  );
});

Deno.test("decodeRecorded() rejects fields, tags and time of the wrong shape", () => {
  const line = (fields: string, tags = '{"host":"h"}', time = "1") =>
    `{"probe":"p","measurement":"m","tags":${tags},"fields":${fields},"time":${time}}`;
  for (
    const [text, why] of [
      [line("5"), /line 9: "fields" must map names to values/],
      [line('"abc"'), /line 9: "fields" must map names to values/],
      [line("[1,2]"), /line 9: "fields" must map names to values/],
      [line("null"), /line 9: "fields" must map names to values/],
      [line("{}", '["a","b"]'), /line 9: "tags" must map names to strings/],
      [line("{}", '"ab"'), /line 9: "tags" must map names to strings/],
      // Numbers are read from their source text: an object that looks like that is no number.
      [line('{"x":{"number":"5"}}'), /line 9: field "x" must be a string, number or boolean/],
      [line("{}", undefined, '{"number":"5"}'), /line 9: "time" must be integer nanoseconds/],
      [line("{}", undefined, "99999999999999999999"), /line 9: "time" must be integer nano/],
    ] as const
  ) {
    assert.throws(() => decodeRecorded(text, 9), why, text);
  }
});

Deno.test("decodeRecorded() shows what it quotes of a broken line with control characters escaped", () => {
  assert.throws(
    () => decodeRecorded("\u00ff\u001b[2J\u0000\nfake", 3),
    (e: RecordingError) => {
      // deno-lint-ignore no-control-regex
      assert.ok(!/[\u0000-\u001f]/.test(e.message), JSON.stringify(e.message));
      assert.match(e.message, /^line 3: not JSON: .*\\u001b\[2J\\u0000\\nfake/);
      return true;
    },
  );
});

Deno.test("decodeLine() reads the header, host facts and records a --record file holds", () => {
  const pod = { namespace: "shop", pod: "cart-7d9f-x2", container: "app" };
  const container = "4f2a".padEnd(64, "0");
  assert.deepEqual(decodeLine(encodeHeader({ low: 1024, high: 65535 }), 1), {
    kind: "header",
    portRange: { low: 1024, high: 65535 },
  });
  const facts = [
    { fact: "container", cgroupId: 18446744073709551615n, containerId: container },
    { fact: "pod", containerId: container, pod },
    { fact: "remote", ip: "10.96.4.2", remote: { namespace: "shop", service: "cart" } },
    {
      fact: "remote",
      ip: "fd00::9",
      remote: {
        namespace: "shop",
        service: "cart",
        pod: "cart-7d9f-x2",
        workload: "Deployment/cart",
      },
    },
  ] as const;
  for (const fact of facts) {
    assert.deepEqual(decodeLine(encodeHostFact(fact), 5), { kind: "fact", fact });
  }
  assert.deepEqual(decodeLine(encodeRecorded("bash", RECORD), 2), {
    kind: "record",
    recorded: { probe: "bash", record: RECORD },
  });
});

Deno.test("decodeLine() refuses a header after line 1, of another version or without a range", () => {
  const header = encodeHeader({ low: 1024, high: 65535 });
  assert.throws(
    () => decodeLine(header, 3),
    /^RecordingError: line 3: a header .* only be the first line/,
  );
  assert.throws(
    () => decodeLine(header.replace('"recording":1', '"recording":2'), 1),
    /"recording" is format 1/,
  );
  for (const range of ["[2000,1000]", "[0,10]", "[1,70000]", "[1]", '"1-2"']) {
    assert.throws(
      () => decodeLine(`{"recording":1,"host_facts":{"port_range":${range}}}`, 1),
      /"host_facts" must hold "port_range"/,
      range,
    );
  }
  assert.throws(
    () => decodeLine('{"host_fact":"container","cgroup_id":"x","container_id":"a"}', 4),
    /line 4: "cgroup_id" must be a cgroup's id/,
  );
  assert.throws(
    () => decodeLine('{"host_fact":"pod","container_id":"a","namespace":"n"}', 4),
    /"pod" must be a string/,
  );
});

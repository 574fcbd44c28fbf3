import assert from "node:assert/strict";
import { type HostFacts, OFFLINE_HOST_FACTS } from "../pipeline/host_facts.ts";
import { buildStage, configureStage } from "../pipeline/testing.ts";
import type { Record } from "../record.ts";
import { type EphemeralPortConfig, ephemeralPortTransform } from "./ephemeral_port.ts";

function flow(tags: { [key: string]: string }): Record {
  return {
    measurement: "netflow",
    tags: {
      host: "web-1",
      source: "netflow",
      family: "IPv4",
      transport: "tcp",
      src_ip: "10.0.0.5",
      dst_ip: "10.0.0.9",
      ...tags,
    },
    fields: { bytes_read: 120n, bytes_written: 4096n },
    time: 1_764_085_464_123_456_789n,
  };
}

const out = (src_port: string) => flow({ direction: "outgoing", src_port, dst_port: "443" });
const inc = (dst_port: string) => flow({ direction: "incoming", src_port: "443", dst_port });

/** Builds the stage, pushes each record, and returns what the test harness saw. */
async function through(options: { [key: string]: unknown }, records: Record[]) {
  const built = await buildStage(ephemeralPortTransform, options);
  for (const r of records) await built.stage.push(r);
  return built;
}

Deno.test("ephemeral_port collapses src_port of outgoing flows and dst_port of incoming ones", async () => {
  const { emitted } = await through({ range: "32768-60999" }, [out("45123"), inc("51000")]);
  assert.equal(emitted[0].tags.src_port, "*");
  assert.equal(emitted[0].tags.dst_port, "443", "the server's port stays");
  assert.equal(emitted[1].tags.dst_port, "*");
  assert.equal(emitted[1].tags.src_port, "443", "the server's port stays");
  assert.deepEqual(emitted[0].tags, { ...out("1").tags, src_port: "*" });
});

Deno.test("ephemeral_port collapses exactly the ports from low to high, both included", async () => {
  const ports = ["32767", "32768", "60999", "61000"];
  const { emitted } = await through({ range: "32768-60999" }, [
    ...ports.map(out),
    ...ports.map(inc),
  ]);
  assert.deepEqual(emitted.slice(0, 4).map((r) => r.tags.src_port), ["32767", "*", "*", "61000"]);
  assert.deepEqual(emitted.slice(4).map((r) => r.tags.dst_port), ["32767", "*", "*", "61000"]);
});

Deno.test("ephemeral_port looks only at the client side's port", async () => {
  // An outgoing flow to a server on a high port, an incoming one to a server on a high port.
  const { emitted } = await through({ range: "32768-60999" }, [
    flow({ direction: "outgoing", src_port: "80", dst_port: "40000" }),
    flow({ direction: "incoming", src_port: "40000", dst_port: "80" }),
  ]);
  assert.equal(emitted[0].tags.dst_port, "40000");
  assert.equal(emitted[1].tags.src_port, "40000");
});

Deno.test("ephemeral_port folds a dropped packet's one port in the range, as netdrop's kernel fold does", async () => {
  // A packet's direction names no client: the end whose port is in the range is the client's.
  const drop = (direction: string, src_port: string, dst_port: string) =>
    flow({ direction, src_port, dst_port, reason: "NO_SOCKET" });
  const { emitted } = await through({ range: "32768-60999" }, [
    drop("ingress", "9", "45123"), // a SYN to closed port 9 from a client's port
    drop("egress", "45123", "53"),
    drop("ingress", "40000", "45123"), // both in the range: which is the client is unknown
    drop("egress", "80", "443"), // neither
  ]);
  assert.deepEqual(emitted.map((r) => [r.tags.src_port, r.tags.dst_port]), [
    ["9", "*"],
    ["*", "53"],
    ["40000", "45123"],
    ["80", "443"],
  ]);
});

Deno.test("ephemeral_port passes odd, unknown and untagged records on as the same object", async () => {
  const records = [
    out("*"), // already collapsed
    out("abc"),
    out(""),
    out("045123"), // not as a probe writes a port
    out("+45123"),
    out("45123.0"),
    out("145123"),
    flow({ direction: "outgoing", dst_port: "443" }), // no src_port
    flow({ direction: "incoming", src_port: "443" }), // no dst_port
    flow({ src_port: "45123", dst_port: "45123" }), // no direction
    flow({ direction: "sideways", src_port: "45123", dst_port: "45123" }),
    flow({ direction: "Outgoing", src_port: "45123", dst_port: "443" }),
    {
      measurement: "bash",
      tags: { host: "web-1", source: "bash" },
      fields: { cmd: "ls" },
      time: 1n,
    },
  ];
  const { emitted, counters } = await through({ range: "32768-60999" }, records);
  assert.equal(emitted.length, records.length);
  emitted.forEach((r, i) => assert.equal(r, records[i], `record ${i} is passed on as is`));
  assert.equal(counters.get("ports_collapsed", { stage: "ephemeral_port" }), 0n);
});

Deno.test("ephemeral_port emits a copy and never mutates the incoming record", async () => {
  const input = out("45123");
  const before = structuredClone(input);
  const { emitted } = await through({ range: "32768-60999" }, [input, input]);
  assert.deepEqual(input, before);
  assert.notEqual(emitted[0], input);
  assert.notEqual(emitted[0].tags, input.tags);
  assert.equal(emitted[0].fields, input.fields, "fields are shared, not copied");
  assert.equal(emitted[0].time, input.time);
  assert.deepEqual(emitted[0], emitted[1], "a second branch seeing the record gets the same");
});

Deno.test("ephemeral_port counts each record it changes as ports_collapsed", async () => {
  const { counters } = await through({ range: "32768-60999" }, [
    out("45123"),
    inc("45123"),
    out("443"),
    flow({ src_port: "45123" }),
    out("50000"),
  ]);
  assert.equal(counters.get("ports_collapsed", { stage: "ephemeral_port" }), 3n);
});

Deno.test("ephemeral_port reads range as a string or a two-item list, spaces allowed", async () => {
  for (const range of ["1000-2000", " 1000 - 2000 ", [1000, 2000]]) {
    const { config, errors } = configureStage(ephemeralPortTransform, { range });
    assert.deepEqual(errors.map((e) => e.message), [], JSON.stringify(range));
    assert.deepEqual((config as EphemeralPortConfig).range, { low: 1000, high: 2000 });
  }
  const { emitted } = await through({ range: [5000, 5000] }, [out("4999"), out("5000")]);
  assert.deepEqual(emitted.map((r) => r.tags.src_port), ["4999", "*"], "a range of one port");
});

Deno.test("ephemeral_port rejects bad ranges, each at its position", () => {
  const cases: [unknown, string, RegExp][] = [
    ["61000-32768", "range", /low port 61000 is above the high port 32768; write "32768-61000"/],
    ["0-10", "range", /port 0 is outside 1\.\.65535/],
    ["1-65536", "range", /port 65536 is outside 1\.\.65535/],
    [
      "abc",
      "range",
      /expected "low-high" \(e\.g\. "32768-60999"\) or a list \[low, high\], got "abc"/,
    ],
    ["32768", "range", /expected "low-high"/],
    ["-1-10", "range", /expected "low-high"/],
    [[1], "range", /expected two ports \[low, high\], got 1 item/],
    [[1, 2, 3], "range", /expected two ports \[low, high\], got 3 item/],
    [[61000, 32768], "range", /low port 61000 is above the high port 32768/],
    [[0, 100], "range[0]", /port 0 is outside 1\.\.65535/],
    [[100, 70000], "range[1]", /port 70000 is outside 1\.\.65535/],
    [["32768", 60999], "range[0]", /expected an integer port, got "32768"/],
    [[32768, 1.5], "range[1]", /expected an integer port, got 1\.5/],
    [32768, "range", /expected "low-high".*, got 32768/],
    [{ low: 1, high: 2 }, "range", /got a mapping/],
  ];
  for (const [range, path, reason] of cases) {
    const { errors } = configureStage(ephemeralPortTransform, { range });
    const what = JSON.stringify(range);
    assert.equal(errors.length, 1, `${what}: ${errors.map((e) => e.message).join("; ")}`);
    const [e] = errors;
    assert.equal(e.path, `test.ephemeral_port.${path}`, what);
    assert.match(e.reason, reason, what);
    assert.ok(e.line > 1 && e.column > 1, `${what} is positioned: ${e.message}`);
  }
});

Deno.test("ephemeral_port reports both bad ends of a list at once", () => {
  const { errors } = configureStage(ephemeralPortTransform, { range: ["a", "b"] });
  assert.deepEqual(errors.map((e) => e.path), [
    "test.ephemeral_port.range[0]",
    "test.ephemeral_port.range[1]",
  ]);
});

Deno.test("ephemeral_port without range collapses the host's range, from its host facts", async () => {
  // A host (or a recording of one) whose range is not the Linux default.
  const hostFacts: HostFacts = {
    ...OFFLINE_HOST_FACTS,
    portRange: () => ({ range: { low: 1024, high: 2048 } }),
  };
  const ports = ["1023", "1024", "2048", "2049", "40000"];
  const built = await buildStage(ephemeralPortTransform, {}, undefined, { hostFacts });
  for (const p of ports) await built.stage.push(out(p));
  assert.deepEqual(built.logs, [], "nothing to say of a range that was read");
  assert.deepEqual(built.emitted.map((r) => r.tags.src_port), ["1023", "*", "*", "2049", "40000"]);
});

Deno.test("ephemeral_port says why when the host's range is the Linux default instead", async () => {
  const hostFacts: HostFacts = {
    ...OFFLINE_HOST_FACTS,
    portRange: () => ({ range: { low: 32768, high: 60999 }, problem: "cannot read it" }),
  };
  const built = await buildStage(ephemeralPortTransform, {}, undefined, { hostFacts });
  await built.stage.push(out("40000"));
  assert.deepEqual(built.logs, ["warning: cannot read it"]);
  assert.equal(built.emitted[0].tags.src_port, "*");
});

Deno.test("ephemeral_port explains its range, or that the kernel's is read at start", () => {
  const explain = (options: { [key: string]: unknown }) =>
    ephemeralPortTransform.explain!(
      configureStage(ephemeralPortTransform, options).config as EphemeralPortConfig,
    ).details;
  assert.deepEqual(explain({ range: [1000, 2000] }), [
    "outgoing: src_port in 1000-2000 → *; incoming: dst_port in 1000-2000 → *; " +
    "ingress, egress: the one port in 1000-2000 → *",
    "collapsed records are counted as ports_collapsed",
  ]);
  assert.match(
    explain({})![0],
    /^outgoing: src_port in the host's ip_local_port_range \(the recording's in a replay\), read at start → \*; incoming: /,
  );
});

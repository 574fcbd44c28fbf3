/**
 * One case of the runtime fuzz (runtime_fuzz_test.ts), run in a Worker (_fuzz_worker.ts) so
 * that the test's thread can stop a case that hangs, even in a synchronous loop. From a seed it
 * makes a pipeline (probes, transforms, windows, and file, http and otlp outputs, the last two
 * aimed at the test's hostile receiver) and a recording (records of every kind, gaps in time,
 * bad lines), then runs the collector's `main()` on them with `--replay` and returns its exit
 * code and every line it said.
 */
import { stringify } from "yaml";
import { main } from "../src/main.ts";

/**
 * Every case runs with `--duration` this long: a replay into an output that pushes back
 * (`when_full: block`, a spool) goes at the pace of the hostile receiver, which can take
 * minutes for 300 records in batches of one, so such a case is stopped as a user would stop
 * it, and the test then checks that the stop ends.
 */
export const STOP_AFTER_MS = 10_000;

/** What the test sends: the case's seed, the receiver's URL and a directory for its files. */
export interface FuzzCase {
  seed: number;
  url: string;
  dir: string;
}

/** What the worker answers. */
export interface FuzzResult {
  code: number | string;
  lines: string[];
  /** The inputs, to show with a failure. */
  pipeline: string;
  recordingHead: string;
  flags: string[];
}

/** mulberry32: a small seeded PRNG. */
export function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Random = () => number;
const pick = <T>(r: Random, list: readonly T[]): T => list[Math.floor(r() * list.length)];
const chance = (r: Random, p: number) => r() < p;
const int = (r: Random, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

const STRINGS = [
  "",
  "ls",
  "a b",
  "mysql -u root -psecret",
  "curl -H 'Authorization: Bearer abc.def' https://u:p@h/",
  "héllo 世界 🎉",
  "\u0000\u001b[31mred\u001b[0m",
  "line\nbreak",
  'quote " back \\ slash',
  "k=v,x y",
  "${EBPF_X}",
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!",
  "10.0.0.1",
  "::1",
  "fe80::1%eth0",
  "999.1.1.1",
  "*",
  "~other",
];
const INTEGERS = [
  "0",
  "1",
  "-1",
  "53",
  "443",
  "40000",
  "9007199254740993",
  "9223372036854775807",
  "9223372036854775808",
  "-9223372036854775809",
  "18446744073709551621",
];
const FLOATS = ["0.5", "5.0", "-0.0", "1e308", "1e-320", "3.14159", "1e+21"];
const TAGS = [
  "host",
  "source",
  "dst_ip",
  "src_ip",
  "dst_port",
  "src_port",
  "direction",
  "transport",
  "user",
  "qtype",
  "rcode_name",
  "container_id",
];
const FIELDS = ["cmd", "pid", "user", "bytes_read", "bytes_written", "rtt", "latency", "count"];

function randomString(r: Random): string {
  if (chance(r, 0.03)) return "x".repeat(int(r, 1000, 20_000));
  return pick(r, STRINGS) + (chance(r, 0.3) ? pick(r, STRINGS) : "");
}

/** A field value as JSON text (numbers as typed source text, as recordings hold them). */
function fieldJson(r: Random): string {
  switch (int(r, 0, 5)) {
    case 0:
      return pick(r, INTEGERS);
    case 1:
      return pick(r, FLOATS);
    case 2:
      return chance(r, 0.5) ? "true" : "false";
    case 3:
      return "null";
    default:
      return JSON.stringify(randomString(r));
  }
}

const PROBES = {
  bash: { measurement: "bash", fields: ["cmd", "pid", "user"] },
  netflow: { measurement: "netflow", fields: ["bytes_read", "bytes_written", "rtt"] },
  dns: { measurement: "dnsflow", fields: ["count", "latency", "rcode"] },
} as const;
type Probe = keyof typeof PROBES;

/** Recording lines: records of `probes` (and others), DNS answers, gaps, and bad lines. */
function recording(r: Random, probes: Probe[]): string[] {
  const lines: string[] = [];
  // One case in twenty has a line past the 1 MiB a recording line may have.
  const longLine = chance(r, 0.05) ? int(r, 0, 300) : -1;
  // Bad lines in two cases of five: the others replay to their end.
  const badLines = chance(r, 0.4) ? 0.03 : 0;
  let time = 1_767_225_600_000_000_000n + BigInt(int(r, 0, 1e9));
  for (let n = int(r, 1, 300); n > 0; n--) {
    if (n === longLine) {
      lines.push(`{"probe":"bash","fields":{"cmd":"${"y".repeat((1 << 20) + 10)}"}}`);
      continue;
    }
    const roll = r();
    if (roll < 0.05) time += BigInt(int(r, 1, 365 * 86_400)) * 1_000_000_000n; // a gap
    else if (roll < 0.08) time -= BigInt(int(r, 1, 120)) * 1_000_000_000n; // back in time
    else time += BigInt(int(r, 0, 2e9));
    let at = String(time);
    if (chance(r, 0.01)) at = pick(r, ["0", "-1", "9223372036854775807", "-9223372036854775808"]);
    if (chance(r, badLines)) {
      lines.push(pick(r, [
        "garbage",
        "{",
        "[]",
        "null",
        '{"probe":"bash"}',
        `{"probe":"bash","measurement":"bash","tags":{},"fields":5,"time":${at}}`,
        `{"probe":"bash","measurement":"bash","tags":["a"],"fields":{},"time":${at}}`,
        `{"probe":"bash","measurement":"bash","tags":{},"fields":{"x":{"number":"5"}},"time":1}`,
        `{"probe":"bash","measurement":"bash","tags":{},"fields":{},"time":1.5}`,
        "\u00ff\u00fe binary \u0000",
        "",
      ]));
      continue;
    }
    const probe: string = chance(r, 0.03) ? "unknown_probe" : pick(r, probes);
    if (probe === "dns" && chance(r, 0.3)) {
      const ttl = pick(r, ["30", "0", "-5", "4294967296", "1.5"]);
      lines.push(
        `{"probe":"dns","side":true,"measurement":"dns_answer","tags":{"host":"h"},` +
          `"fields":{"name":${JSON.stringify(randomString(r))},"address":` +
          `${JSON.stringify(pick(r, STRINGS))},"ttl":${ttl}},"time":${at}}`,
      );
      continue;
    }
    const kind = PROBES[probe as Probe] ?? PROBES.bash;
    const tags: { [k: string]: string } = { host: "h", source: probe };
    for (let t = int(r, 0, 5); t > 0; t--) tags[pick(r, TAGS)] = pick(r, STRINGS);
    const fields = [...kind.fields, ...(chance(r, 0.3) ? [pick(r, FIELDS)] : [])]
      .map((f) => `${JSON.stringify(f)}:${fieldJson(r)}`);
    lines.push(
      `{"probe":${JSON.stringify(probe)},"measurement":"${kind.measurement}",` +
        `"tags":${JSON.stringify(tags)},"fields":{${fields.join(",")}},"time":${at}}`,
    );
  }
  return lines;
}

function condition(r: Random): unknown {
  if (chance(r, 0.15)) return { [pick(r, ["any", "all"])]: [condition(r), condition(r)] };
  if (chance(r, 0.05)) return { not: condition(r) };
  const leaf: { [k: string]: unknown } = chance(r, 0.5)
    ? { field: pick(r, FIELDS) }
    : { tag: pick(r, TAGS) };
  const op = pick(r, ["equals", "in", "prefix", "suffix", "contains", "regex", "cidr", "gt", "lt"]);
  const text = () => pick(r, STRINGS.filter((t) => t && !t.includes("${")));
  leaf[op] = op === "in"
    ? [text(), text()]
    : op === "regex"
    ? pick(r, ["^ls", "a+b", "(x|y)z$", "^\\d+$", "\\bsecret\\b", "[a-z]{3,}", "(a+)+$"])
    : op === "cidr"
    ? pick(r, ["10.0.0.0/8", "::1/128", "0.0.0.0/0"])
    : op === "gt" || op === "lt"
    ? pick(r, [0, 100, -1, 0.5, "18446744073709551615"])
    : text();
  if (op === "regex" && chance(r, 0.3)) leaf.flags = "i";
  return leaf;
}

/** A pipeline (as an object for YAML) on `probes`, its outputs under `dir`, receivers at `url`. */
function pipeline(r: Random, probes: Probe[], url: string, dir: string) {
  const doc: { [section: string]: { [name: string]: { [k: string]: unknown } } } = {
    probes: {},
    transforms: {},
    windows: {},
    outputs: {},
  };
  const readable: string[] = [];
  for (const p of probes) {
    doc.probes[p] = { type: p };
    readable.push(p);
  }
  for (let i = int(r, 0, 4); i > 0; i--) {
    const name = `t${i}`;
    const inputs = [pick(r, readable)];
    const type = pick(r, ["filter", "redact", "tags", "ephemeral_port", "dns_domain"]);
    let stage: { [k: string]: unknown };
    switch (type) {
      case "filter":
        stage = { [chance(r, 0.5) ? "keep" : "drop"]: condition(r) };
        break;
      case "redact":
        stage = {
          fields: [pick(r, FIELDS), "cmd"],
          // defaults: false needs rules (nothing to redact otherwise: refused at load)
          ...(chance(r, 0.3)
            ? { defaults: chance(r, 0.5), rules: [{ pattern: "(t=)\\S+", replacement: "$1*" }] }
            : {}),
        };
        break;
      case "tags":
        // Not host or source: every record carries them (refused at load).
        stage = {
          add: { env: pick(r, STRINGS.filter((t) => t && !t.includes("${"))) },
          rename: { [pick(r, TAGS.slice(2))]: "renamed" },
          drop: [pick(r, TAGS.slice(2))],
        };
        break;
      case "ephemeral_port":
        stage = { range: pick(r, ["32768-60999", "1-65535", "1024-1024"]) };
        break;
      default:
        if (!probes.includes("dns")) continue;
        stage = { answers_from: "dns", max_entries: int(r, 1, 1000) };
    }
    doc.transforms[name] = { type, inputs, ...stage };
    readable.push(name);
  }
  for (let i = int(r, 0, 2); i > 0; i--) {
    const name = `w${i}`;
    doc.windows[name] = {
      inputs: [pick(r, readable)],
      every: pick(r, ["1s", "10s", "60s", "1h"]),
      group_by: [pick(r, TAGS), pick(r, TAGS)],
      fields: {
        n: { agg: "count" },
        s: { from: pick(r, FIELDS), agg: pick(r, ["sum", "mean", "max", "min", "last"]) },
      },
      max_series: int(r, 1, 50),
    };
    readable.push(name);
  }
  const sender = () => ({
    batch_size: int(r, 1, 50),
    batch_age: "50ms",
    timeout: chance(r, 0.9) ? pick(r, ["200ms", "400ms"]) : "1000h", // 1000h: refused at load
    max_backoff: "100ms",
    gzip: chance(r, 0.5),
    buffer_records: int(r, 1, 200),
    when_full: pick(r, ["block", "drop_oldest", "drop_newest"]),
    ...(chance(r, 0.3)
      ? { spool_dir: `${dir}/spool-${int(r, 0, 1e6)}`, spool_max_size: pick(r, ["4KiB", "1MiB"]) }
      : {}),
  });
  for (let i = int(r, 1, 3); i > 0; i--) {
    const name = `o${i}`;
    const inputs = [pick(r, readable), ...(chance(r, 0.3) ? [pick(r, readable)] : [])];
    const type = pick(r, ["file", "http", "otlp"]);
    if (type === "file") {
      doc.outputs[name] = {
        type,
        inputs: [...new Set(inputs)],
        path: `${dir}/${name}.out`,
        format: pick(r, ["json", "line_protocol"]),
        buffer: pick(r, ["1KiB", "64KiB"]),
        ...(chance(r, 0.3) ? { max_size: "4KiB", keep: int(r, 1, 3) } : {}),
      };
    } else if (type === "http") {
      const preset = pick(r, ["influxdb", "influxdb_v2", "datakit"]);
      doc.outputs[name] = {
        type,
        inputs: [...new Set(inputs)],
        preset,
        url,
        ...(preset === "influxdb" ? { database: "db", username: "u", password: "p" } : {}),
        ...(preset === "influxdb_v2" ? { org: "o", bucket: "b", token: "t" } : {}),
        ...sender(),
      };
    } else {
      doc.outputs[name] = {
        type,
        inputs: [...new Set(inputs)],
        url: `${url}/otlp`,
        headers: { "x-api-key": "k" },
        ...sender(),
      };
    }
  }
  return { version: 1, ...doc };
}

/** Makes and runs the case; what `main()` returned and said. */
export async function runCase({ seed, url, dir }: FuzzCase): Promise<FuzzResult> {
  const r = prng(seed);
  const probes = (["bash", "netflow", "dns"] as Probe[]).filter(() => chance(r, 0.6));
  if (probes.length === 0) probes.push("bash");
  const pipelineText = stringify(pipeline(r, probes, url, dir));
  const lines = recording(r, probes);
  const flags = [
    ...(chance(r, 0.5) ? ["--replay-skip-bad"] : []),
    "--duration",
    `${STOP_AFTER_MS / 1000}s`,
  ];
  await Deno.writeTextFile(`${dir}/pipeline.yaml`, pipelineText);
  await Deno.writeTextFile(`${dir}/recording.ndjson`, lines.join("\n") + "\n");

  const said: string[] = [];
  const log = {
    info: (m: string) => said.push(m),
    warn: (m: string) => said.push(`warning: ${m}`),
    debug: () => {},
  };
  let code: number | string;
  try {
    code = await main(
      ["--pipeline", `${dir}/pipeline.yaml`, "--replay", `${dir}/recording.ndjson`, ...flags],
      { log },
    );
  } catch (e) {
    code = `main() threw: ${(e as Error)?.stack ?? e}`;
  }
  return {
    code,
    lines: said,
    pipeline: pipelineText,
    recordingHead: lines.slice(0, 5).map((l) => l.slice(0, 300)).join("\n"),
    flags,
  };
}

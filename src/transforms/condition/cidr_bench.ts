/**
 * What a `cidr` condition costs per record (the networks are parsed once, at load). One
 * iteration tests 256 records of one form, so the figure per record is the time per
 * iteration / 256. "Seen again": the same 256 addresses each iteration (a host's flows repeat
 * few addresses); "all new": each iteration takes the next 256 of 65,536 addresses, so no
 * address is remembered and each is parsed.
 *
 *   deno bench --allow-read --allow-env=LOG_TOKENS,LOG_STREAM \
 *     --v8-flags=--enable-experimental-regexp-engine src/transforms/condition/cidr_bench.ts
 */
import type { ConfigError } from "../../errors.ts";
import { At, type Table } from "../../pipeline/schema.ts";
import { YamlSource } from "../../pipeline/yaml_source.ts";
import type { Record } from "../../record.ts";
import { parseCondition } from "./mod.ts";

function compile(yaml: string) {
  const errors: ConfigError[] = [];
  const { source } = YamlSource.parse("bench.yaml", yaml, () => undefined);
  const cond = parseCondition((source!.value as Table).when, new At(source!, "when", errors));
  if (!cond) throw new Error(errors.map((e) => e.message).join("\n"));
  return cond;
}

const YAML = `when: { field: ip, cidr: [10.0.0.0/8, 192.168.0.0/16, "fd00::/8"] }`;

function records(count: number, address: (i: number) => string): Record[] {
  return Array.from({ length: count }, (_, i) => ({
    measurement: "netflow",
    tags: { host: "web-1" },
    fields: { ip: address(i) },
    time: 0n,
  }));
}

const FORMS: [string, (i: number) => string][] = [
  ["IPv4", (i) => `${i % 2 ? 10 : 93}.${i >> 8}.${i & 255}.${(i * 13) % 256}`],
  ["IPv6", (i) => `${i % 2 ? "fd00" : "2001:db8"}::${i.toString(16)}:1`],
  ["IPv4-mapped IPv6", (i) => `::ffff:${i % 2 ? 10 : 93}.${i >> 8}.${i & 255}.1`],
];

let matched = 0;
for (const [name, address] of FORMS) {
  const again = records(256, address);
  const seenAgain = compile(YAML);
  Deno.bench(`cidr condition on 256 ${name} records, addresses seen again`, () => {
    for (const r of again) if (seenAgain.test(r)) matched++;
  });
  const all = records(65_536, address);
  const allNew = compile(YAML);
  let next = 0;
  Deno.bench(`cidr condition on 256 ${name} records, addresses all new`, () => {
    for (let i = 0; i < 256; i++) if (allNew.test(all[next++ & 65_535])) matched++;
  });
}

/**
 * What a `cidr` condition costs per record: it parses the record's address text every time
 * (the networks are parsed once, at load). One iteration tests 256 records, a mix of the forms
 * netflow and dnsflow records carry, so the figure per record is the time per iteration / 256.
 *
 *   deno bench --allow-read --allow-env=LOG_TOKENS,LOG_STREAM \
 *     --v8-flags=--enable-experimental-regexp-engine src/transforms/condition/cidr_bench.ts
 */
import type { ConfigError } from "../../errors.ts";
import { At, type Table } from "../../pipeline/schema.ts";
import { YamlSource } from "../../pipeline/yaml_source.ts";
import type { Record } from "../../record.ts";
import { type Condition, parseCondition } from "./mod.ts";

function compile(yaml: string): Condition {
  const errors: ConfigError[] = [];
  const { source } = YamlSource.parse("bench.yaml", yaml, () => undefined);
  const cond = parseCondition((source!.value as Table).when, new At(source!, "when", errors));
  if (!cond) throw new Error(errors.map((e) => e.message).join("\n"));
  return cond;
}

const CIDR = compile(`when: { field: ip, cidr: [10.0.0.0/8, 192.168.0.0/16, "fd00::/8"] }`);

function records(addresses: (i: number) => string): Record[] {
  return Array.from({ length: 256 }, (_, i) => ({
    measurement: "netflow",
    tags: { host: "web-1" },
    fields: { ip: addresses(i) },
    time: 0n,
  }));
}

const V4 = records((i) => `${i % 2 ? 10 : 93}.${i}.${(i * 7) % 256}.${(i * 13) % 256}`);
const V6 = records((i) => `${i % 2 ? "fd00" : "2001:db8"}::${i.toString(16)}:1`);
const MAPPED = records((i) => `::ffff:${i % 2 ? 10 : 93}.${i}.0.1`);

let matched = 0;
for (
  const [name, batch] of [["IPv4", V4], ["IPv6", V6], ["IPv4-mapped IPv6", MAPPED]] as const
) {
  Deno.bench(`cidr condition on 256 ${name} records`, () => {
    for (const r of batch) if (CIDR.test(r)) matched++;
  });
}

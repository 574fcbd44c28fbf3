/**
 * The `dns_domain` transform: fills a netflow record's `dst_domain` with the name the host last
 * looked up for its `dst_ip`, from the DNS answers a `dns` probe saw.
 *
 * ```yaml
 * probes:
 *   dns: { type: dns }
 *   netflow: { type: netflow }
 * transforms:
 *   domains:
 *     type: dns_domain
 *     inputs: [netflow]
 *     answers_from: dns   # a side input: the probe's answers, not its records
 *     max_ttl: 1h
 * ```
 *
 * The `dns` probe hands each answer to this stage with `ctx.emitSide` as a `dns_answer` record
 * (`fields: {name, address, ttl}`, the asked name with CNAMEs resolved); the runtime calls
 * {@linkcode Stage.side} with it. Each answer goes into a {@linkcode DomainCache} for its TTL
 * clamped to [min_ttl, max_ttl]. `min_ttl` matters for TTL-0 answers: dnsmasq gives its local
 * records TTL 0, yet the connection that follows the answer still belongs to that name.
 *
 * A record whose `ip_tag` is set and whose `tag` is missing or empty is looked up: a name that
 * was live at any time in the span the record sums (ctx.inputSpanMs: netflow's records sum a
 * poll, so a connection closed early in it still gets the name it was made with) names it; on a
 * hit it goes on as a copy with the tag set (another branch of the pipeline may hold the
 * input), its fields shared. Any other record goes on unchanged (the same object),
 * whatever its measurement. A name already there is left alone.
 *
 * The collector itself never sends a DNS query (no reverse lookups): names come only from
 * answers to queries the host's own programs made, so a flow to an address nobody resolved
 * (a literal IP, a peer that connected in) keeps an empty `dst_domain`.
 *
 * Counters: `domain_hits`, `domain_misses`, `domain_evictions` (live names lost to
 * `max_entries`), `domain_expirations`, and the gauge `domain_cache_entries`.
 */
import type { ConfigError } from "../errors.ts";
import type { At } from "../pipeline/schema.ts";
import type { Stage, StageDef } from "../pipeline/stage.ts";
import type { Record } from "../record.ts";
import { formatDuration } from "../units.ts";
import { DomainCache } from "./domain_cache.ts";

/** Options of a `dns_domain` transform. */
export interface DnsDomainConfig {
  /** The stage whose side records are DNS answers (a `dns` probe). */
  answers_from: string;
  /** The most addresses remembered. */
  max_entries: number;
  /** Shortest life of a name, in milliseconds. */
  min_ttl: number;
  /** Longest life of a name, in milliseconds. */
  max_ttl: number;
  /** The tag to fill. */
  tag: string;
  /** The tag holding the address to look up. */
  ip_tag: string;
}

/** The measurement of the side records this stage reads; others are ignored. */
export const DNS_ANSWER = "dns_answer";

/** `type: dns_domain`: names netflow destinations from the host's DNS answers. */
export const dnsDomainTransform: StageDef<DnsDomainConfig> = {
  type: "dns_domain",
  kind: "transform",
  describe: "Fills dst_domain from the DNS answers a dns probe saw for dst_ip (sends no queries).",
  schema: {
    answers_from: {
      type: "stage",
      required: true,
      doc: "The dns probe whose answers name addresses (a side input, not one of inputs).",
    },
    max_entries: {
      type: "integer",
      default: 100_000,
      min: 1,
      doc: "The most addresses remembered; the least recently used go first.",
    },
    min_ttl: {
      type: "duration",
      default: "10s",
      doc:
        "Shortest life of a name: TTL-0 answers (dnsmasq's local records) still name the next connection.",
    },
    max_ttl: {
      type: "duration",
      default: "1h",
      doc: "Longest life of a name, however long the answer's TTL.",
    },
    tag: { type: "string", default: "dst_domain", doc: "The tag to fill when missing or empty." },
    ip_tag: { type: "string", default: "dst_ip", doc: "The tag holding the address to look up." },
  },
  validate(config, at: At): ConfigError[] {
    const errors: ConfigError[] = [];
    // Durations are above zero (the schema sees to it); only their order is left to check.
    if (config.min_ttl > config.max_ttl) {
      errors.push(
        at.child("min_ttl").problem(
          `${formatDuration(config.min_ttl)} is above max_ttl ${formatDuration(config.max_ttl)}`,
        ),
      );
    }
    if (config.tag === config.ip_tag) {
      errors.push(at.child("tag").problem(`is also ip_tag: the address would be overwritten`));
    }
    return errors;
  },
  build(config, ctx): Stage {
    const { tag, ip_tag: ipTag } = config;
    const span = BigInt(ctx.inputSpanMs) * 1_000_000n;
    const cache = new DomainCache({
      maxEntries: config.max_entries,
      minTtlMs: config.min_ttl,
      maxTtlMs: config.max_ttl,
    });
    const counters = ctx.counters;
    const hits = counters.handle("domain_hits"), misses = counters.handle("domain_misses");
    // Evictions and expirations happen inside the cache: pass on what moved since last time.
    let evictions = 0, expirations = 0, entries = -1;
    const sync = () => {
      if (cache.evictions !== evictions) {
        counters.add("domain_evictions", cache.evictions - evictions);
        evictions = cache.evictions;
      }
      if (cache.expirations !== expirations) {
        counters.add("domain_expirations", cache.expirations - expirations);
        expirations = cache.expirations;
      }
      if (cache.size !== entries) {
        entries = cache.size;
        counters.set("domain_cache_entries", entries);
      }
    };
    sync();
    return {
      push(record: Record) {
        const tags = record.tags;
        const ip = tags[ipTag];
        if (!ip || tags[tag]) return ctx.emit(record);
        // Any time in the span the record sums: a name may have expired since it named the flow.
        const name = cache.lookup(ip, ctx.clock.now() - span);
        if (name === undefined) misses.inc();
        else hits.inc();
        sync();
        ctx.emit(name === undefined ? record : { ...record, tags: { ...tags, [tag]: name } });
      },
      side(_key, record) {
        // Only answers_from is a side input; other measurements it may send are not answers.
        if (record.measurement !== DNS_ANSWER) return;
        const { name, address, ttl } = record.fields;
        if (typeof name !== "string" || name === "" || typeof address !== "string") return;
        if (typeof ttl !== "bigint") return;
        // Now, not the answer's time: lookups use now too, so the TTL runs on one clock.
        cache.add(address, name, ttl, ctx.clock.now());
        sync();
      },
      flush() {},
      close() {
        cache.clear();
      },
    };
  },
  explain(config) {
    const ttl = `${formatDuration(config.min_ttl)}..${formatDuration(config.max_ttl)}`;
    return {
      details: [
        `${config.ip_tag} → ${config.tag} from the DNS answers of ${config.answers_from}, ` +
        `each kept for its TTL clamped to ${ttl}, at most ${config.max_entries} addresses`,
        "sends no DNS queries (no reverse lookups)",
      ],
    };
  },
  example: { answers_from: "dns", max_entries: 100_000, min_ttl: "10s", max_ttl: "1h" },
  tagsUsed: (config) => [config.ip_tag, config.tag],
  answerTtl: (config) => ({ minMs: config.min_ttl, maxMs: config.max_ttl }),
};

/**
 * The address → name cache behind the `dns_domain` transform: what the host's DNS answers said
 * each IP address is called, for as long as the answer's TTL allows.
 *
 * - Each entry lives for its answer's TTL clamped to [min_ttl, max_ttl], and is expired from
 *   `expires` on: an entry added at `t` with a 10 s TTL is returned at `t + 10s - 1ns`, not at
 *   `t + 10s`. Expired entries are never returned; the one a lookup meets is removed then.
 * - At most `maxEntries` addresses, least recently used first out (a hit or a new answer is a
 *   use). A `Map` finds the entry; a doubly linked list through the entries keeps their order.
 *   A `Map` alone (re-set on every use, evict `keys().next()`) is far slower in V8: deleted
 *   slots pile up at the head of its table until a rehash and every eviction walks them, so
 *   1,000,000 answers into 100,000 entries took 33 s instead of well under one.
 * - An entry pushed out that had already expired counts as an expiration, not an eviction, so
 *   `evictions` counts only live names lost to the bound (the sign it is too small).
 * - One name per address: the newest answer replaces the name and the expiry (a CDN address
 *   shared by many names takes the name last asked for).
 * - Addresses are compared in one text form, so an answer's text and netflow's `dst_ip` match:
 *   IPv4 dotted decimal, IPv6 lower-case compressed (RFC 5952) without a `%zone`, and an
 *   IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) as the IPv4 address it carries.
 *
 * Time is passed in (nanoseconds since the epoch, as `Clock.now()` gives it), never read here.
 *
 * @example
 * ```ts
 * const cache = new DomainCache({ maxEntries: 100_000, minTtlMs: 10_000, maxTtlMs: 3_600_000 });
 * cache.add("2001:DB8::1", "example.com", 300n, now);
 * cache.lookup("2001:db8:0:0:0:0:0:1", now); // "example.com"
 * ```
 */
import { isIpv4Text, parseIp, unmapIpv4 } from "../ip.ts";

/** Bounds of a {@linkcode DomainCache}. */
export interface DomainCacheOptions {
  /** The most addresses held (at least 1). */
  maxEntries: number;
  /** The shortest life of an entry, in milliseconds, whatever the answer's TTL. */
  minTtlMs: number;
  /** The longest life of an entry, in milliseconds. */
  maxTtlMs: number;
}

/** One address's name, linked into the recency list (`older` → `newer`). */
interface Entry {
  key: string;
  name: string;
  /** Nanoseconds since the epoch from which the entry is expired. */
  expires: bigint;
  older: Entry;
  newer: Entry;
}

const NS_PER_MS = 1_000_000n;

/**
 * The text form addresses are compared in, or undefined when `text` is not an IP address.
 *
 * @example
 * ```ts
 * normalizeAddress("2001:DB8:0::1"); // "2001:db8::1"
 * normalizeAddress("::ffff:10.0.0.1"); // "10.0.0.1"
 * normalizeAddress("10.1"); // undefined: a short form no resolver or socket writes
 * ```
 */
export function normalizeAddress(text: string): string | undefined {
  // A dotted quad is already in its one form: the common case never reaches ipaddr.js, whose
  // parse is most of the cost.
  if (isIpv4Text(text)) return text;
  // The zone names a local interface, which neither DNS answers nor netflow records carry.
  const address = parseIp(text, { zone: true });
  return address && unmapIpv4(address).toString();
}

/** IP address → domain name, each for its clamped TTL, in an LRU of bounded size. */
export class DomainCache {
  /** Lookups that found a live name. */
  hits = 0;
  /** Lookups that found none (nothing held, expired, or not an address). */
  misses = 0;
  /** Live entries pushed out to stay within `maxEntries`. */
  evictions = 0;
  /** Entries removed because their time was up. */
  expirations = 0;

  readonly #entries = new Map<string, Entry>();
  /** The list's sentinel: `newer` is the least recently used entry, `older` the most. */
  readonly #ends: Entry;
  readonly #maxEntries: number;
  readonly #minTtlMs: number;
  readonly #maxTtlMs: number;

  constructor(options: DomainCacheOptions) {
    if (!(options.maxEntries >= 1) || !(options.minTtlMs <= options.maxTtlMs)) {
      throw new RangeError(
        `DomainCache needs maxEntries >= 1 and minTtlMs <= maxTtlMs, got ${
          JSON.stringify(options)
        }`,
      );
    }
    this.#maxEntries = options.maxEntries;
    this.#minTtlMs = options.minTtlMs;
    this.#maxTtlMs = options.maxTtlMs;
    const ends = { key: "", name: "", expires: 0n } as Entry;
    ends.older = ends.newer = ends;
    this.#ends = ends;
  }

  /** How many addresses are held (expired ones not yet met included). */
  get size(): number {
    return this.#entries.size;
  }

  /** How long an answer with `ttlSeconds` is kept, in milliseconds (the clamp). */
  lifetimeMs(ttlSeconds: bigint): number {
    // Compared as bigint first: a TTL near 2^32 s times 1000 is still exact.
    const ms = ttlSeconds * 1000n;
    if (ms <= BigInt(this.#minTtlMs)) return this.#minTtlMs;
    if (ms >= BigInt(this.#maxTtlMs)) return this.#maxTtlMs;
    return Number(ms);
  }

  /**
   * Records that `address` is `name`, answered at `nowNs` with `ttlSeconds`. A newer answer
   * replaces an older one's name and expiry. Returns false (and keeps nothing) when `address`
   * is not an IP address.
   */
  add(address: string, name: string, ttlSeconds: bigint, nowNs: bigint): boolean {
    const key = normalizeAddress(address);
    if (key === undefined) return false;
    const expires = nowNs + BigInt(this.lifetimeMs(ttlSeconds)) * NS_PER_MS;
    const held = this.#entries.get(key);
    if (held !== undefined) {
      held.name = name;
      held.expires = expires;
      this.#touch(held);
      return true;
    }
    if (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#ends.newer;
      this.#remove(oldest);
      if (oldest.expires <= nowNs) this.expirations++;
      else this.evictions++;
    }
    const ends = this.#ends;
    const entry: Entry = { key, name, expires, older: ends.older, newer: ends };
    ends.older.newer = entry;
    ends.older = entry;
    this.#entries.set(key, entry);
    return true;
  }

  /** The name `address` had in a live answer at `nowNs`, or undefined. */
  lookup(address: string, nowNs: bigint): string | undefined {
    // Text already in the one form (netflow's dst_ip is) finds its entry without a parse:
    // normalizing is idempotent, so a key equal to `address` is the one its normal form finds.
    // An IPv6 hit took 2.7 us through ipaddr.js.
    let entry = this.#entries.get(address);
    if (entry === undefined) {
      const key = normalizeAddress(address);
      if (key !== undefined && key !== address) entry = this.#entries.get(key);
    }
    if (entry === undefined) {
      this.misses++;
      return undefined;
    }
    if (entry.expires <= nowNs) {
      this.#remove(entry);
      this.expirations++;
      this.misses++;
      return undefined;
    }
    this.#touch(entry);
    this.hits++;
    return entry.name;
  }

  /** Forgets every entry (the counts stay). */
  clear(): void {
    this.#entries.clear();
    this.#ends.older = this.#ends.newer = this.#ends;
  }

  /** Makes `entry` the most recently used. */
  #touch(entry: Entry): void {
    const ends = this.#ends;
    if (ends.older === entry) return;
    entry.older.newer = entry.newer;
    entry.newer.older = entry.older;
    entry.older = ends.older;
    entry.newer = ends;
    ends.older.newer = entry;
    ends.older = entry;
  }

  #remove(entry: Entry): void {
    entry.older.newer = entry.newer;
    entry.newer.older = entry.older;
    this.#entries.delete(entry.key);
  }
}

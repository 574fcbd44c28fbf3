/**
 * Linux capabilities the probes need instead of root, by name. Each probe's `StageDef` lists
 * its own (measured: docs/capabilities.md); the start-up check and `--doctor` compare them with
 * what this process holds, through capget(2).
 */

/** Capability numbers (linux/capability.h) of those probes may ask for. */
const BITS: { [name: string]: bigint } = {
  CAP_DAC_READ_SEARCH: 2n,
  CAP_NET_ADMIN: 12n,
  CAP_SYS_ADMIN: 21n,
  CAP_SYS_RESOURCE: 24n,
  CAP_PERFMON: 38n,
  CAP_BPF: 39n,
};

// The kernel's BPF checks take CAP_SYS_ADMIN in place of these (bpf_capable, perfmon_capable,
// bpf_net_capable): a process that holds it lacks none of them.
const IMPLIED_BY_SYS_ADMIN = new Set(["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"]);

/** Whether the capability set `held` (a capget mask) holds `name`. */
export function holds(held: bigint, name: string): boolean {
  const has = (n: string) => (held >> BITS[n] & 1n) === 1n;
  return has(name) || (IMPLIED_BY_SYS_ADMIN.has(name) && has("CAP_SYS_ADMIN"));
}

/** A probe, as far as capabilities go. */
export interface NeedsCapabilities {
  name: string;
  capabilities: readonly string[];
}

/** What `probes` need, each capability with the probes that need it, in a stable order. */
export function neededCapabilities(probes: NeedsCapabilities[]): Map<string, string[]> {
  const needs = new Map<string, string[]>();
  for (const p of probes) {
    for (const cap of p.capabilities) needs.set(cap, [...needs.get(cap) ?? [], p.name]);
  }
  return needs;
}

/**
 * The capabilities `probes` need that `held` lacks, as one phrase
 * (`CAP_NET_ADMIN (netflow, dns)`), and the fix; undefined when nothing is missing.
 */
export function missingCapabilities(
  probes: NeedsCapabilities[],
  held: bigint,
): { missing: string; fix: string } | undefined {
  const needs = neededCapabilities(probes);
  const missing = [...needs.keys()].filter((c) => !holds(held, c));
  if (missing.length === 0) return undefined;
  const all = [...needs.keys()].map((c) => c.slice(4).toLowerCase());
  return {
    missing: missing.map((c) => `${c} (${needs.get(c)!.join(", ")})`).join(", "),
    fix: `run as root, or with exactly these: setpriv --inh-caps=+${all.join(",+")} ` +
      `--ambient-caps=+${all.join(",+")} ... (AmbientCapabilities= in systemd; ` +
      "docs/capabilities.md)",
  };
}

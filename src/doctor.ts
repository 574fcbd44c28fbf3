/**
 * `--doctor`: checks, one line each, what this pipeline needs from this machine, and says for
 * each problem the command that fixes it. It changes nothing that outlives it: each probe is
 * loaded, attached and detached again; outputs are connected to (or their listen address bound)
 * and closed. Exit 0 when nothing blocks, 1 otherwise.
 *
 * ```
 * ok    privileges: holds CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN (needed by shells, flows)
 * FAIL  cgroup v2: no cgroup v2 hierarchy is mounted → mount -t cgroup2 none /sys/fs/cgroup
 * ```
 */
import { effectiveCapabilities, readable, readKernelFile } from "../ffi/libc.ts";
import { libbpf } from "../ffi/libbpf.ts";
import { Counters } from "./counters.ts";
import { describeError } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { Pipeline, StageNode } from "./pipeline/load.ts";
import { missingPermission } from "./pipeline/permissions.ts";
import { LiveClock } from "./pipeline/clock.ts";
import { stageContext } from "./pipeline/context.ts";
import type { HostCheck, ProbeStage } from "./pipeline/stage.ts";
import { missingCapabilities, neededCapabilities } from "./system/capabilities.ts";
import { bpfObjectsEmbedded, bpfObjectSource } from "./system/bpf_objects.ts";
import { liveHostFacts } from "./system/host_facts.ts";
import { splitHostPort } from "./outputs/url.ts";

/** One line of the report. */
export interface Check {
  status: "ok" | "FAIL" | "warn";
  what: string;
  detail: string;
  /** The command or change that fixes it (FAIL and warn). */
  fix?: string;
}

/** The capabilities `probes` need and, of those, the ones missing from `held`. */
export function capabilityCheck(probes: StageNode[], held: bigint): Check {
  const needing = probes.map((p) => ({ name: p.name, capabilities: p.def.capabilities ?? [] }));
  const names = [...neededCapabilities(needing).keys()];
  const who = needing.filter((p) => p.capabilities.length).map((p) => p.name);
  if (names.length === 0) return { status: "ok", what: "privileges", detail: "none needed" };
  const lacking = missingCapabilities(needing, held);
  return lacking
    ? { status: "FAIL", what: "privileges", detail: `missing ${lacking.missing}`, fix: lacking.fix }
    : {
      status: "ok",
      what: "privileges",
      detail: `holds ${names.join(", ")} (needed by ${who.join(", ")})`,
    };
}

async function check(what: string, fn: () => Check | Promise<Check>): Promise<Check> {
  try {
    return await fn();
  } catch (e) {
    // Deno's own errors (ConnectionRefused, AddrInUse...) read well as their message alone.
    const plain = Object.values(Deno.errors).some((E) => e instanceof E);
    return { status: "FAIL", what, detail: plain ? (e as Error).message : describeError(e) };
  }
}

/** Runs every check for `pipeline`; `onCheck` sees each line as soon as it is known. */
export async function doctor(pipeline: Pipeline, onCheck: (c: Check) => void): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (c: Check) => {
    checks.push(c);
    onCheck(c);
  };
  const probes = pipeline.stages.filter((s) => s.kind === "probe");
  const kernelProbes = probes.filter((p) => p.def.bpfObject);

  add(
    await check("permissions", () => {
      const missing = missingPermission(pipeline);
      return missing
        ? {
          status: "FAIL",
          what: "permissions",
          detail: `this process lacks ${missing}`,
          fix: "run the command --explain prints",
        }
        : { status: "ok", what: "permissions", detail: "holds every Deno flag the pipeline needs" };
    }),
  );
  add(capabilityCheck(probes, effectiveCapabilities()));
  add(
    await check("kernel", () => ({
      status: "ok",
      what: "kernel",
      detail: readKernelFile("/proc/sys/kernel/osrelease").trim(),
    })),
  );
  if (kernelProbes.length) {
    add(
      readable("/sys/kernel/btf/vmlinux")
        ? { status: "ok", what: "BTF", detail: "/sys/kernel/btf/vmlinux (CO-RE)" }
        : {
          status: "FAIL",
          what: "BTF",
          detail: "no /sys/kernel/btf/vmlinux",
          fix: "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distributions since 5.4)",
        },
    );
    add(
      await check("libbpf", () => {
        const major = libbpf().libbpf_major_version(), minor = libbpf().libbpf_minor_version();
        return major >= 1
          ? { status: "ok", what: "libbpf", detail: `${major}.${minor} (libbpf.so.1)` }
          : {
            status: "FAIL",
            what: "libbpf",
            detail: `${major}.${minor}, needs 1.0 or later`,
            fix: "apt-get install libbpf1",
          };
      }),
    );
    add({
      status: "ok",
      what: "tracefs, bpffs",
      detail: "not needed: probes attach by BTF (tp_btf), uprobe and cgroup, and pin nothing",
    });
    for (const name of new Set(kernelProbes.map((p) => p.def.bpfObject!))) {
      const source = bpfObjectSource(name);
      add(
        bpfObjectsEmbedded() || readable(source)
          ? { status: "ok", what: `BPF object ${name}`, detail: source }
          : {
            status: "FAIL",
            what: `BPF object ${name}`,
            detail: `${source} is missing`,
            fix: "deno task build",
          },
      );
    }
  }
  // What the probes' defs add (src/pipeline/stage.ts HostCheck): a host-wide check once.
  const hostChecksDone = new Set<HostCheck>();
  for (const p of probes) {
    for (const c of p.def.checks ?? []) {
      if (c.host && hostChecksDone.has(c)) continue;
      if (c.host) hostChecksDone.add(c);
      const what = c.host ? c.what : `probes.${p.name} ${c.what}`;
      add(await check(what, () => ({ status: "ok", what, detail: c.run(p.config) })));
    }
  }
  const blocked = checks.some((c) => c.status === "FAIL");
  for (const p of kernelProbes) {
    if (blocked) {
      add({
        status: "warn",
        what: `probes.${p.name}`,
        detail: "not tried: fix the failures above first",
      });
      continue;
    }
    add(await check(`probes.${p.name}`, () => tryProbe(p)));
  }
  for (const o of pipeline.stages.filter((s) => s.kind === "output")) {
    for (const c of await outputChecks(o)) add(c);
  }
  return checks;
}

/** Loads, attaches and detaches one probe; its records go nowhere. */
async function tryProbe(p: StageNode): Promise<Check> {
  const counters = new Counters();
  const warnings: string[] = [];
  const log: Logger = {
    info: () => {},
    warn: (m) => warnings.push(m),
    debug: () => {},
  };
  // A trial load: alone, with nothing shared, its records going nowhere, nothing to stop.
  const ctx = stageContext({
    name: p.name,
    host: "doctor",
    clock: new LiveClock(),
    hostFacts: liveHostFacts(),
    log,
    counters,
  });
  const started = performance.now();
  const stage = await p.def.build(p.config, ctx) as ProbeStage;
  const attachMs = performance.now() - started;
  const attached = stage.attached?.length ?? 0;
  await stage.close();
  return {
    status: "ok",
    what: `probes.${p.name}`,
    detail: `loaded and attached ${attached} program${attached === 1 ? "" : "s"} in ` +
      `${attachMs.toFixed(0)} ms, detached` + (warnings.length ? `; ${warnings[0]}` : ""),
  };
}

/** Reachability of an output: its receivers answer a TCP connect, its listen address is free. */
async function outputChecks(o: StageNode): Promise<Check[]> {
  const e = o.def.explain?.(o.config);
  const checks: Check[] = [];
  const listens = "listen" in o.def.schema;
  for (const address of e?.net ?? []) {
    const what = `outputs.${o.name}`;
    const [hostname, port] = splitHostPort(address);
    if (Deno.permissions.querySync({ name: "net", host: address }).state !== "granted") {
      checks.push({ status: "warn", what, detail: `${address} not tried: no --allow-net for it` });
      continue;
    }
    checks.push(
      await check(what, async () => {
        if (listens) {
          Deno.listen({ hostname, port }).close();
          return { status: "ok", what, detail: `can listen on ${address}` };
        }
        const conn = await connectWithin(hostname, port, 3000).catch((e: Error) => e);
        if (conn instanceof Error) {
          return { status: "FAIL", what, detail: `${address}: ${conn.message}` };
        }
        conn.close();
        return { status: "ok", what, detail: `${address} accepts connections` };
      }).then((c) =>
        c.status === "FAIL"
          ? {
            ...c,
            status: listens ? "FAIL" as const : "warn" as const,
            fix: listens
              ? "free the address, or change listen:"
              : "start the receiver, or fix url: (records are kept and retried meanwhile)",
          }
          : c
      ),
    );
  }
  for (const path of e?.writes ?? []) {
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
    const what = `outputs.${o.name}`;
    checks.push(
      readable(dir) ? { status: "ok", what, detail: `${dir}/ exists for ${path}` } : {
        status: "FAIL",
        what,
        detail: `no directory ${dir}/ for ${path}`,
        fix: `mkdir -p ${dir}`,
      },
    );
  }
  return checks;
}

async function connectWithin(hostname: string, port: number, ms: number): Promise<Deno.Conn> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      Deno.connect({ hostname, port }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The report's line for one check. */
export function formatCheck(c: Check): string {
  return `${c.status.padEnd(5)} ${c.what}: ${c.detail}${c.fix ? ` → ${c.fix}` : ""}`;
}

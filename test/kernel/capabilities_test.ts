/**
 * The collector without root: run as uid 65534 through `setpriv` with exactly the capabilities
 * the probes declare (their `StageDef.capabilities`, the table of docs/capabilities.md), it
 * collects; with one of them removed, it stops with the one line the doc quotes. This is what the systemd unit and the DaemonSet rely on. The bash probe's row
 * (no CAP_SYS_ADMIN) needs Linux 6.6 or later, for its uprobe_multi link.
 */
import assert from "node:assert/strict";
import { Collector, tempPipeline } from "./_collector.ts";
import { kernelTest } from "./_kernel.ts";
import { BASH, PROMPT, Tmux } from "./_tmux.ts";
import { ROOT, runTaskArgs } from "../_run_command.ts";
import { PROBES } from "../../src/probes/mod.ts";
import { defaultKernelProbes, probeObjects } from "../_default_probes.ts";

const NOBODY = 65534;
const NEEDS = { objects: probeObjects(), tools: ["setpriv", "tmux"] };

/** The capabilities all of `probeTypes` declare, sorted. */
function capabilitiesOf(...probeTypes: string[]): string[] {
  const caps = new Set<string>();
  for (const type of probeTypes) {
    const def = PROBES.get(type);
    assert.ok(def, `no probe type ${type}`);
    for (const c of def.capabilities ?? []) caps.add(c);
  }
  return [...caps].sort();
}

/** Bit mask of capabilities (CAP_BPF → 1 << 39), as /proc/<pid>/status prints CapEff. */
const CAP_NUMBERS: Record<string, number> = {
  CAP_NET_ADMIN: 12,
  CAP_SYS_ADMIN: 21,
  CAP_PERFMON: 38,
  CAP_BPF: 39,
};
function mask(caps: string[]): bigint {
  return caps.reduce((m, c) => m | 1n << BigInt(CAP_NUMBERS[c]), 0n);
}

/**
 * `deno task run`'s command, as uid/gid 65534 with no groups and exactly `caps` (ambient, so
 * they survive the exec into deno). Deno gets a cache directory it cannot write (it then
 * compiles in memory): root's cache is not readable by nobody.
 */
function asNobody(caps: string[]): string[] {
  const list = caps.map((c) => `+${c.replace(/^CAP_/, "").toLowerCase()}`).join(",");
  const capFlags = caps.length
    ? [`--inh-caps=-all,${list}`, `--ambient-caps=${list}`, `--bounding-set=-all,${list}`]
    : ["--inh-caps=-all", "--bounding-set=-all"];
  return [
    `--reuid=${NOBODY}`,
    `--regid=${NOBODY}`,
    "--clear-groups",
    ...capFlags,
    "--",
    "env",
    "DENO_DIR=/nonexistent/deno",
    "HOME=/nonexistent",
    "DENO_NO_UPDATE_CHECK=1",
    Deno.execPath(),
    ...runTaskArgs().slice(0, -1),
    `${RUN_ROOT}src/main.ts`,
  ];
}

/** The collector started through setpriv as nobody with `caps`, and what it writes. */
function nobodyCollector(caps: string[], pipeline: string, args: string[] = []): Collector {
  // setpriv and env exec, so the child's pid is deno's.
  return new Collector({
    command: "setpriv",
    args: [...asNobody(caps), "--pipeline", pipeline, ...args],
    cwd: RUN_ROOT,
  });
}

/** A one-probe pipeline (that probe required) under RUN_ROOT, readable by uid 65534. */
function onePipeline(type: string): string {
  const text = `version: 1
probes:
  p: { type: ${type}, required: true }
outputs:
  out: { type: stdout, inputs: [p], format: json }
`;
  let path: string;
  if (RUN_ROOT === ROOT) {
    path = tempPipeline(text);
  } else {
    Deno.mkdirSync(`${RUN_ROOT}build/tmp`, { recursive: true });
    path = Deno.makeTempFileSync({ dir: `${RUN_ROOT}build/tmp`, suffix: ".yaml" });
    Deno.writeTextFileSync(path, text);
  }
  Deno.chmodSync(path, 0o644);
  return path;
}

/** The first line of /proc/<pid>/status that starts with `key`, its value. */
function procStatus(pid: number, key: string): string {
  const line = Deno.readTextFileSync(`/proc/${pid}/status`).split("\n")
    .find((l) => l.startsWith(`${key}:`));
  return line?.split(/\s+/).slice(1).join(" ") ?? "";
}

/** Whether uid 65534 can reach `dir`: every directory on its path searchable by others. */
function reachableByOthers(dir: string): boolean {
  for (let d = dir.replace(/\/$/, ""); d; d = d.slice(0, d.lastIndexOf("/"))) {
    if ((Deno.statSync(d).mode! & 0o001) === 0) return false;
  }
  return true;
}

/**
 * A copy of what the collector runs from, in a directory uid 65534 can read, for when the
 * repository itself is out of nobody's reach (a clone under /root); removed at exit.
 */
function stagedCopy(): string {
  const dir = Deno.makeTempDirSync({ prefix: "ebpf-caps-" });
  Deno.chmodSync(dir, 0o755);
  Deno.mkdirSync(`${dir}/build`);
  const copy = (from: string, to: string) => {
    const out = new Deno.Command("cp", { args: ["-a", `${ROOT}${from}`, `${dir}/${to}`] })
      .outputSync();
    if (!out.success) throw new Error(`cp ${from}: ${new TextDecoder().decode(out.stderr)}`);
  };
  for (const f of ["src", "ffi", "node_modules", "deno.json", "deno.lock", "pipeline.yaml"]) {
    copy(f, f);
  }
  copy("build/bpf", "build/bpf");
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  return `${dir}/`;
}

const RUN_ROOT = reachableByOthers(ROOT) ? ROOT : stagedCopy();

kernelTest(
  "default pipeline as uid 65534 with exactly the documented capabilities collects",
  NEEDS,
  async () => {
    const pipeline = `${RUN_ROOT}pipeline.yaml`;
    const caps = capabilitiesOf(...defaultKernelProbes().map((p) => p.type));
    const nonce = crypto.randomUUID().slice(0, 8);
    await using tmux = new Tmux();
    await tmux.start("root", BASH);
    await tmux.waitForScreen("root", PROMPT);

    await using collector = nobodyCollector(caps, pipeline);
    await collector.attached();
    // The process really is nobody holding exactly that set (setpriv execs, so the pid is deno's).
    assert.equal(procStatus(collector.pid, "Uid"), `${NOBODY} ${NOBODY} ${NOBODY} ${NOBODY}`);
    assert.equal(BigInt(`0x${procStatus(collector.pid, "CapEff")}`), mask(caps));
    for (const probe of defaultKernelProbes()) {
      assert.match(collector.stderr, new RegExp(`^attached ${probe.name}: `, "m"));
    }
    // Not the perf uprobes, which would have needed CAP_SYS_ADMIN (nor for a command's end).
    assert.match(
      collector.stderr,
      /^attached bash: uretprobe\.multi \S+:readline\w*, uprobe\.multi \S+:parse_command, /m,
    );
    assert.doesNotMatch(collector.stderr, /disabled/);

    const cmd = `echo as-nobody-${nonce}`;
    await tmux.type("root", cmd);
    await collector.waitFor("the typed command", () => collector.stdout.includes(nonce));
    const status = await collector.stop("SIGINT");
    assert.equal(status.code, 0, collector.stderr);
    const [r] = collector.records().filter((r) => r.fields.cmd === cmd);
    assert.equal(r.measurement, "bash");
    assert.equal(r.fields.user, "root");
  },
);

kernelTest(
  "bash alone as uid 65534 with CAP_BPF and CAP_PERFMON only: a uprobe_multi link, commands arrive",
  NEEDS,
  async () => {
    const caps = capabilitiesOf("bash");
    assert.deepEqual(caps, ["CAP_BPF", "CAP_PERFMON"]);
    const nonce = crypto.randomUUID().slice(0, 8);
    await using tmux = new Tmux();
    await tmux.start("root", BASH);
    await tmux.waitForScreen("root", PROMPT);

    await using collector = nobodyCollector(caps, onePipeline("bash"));
    await collector.attached();
    assert.equal(BigInt(`0x${procStatus(collector.pid, "CapEff")}`), mask(caps));
    assert.match(
      collector.stderr,
      /^attached p: uretprobe\.multi \S+:readline\w*, uprobe\.multi \S+:parse_command, /m,
    );

    const cmd = `echo bpf-perfmon-only-${nonce}`;
    await tmux.type("root", cmd);
    await collector.waitFor("the typed command", () => collector.stdout.includes(nonce));
    assert.equal((await collector.stop("SIGINT")).code, 0, collector.stderr);
    assert.equal(collector.records().filter((r) => r.fields.cmd === cmd).length, 1);
  },
);

/** What the collector prints when the one-probe pipeline lacks `missing` (docs/capabilities.md). */
function missingError(missing: string): RegExp {
  return new RegExp(
    `^error: not allowed to load the probes: missing ${missing} \\(p\\); run as root, ` +
      `or with exactly these: setpriv`,
  );
}

// Every capability each kernel probe declares is needed: without it, the probe cannot load.
for (
  const [type, missing] of [...PROBES.values()].flatMap((d) =>
    d.bpfObject ? (d.capabilities ?? []).map((c) => [d.type, c]) : []
  )
) {
  kernelTest(`${type} without ${missing}: one error line, exit code 1`, NEEDS, async () => {
    const caps = capabilitiesOf(type);
    await using collector = nobodyCollector(
      caps.filter((c) => c !== missing),
      onePipeline(type),
      ["--duration", "2s"],
    );
    const status = await collector.exited();
    assert.equal(status.code, 1, collector.stderr);
    const lines = collector.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `one line, no stack trace:\n${collector.stderr}`);
    assert.match(lines[0], missingError(missing));
  });
}

/**
 * The Deno permissions a pipeline needs, derived from its stages (each stage's `explain` says
 * what it reads, writes and connects to) and the `${VAR}`s it uses. One list feeds three
 * things, so they cannot disagree:
 * - `--explain` prints it as `deno run` flags ({@linkcode runCommand});
 * - at start and at each reload the runtime checks it holds them ({@linkcode missingPermission}),
 *   and a missing one is one line naming the flag to add;
 * - after the probes attach, what only the start needed is given up
 *   ({@linkcode revokeStartupPermissions}).
 *
 * Kernel files (/sys/kernel/btf, /proc, the cgroup mount, the BPF objects) are read by libbpf
 * or through libc (ffi/libc.ts), under `--allow-ffi`: they need no read permission. `--allow-ffi`
 * stays unscoped: a path-scoped one breaks `UnsafePointerView` (denoland/deno#15511).
 */
import { UserError } from "../errors.ts";
import type { Pipeline, StageNode } from "./load.ts";
import { shellWord } from "./shell_words.ts";
import { literalTemplate } from "./yaml_source.ts";

/** Environment variables the `yaml` package reads (debug switches) at every parse. */
const YAML_ENV = ["LOG_TOKENS", "LOG_STREAM"];

/** What a pipeline needs, as values (what to check) and as written (what to print). */
interface Needs {
  ffi: boolean;
  /**
   * value → as written: template text, `${VAR}` kept for paths that came from the environment
   * and any other `${` written `$${` ({@linkcode literalTemplate}).
   */
  reads: Map<string, string>;
  writes: Map<string, string>;
  net: Set<string>;
  env: string[];
}

/** How the collector runs the pipeline: on the kernel (recording or not), or on a recording. */
export interface RunMode {
  /** `--replay FILE`: reads FILE, builds no probe (no FFI). */
  replay?: string;
  /** `--record FILE`: writes FILE. */
  record?: string;
}

function needsOf(pipeline: Pipeline, mode: RunMode = {}): Needs {
  const reads = new Map([[pipeline.file, literalTemplate(pipeline.file)]]);
  const writes = new Map<string, string>(), net = new Set<string>(), env = new Set<string>();
  if (mode.replay) reads.set(mode.replay, literalTemplate(mode.replay));
  if (mode.record) writes.set(mode.record, literalTemplate(mode.record));
  for (const s of pipeline.stages) {
    const e = s.def.explain?.(s.config);
    e?.net?.forEach((h) => net.add(h));
    e?.env?.forEach((v) => env.add(v));
    // A path that came from ${VAR} is shown as written (a shell expands it), never its value.
    const shown = templatesOf(pipeline, s);
    // A derived path (a rotated `out.jsonl.1`) keeps the ${VAR} of the path it extends.
    const asWritten = (p: string) => {
      for (const [value, template] of shown) {
        if (p === value || p.startsWith(`${value}.`)) {
          return template + literalTemplate(p.slice(value.length));
        }
      }
      return literalTemplate(p);
    };
    e?.reads?.forEach((p) => reads.set(p, asWritten(p)));
    e?.writes?.forEach((p) => writes.set(p, asWritten(p)));
  }
  return {
    ffi: !mode.replay && pipeline.stages.some((s) => s.kind === "probe"),
    reads,
    writes,
    net,
    env: [...new Set([...YAML_ENV, ...pipeline.source.variables, ...env])],
  };
}

/**
 * The Deno permission flags `pipeline` needs, as `deno run` arguments: paths as written in the
 * pipeline file (template text: `${VAR}` for what came from the environment, see
 * {@linkcode shellWord}), or with `values`, as they are now (e.g. to build them into a binary).
 */
export function permissionFlags(
  pipeline: Pipeline,
  mode: RunMode = {},
  { values = false }: { values?: boolean } = {},
): string[] {
  const n = needsOf(pipeline, mode);
  const paths = (m: Map<string, string>) => [...new Set(values ? m.keys() : m.values())].join(",");
  return [
    ...(n.ffi ? ["--allow-ffi"] : []),
    `--allow-read=${paths(n.reads)}`,
    ...(n.writes.size ? [`--allow-write=${paths(n.writes)}`] : []),
    "--allow-sys=hostname",
    `--allow-env=${n.env.join(",")}`,
    "--deny-run",
    n.net.size ? `--allow-net=${[...n.net].join(",")}` : "--deny-net",
  ];
}

/**
 * Deno flags the collector runs with besides permissions (as `deno task run` does): nothing
 * fetched at start (`--cached-only`: the npm packages are in node_modules, a bundle has them
 * inside); 1 MiB young-generation semi-spaces instead of up to 16 keep RSS under a DNS load at
 * 112 MiB instead of 172, for no measurable CPU (docs/bench.md); V8's linear-time regex
 * engine, which users' regexes run on (src/transforms/condition/regex.ts).
 */
export const RUNTIME_FLAGS = [
  "--cached-only",
  "--v8-flags=--max-semi-space-size=1,--enable-experimental-regexp-engine",
];

/**
 * The environment the collector runs with (as `deno task run`, the systemd unit and the
 * DaemonSet set it): no update check, which under a terminal looks up dl.deno.land from the
 * collector's own process whatever `--deny-net` says.
 */
export const RUNTIME_ENV = { DENO_NO_UPDATE_CHECK: "1" };

/**
 * The command that runs this program on `pipeline` with exactly the permissions it needs, for a
 * shell: every word quoted ({@linkcode shellWord}), so pasting it runs the collector and nothing
 * else, and a `${VAR}` from the pipeline file expands as it would in the file.
 */
export function runCommand(pipeline: Pipeline, mode: RunMode = {}): string {
  const args = ["--pipeline", pipeline.file];
  if (mode.replay) args.push("--replay", mode.replay);
  if (mode.record) args.push("--record", mode.record);
  const line = (templates: string[]) => templates.map(shellWord).join(" ");
  const literal = (words: string[]) => line(words.map(literalTemplate));
  const main = new URL(Deno.mainModule);
  // A compiled binary carries its flags (deno task compile); its main module is virtual.
  if (main.pathname.includes("/deno-compile-")) {
    return `${literal([Deno.execPath(), ...args])}  (permissions built in: ` +
      `${line(permissionFlags(pipeline, mode))})`;
  }
  let script = main.protocol === "file:" ? decodeURIComponent(main.pathname) : main.href;
  const cwd = Deno.cwd() + "/";
  if (script.startsWith(cwd)) script = script.slice(cwd.length);
  const env = Object.entries(RUNTIME_ENV).map(([name, value]) => `${name}=${value}`);
  return `${literal([...env, "deno", "run", ...RUNTIME_FLAGS])} ` +
    `${line(permissionFlags(pipeline, mode))} ${literal([script, ...args])}`;
}

/**
 * The first permission `pipeline` needs that this process does not hold, as the flag that
 * grants it (e.g. `--allow-write=/var/log/b.jsonl`), or undefined when it holds them all.
 */
export function missingPermission(
  pipeline: Pipeline,
  { replay, record, running = false, granted = isGranted }: RunMode & {
    /** true for a reload: what {@linkcode revokeStartupPermissions} gave up is not needed. */
    running?: boolean;
    granted?: (d: Deno.PermissionDescriptor) => boolean;
  } = {},
): string | undefined {
  const n = needsOf(pipeline, { replay, record });
  if (n.ffi && !granted({ name: "ffi" })) return "--allow-ffi";
  for (const path of n.reads.keys()) {
    if (!granted({ name: "read", path })) return `--allow-read=${path}`;
  }
  for (const path of n.writes.keys()) {
    if (!granted({ name: "write", path })) return `--allow-write=${path}`;
  }
  for (const host of n.net) {
    if (!granted({ name: "net", host })) return `--allow-net=${host}`;
  }
  for (const variable of n.env) {
    if (!granted({ name: "env", variable })) return `--allow-env=${variable}`;
  }
  if (!running && !granted({ name: "sys", kind: "hostname" })) return "--allow-sys=hostname";
  return undefined;
}

function isGranted(d: Deno.PermissionDescriptor): boolean {
  return Deno.permissions.querySync(d).state === "granted";
}

/** Throws a UserError (exit 2) naming the first permission `pipeline` needs and lacks. */
export function checkPermissions(
  pipeline: Pipeline,
  options?: RunMode & { running?: boolean },
): void {
  const missing = missingPermission(pipeline, options);
  if (!missing) return;
  throw new UserError(
    `${pipeline.file} needs ${missing}, which this process does not hold: add it ` +
      `(--explain prints the whole command)`,
    2,
  );
}

/** Throws a UserError (exit 2) unless this process may read a pipeline file at all. */
export function checkParsePermissions(): void {
  for (const variable of YAML_ENV) {
    if (!isGranted({ name: "env", variable })) {
      throw new UserError(
        `the YAML parser needs --allow-env=${YAML_ENV.join(",")}, which this process does not ` +
          "hold: add it (--explain prints the whole command)",
        2,
      );
    }
  }
}

/**
 * Gives up what only the start needed, once the probes are attached: the host name (read once;
 * a reload keeps it) and the write to the `--record` file (open already). Everything else stays,
 * because a reload may add a stage that needs it: the pipeline file, the bash binary and user
 * names, outputs' files and hosts, the environment for `${VAR}`, FFI to load probes.
 * Returns what was revoked, for the log.
 */
export async function revokeStartupPermissions(recordPath?: string): Promise<string[]> {
  const revoked: string[] = [];
  const drop = async (d: Deno.PermissionDescriptor, flag: string) => {
    if ((await Deno.permissions.query(d)).state !== "granted") return;
    await Deno.permissions.revoke(d);
    revoked.push(flag);
  };
  await drop({ name: "sys", kind: "hostname" }, "--allow-sys=hostname");
  if (recordPath) await drop({ name: "write", path: recordPath }, `--allow-write=${recordPath}`);
  return revoked;
}

/** Substituted value → the text as written, for the stage's keys that used `${VAR}`. */
function templatesOf(pipeline: Pipeline, s: StageNode): Map<string, string> {
  const shown = new Map<string, string>();
  for (const [key, value] of Object.entries(s.raw)) {
    const template = pipeline.source.template(`${s.section}.${s.name}.${key}`);
    if (template !== undefined && typeof value === "string") shown.set(value, template);
  }
  return shown;
}

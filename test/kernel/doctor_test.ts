/**
 * `--doctor` as a user meets it: ready here as root, and naming the blocker (and the command
 * that fixes it) when a capability or a receiver is missing.
 */
import assert from "node:assert/strict";
import { kernelTest } from "./_kernel.ts";
import { ROOT, runTaskArgs, tempPipeline } from "../_run_command.ts";
import { defaultKernelProbes, defaultObjects } from "../_default_probes.ts";

async function doctor(
  args: string[],
  wrap: string[] = [],
  env?: Record<string, string>,
  flags: string[] = [],
) {
  const command = wrap.length ? wrap[0] : Deno.execPath();
  const out = await new Deno.Command(command, {
    args: [
      ...wrap.slice(1),
      ...(wrap.length ? [Deno.execPath()] : []),
      ...runTaskArgs().slice(0, -1),
      ...flags,
      ...runTaskArgs().slice(-1),
      "--doctor",
      ...args,
    ],
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

/** Names of the BPF programs loaded in the kernel now. */
async function loadedPrograms(): Promise<string[]> {
  const out = await new Deno.Command("bpftool", { args: ["-j", "prog", "show"], stdout: "piped" })
    .output();
  return (JSON.parse(new TextDecoder().decode(out.stdout)) as { name?: string }[])
    .map((p) => p.name ?? "");
}

kernelTest(
  "--doctor passes on the default pipeline as root and leaves no program behind",
  { objects: defaultObjects(), tools: ["bpftool"] },
  async () => {
    const before = (await loadedPrograms()).filter((n) => n === "dump_tcp").length;
    const { code, stdout, stderr } = await doctor([]);
    assert.equal(code, 0, stdout + stderr);
    const lines = stdout.trim().split("\n");
    for (const line of lines) assert.match(line, /^ok {4}/, line);
    for (const { name } of defaultKernelProbes()) {
      assert.match(
        stdout,
        new RegExp(
          `^ok {4}probes\\.${name}: loaded and attached \\d+ programs? in \\d+ ms, detached$`,
          "m",
        ),
      );
    }
    assert.match(stdout, /^ok {4}cgroup v2: mounted at \S+ \(from \/proc\/mounts\)$/m);
    assert.match(stdout, /^ok {4}libbpf: 1\.\d+/m);
    assert.match(stderr, /doctor: ready/);
    assert.equal((await loadedPrograms()).filter((n) => n === "dump_tcp").length, before);
  },
);

kernelTest(
  "--doctor without root names the missing capabilities and the setpriv line that grants them",
  { objects: defaultObjects(), tools: ["setpriv"] },
  async () => {
    // nobody, with no capabilities; Deno's cache in a folder that user may write.
    const denoDir = Deno.makeTempDirSync({ prefix: "ebpf-doctor-" });
    Deno.chmodSync(denoDir, 0o777);
    try {
      const { code, stdout } = await doctor(
        [],
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"],
        { DENO_DIR: denoDir, HOME: denoDir },
      );
      assert.equal(code, 1, stdout);
      // Each capability the default pipeline's probes declare, with the probes that need it.
      const needing = new Map<string, string[]>();
      for (const p of defaultKernelProbes()) {
        for (const c of p.capabilities) needing.set(c, [...needing.get(c) ?? [], p.name]);
      }
      const missing = [...needing].map(([c, names]) => `${c} (${names.join(", ")})`).join(", ");
      const flags = [...needing.keys()].map((c) => `+${c.slice(4).toLowerCase()}`).join(",");
      const line = stdout.split("\n").find((l) => l.startsWith("FAIL  privileges: ")) ?? stdout;
      assert.ok(
        line.startsWith(
          `FAIL  privileges: missing ${missing} → run as root, or with exactly these: ` +
            `setpriv --inh-caps=${flags}`,
        ),
        line,
      );
      for (const { name } of defaultKernelProbes()) {
        assert.match(stdout, new RegExp(`^warn {2}probes\\.${name}: not tried`, "m"));
      }
    } finally {
      Deno.removeSync(denoDir, { recursive: true });
    }
  },
);

Deno.test("--doctor warns of a receiver that is down and fails on a listen address in use", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const down = free.addr.port;
  free.close();
  try {
    const pipeline = tempPipeline(`version: 1
probes:
  self: { type: collector }
outputs:
  influx: { type: http, inputs: [self], preset: influxdb, url: "http://127.0.0.1:${down}", database: e }
  metrics: { type: prometheus, inputs: [self], listen: "127.0.0.1:${taken.addr.port}" }
`);
    const net = `--allow-net=127.0.0.1:${down},127.0.0.1:${taken.addr.port}`;
    const { code, stdout } = await doctor(["--pipeline", pipeline], [], undefined, [net]);
    assert.equal(code, 1, stdout);
    assert.match(
      stdout,
      new RegExp(
        `^warn {2}outputs\\.influx: .*127\\.0\\.0\\.1:${down}.*connection refused.* → start the receiver`,
        "im",
      ),
    );
    assert.match(
      stdout,
      /^FAIL {2}outputs\.metrics: .*[Aa]ddress (already )?in use.* → free the address, or change listen:$/m,
    );
    assert.doesNotMatch(stdout, /probes\./, "a probe without kernel programs is not tried");
  } finally {
    taken.close();
  }
});

/**
 * The collector contacts nothing but its receivers. Under a terminal, Deno's own update check
 * looked up dl.deno.land from the collector's process whatever `--deny-net` said; the tasks and
 * the command `--explain` prints now set DENO_NO_UPDATE_CHECK=1 and `--cached-only`. Each run
 * here is what a user types at a terminal (a pty from `script`), traced with
 * `strace -f -e trace=connect,sendto`; every AF_INET/AF_INET6 address it reaches must be a
 * receiver's. The pipeline's only probe is `collector`, so no BPF is needed.
 */
import assert from "node:assert/strict";
import { startInfluxdb } from "./_influxdb.ts";
import { output, ROOT, tempPipeline } from "./_run_command.ts";
import { findInPath, serverTest } from "./_server_process.ts";

/** The `ip:port`s of every AF_INET/AF_INET6 connect and sendto in an strace log. */
function internetAddresses(log: string): string[] {
  const found: string[] = [];
  for (const line of log.split("\n")) {
    if (!/\b(connect|sendto)\(/.test(line) || !/AF_INET6?\b/.test(line)) continue;
    const port = line.match(/sin6?_port=htons\((\d+)\)/)?.[1];
    const ip = line.match(/inet_addr\("([^"]+)"\)/)?.[1] ??
      line.match(/inet_pton\(AF_INET6, "([^"]+)"/)?.[1];
    found.push(`${ip ?? "?"}:${port ?? "?"}`);
  }
  return found;
}

/**
 * Runs the bash `script` under a pty with strace following every process it starts; returns
 * the strace log. DENO_NO_UPDATE_CHECK is taken out of the environment (`deno task test` sets
 * it): what the command itself sets is what counts.
 */
async function traceAtTerminal(script: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "offline_test_" });
  try {
    await Deno.writeTextFile(`${dir}/run.sh`, script);
    const env = Deno.env.toObject();
    delete env.DENO_NO_UPDATE_CHECK;
    const traced = await output("script", [
      "-qec",
      `strace -f -qq -e trace=connect,sendto -o ${dir}/strace.log bash ${dir}/run.sh`,
      "/dev/null",
    ], { env, clearEnv: true });
    assert.equal(traced.code, 0, traced.stdout + traced.stderr);
    return await Deno.readTextFile(`${dir}/strace.log`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

serverTest(
  "strace",
  "strace",
  "the command --explain prints, run at a terminal, reaches no address but its receiver's",
  async () => {
    assert.ok(findInPath("script"), "script (util-linux) gives the run its terminal");
    await using influx = await startInfluxdb();
    await influx.createDatabase("ebpf");
    const pipeline = tempPipeline(`version: 1
probes:
  self: { type: collector, every: 1s }
outputs:
  influx: { type: http, inputs: [self], preset: influxdb, url: "${influx.url}", database: ebpf }
`);
    const explained = await output(Deno.execPath(), [
      "run",
      "-A",
      "--v8-flags=--enable-experimental-regexp-engine",
      "src/main.ts",
      "--explain",
      "--pipeline",
      pipeline,
    ]);
    assert.equal(explained.code, 0, explained.stderr);
    const command = explained.stdout.trimEnd().split("\n").at(-1)!.trim();

    const log = await traceAtTerminal(`cd ${ROOT}\n${command} --duration 3s\n`);

    const receiver = `127.0.0.1:${influx.port}`;
    const reached = internetAddresses(log);
    assert.ok(reached.includes(receiver), `the trace shows the receiver:\n${log}`);
    assert.deepEqual(reached.filter((a) => a !== receiver), [], command);
    assert.ok((await influx.select("ebpf", "ebpf_collector")).length > 0, "records arrived");
  },
);

serverTest(
  "strace",
  "strace",
  "deno task run at a terminal reaches no internet address at all (stdout output)",
  async () => {
    const pipeline = tempPipeline(`version: 1
probes:
  self: { type: collector, every: 1s }
outputs:
  out: { type: stdout, inputs: [self] }
`);
    const log = await traceAtTerminal(
      `cd ${ROOT}\ndeno task run --pipeline ${pipeline} --duration 2s >/dev/null\n`,
    );
    assert.deepEqual(internetAddresses(log), [], log);
  },
);

/**
 * The default pipeline (pipeline.yaml) on a recorded command, through the real collector's
 * `--replay` (no kernel): its `bash_activity` record joins the bash line, the bash probe's
 * process events and the netflow record the kernel stamped with its cmd_id, and the password
 * typed on the command line is masked in it as in the `bash` record (redact_secrets).
 */
import assert from "node:assert/strict";
import { output, ROOT, runTaskArgs, tempPipeline } from "./_run_command.ts";

const T = 1_795_622_018_000_000_000n;
const ID = "4619-84211337000";

function line(probe: string, record: object, side = false): string {
  return JSON.stringify(
    { probe, ...(side ? { side: true } : {}), ...record },
    (_k, v) => typeof v === "bigint" ? Number(v) : v,
  );
}

const event = (kind: string, pid: string, at: bigint, extra: object = {}) =>
  line("bash", {
    measurement: "bash_process",
    tags: { host: "h", source: "bash" },
    fields: { event: kind, cmd_id: ID, pid, ...extra },
    time: at,
  }, true);

Deno.test("the default pipeline reports what a command did, its password masked as in bash", async () => {
  const recording = tempPipeline(""); // a temp file under build/tmp/, removed at the end
  Deno.writeTextFileSync(
    recording,
    [
      line("bash", {
        measurement: "bash",
        tags: { host: "h", source: "bash" },
        fields: {
          cmd: "mysql -u root -pS3cret shop",
          message: "m",
          pid: "4619",
          user: "root",
          cmd_id: ID,
        },
        time: T,
      }),
      event("fork", "4620", T + 1000n),
      event("exec", "4620", T + 2000n, { program: "mysql" }),
      line("netflow", {
        measurement: "netflow",
        tags: {
          host: "h",
          source: "netflow",
          direction: "outgoing",
          dst_ip: "127.0.0.1",
          dst_port: "3306",
          src_port: "40000",
          pid: "4620",
          transport: "tcp",
        },
        fields: { bytes_read: 1840, bytes_written: 412, tcp_established: 1, cmd_id: ID },
        time: T + 3_000_000_000n,
      }),
      event("exit", "4620", T + 4_000_000_000n, { exit_code: 1 }),
      event("end", "4619", T + 4_000_001_000n, { exit_code: 1 }),
    ].join("\n") + "\n",
  );
  const result = await output(Deno.execPath(), [
    ...runTaskArgs(),
    "--pipeline",
    `${ROOT}pipeline.yaml`,
    "--replay",
    recording,
  ]);
  assert.equal(result.code, 0, result.stderr);
  const records = result.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const [activity] = records.filter((r) => r.measurement === "bash_activity");
  assert.deepEqual(activity.tags, { host: "h", source: "bash", user: "root" });
  assert.deepEqual(activity.fields, {
    cmd: "mysql -u root -p*** shop",
    cmd_id: ID,
    pid: "4619",
    final: true,
    processes: 1,
    programs: "mysql",
    bytes_read: 1840,
    bytes_written: 412,
    connections: 1,
    connect_failures: 0,
    dns_queries: 0,
    domains: "",
    exit_code: 1,
    duration: 4_000_001_000,
  });
  assert.ok(!result.stdout.includes("S3cret"), "the password is nowhere in the output");
});

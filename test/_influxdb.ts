/**
 * A throwaway InfluxDB 1.x (Debian's `influxd`, 1.6.7) on loopback for the `http` output's
 * tests: its own temp dir, config and free ports, so tests never touch /var/lib/influxdb and
 * can run side by side. Tests that need it are declared with `influxTest`, which skips them with
 * the reason in the name where influxd is missing (and fails instead under
 * EBPF_REQUIRE_KERNEL_TESTS=1, as kernel tests do).
 */

/** A running (or stopped) test InfluxDB; disposing it kills it and deletes its data. */
export interface Influxdb extends AsyncDisposable {
  /** HTTP API port on 127.0.0.1; stays the same across stop() and start(). */
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Its temp dir (config, meta/, data/, wal/, influxd.log); dispose deletes it. */
  readonly dir: string;
  /**
   * Runs InfluxQL via GET /query (with `epoch=ns`) and returns the parsed JSON `results`.
   * Integers beyond 2^53 (nanosecond times, large int fields) come back as bigint, the rest as
   * numbers. Throws with the body when InfluxDB reports an error. InfluxDB 1.6 only warns when a
   * GET runs a write statement; use createDatabase() (a POST) for those.
   */
  query(q: string, db?: string): Promise<unknown[]>;
  /**
   * Rows of `SELECT * FROM "<measurement>"` in `db`, oldest first, as objects: `time` (bigint,
   * ns since the epoch) and each tag and field the point has (null columns are left out).
   */
  select(db: string, measurement: string): Promise<Record<string, unknown>[]>;
  /** `CREATE DATABASE "<db>"` (a POST, as InfluxDB 1.x wants for writes). */
  createDatabase(db: string): Promise<void>;
  /** Stops the server (SIGTERM, then waits) keeping its data dir; start() brings it back. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data dir; resolves once GET /ping answers 204. */
  start(): Promise<void>;
}

const STARTUP_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;

function findInPath(tool: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${tool}`).isFile) return `${dir}/${tool}`;
    } catch { /* not here */ }
  }
  return undefined;
}

/** Why an InfluxDB test cannot run here, or undefined when it can. */
export function influxdbSkipReason(): string | undefined {
  return findInPath("influxd") ? undefined : "influxd not installed";
}

/**
 * Declares a test that needs a local influxd: runs it, or skips it with the reason in its name;
 * with EBPF_REQUIRE_KERNEL_TESTS=1 (CI sets it) a skip is a failure instead.
 *
 * @example
 * ```ts
 * influxTest("points read back equal", async () => {
 *   await using influx = await startInfluxdb();
 *   await influx.createDatabase("ebpf");
 * });
 * ```
 */
export function influxTest(name: string, fn: () => Promise<void> | void): void {
  const reason = influxdbSkipReason();
  if (reason && Deno.env.get("EBPF_REQUIRE_KERNEL_TESTS") === "1") {
    Deno.test(`${name} [influxdb]`, () => {
      throw new Error(`InfluxDB test could not run (${reason}) and EBPF_REQUIRE_KERNEL_TESTS=1`);
    });
    return;
  }
  Deno.test({
    name: reason ? `${name} [skipped: ${reason}]` : `${name} [influxdb]`,
    ignore: reason !== undefined,
    fn,
  });
}

/** `n` distinct free loopback ports (all held open while picking, so they differ). */
function freePorts(n: number): number[] {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

/**
 * JSON.parse that keeps integers beyond 2^53 exact, as bigint: InfluxDB writes nanosecond
 * times (epoch=ns) and int64 fields as bare JSON numbers.
 */
function parseJson(text: string): unknown {
  return JSON.parse(text, (_key, value, context?: { source?: string }) => {
    if (
      typeof value === "number" && !Number.isSafeInteger(value) &&
      context?.source !== undefined && /^-?\d+$/.test(context.source)
    ) {
      return BigInt(context.source);
    }
    return value;
  });
}

/** An InfluxQL identifier in double quotes (its scanner takes `\"` and `\\`). */
function quoteIdent(name: string): string {
  return `"${name.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`;
}

interface Series {
  name: string;
  columns: string[];
  values: unknown[][];
  partial?: boolean;
}

interface Result {
  statement_id?: number;
  error?: string;
  series?: Series[];
  partial?: boolean;
}

async function readResults(res: Response, q: string): Promise<Result[]> {
  const text = await res.text();
  if (!res.ok) throw new Error(`InfluxDB ${q}: HTTP ${res.status}: ${text}`);
  const parsed = parseJson(text) as { results?: Result[]; error?: string };
  if (parsed.error !== undefined || !parsed.results) throw new Error(`InfluxDB ${q}: ${text}`);
  if (parsed.results.some((r) => r.error !== undefined)) throw new Error(`InfluxDB ${q}: ${text}`);
  return parsed.results;
}

function config(dir: string, httpPort: number, rpcPort: number): string {
  return `# Generated by test/_influxdb.ts for one test run.
# Debian's build reads reporting-enabled (opt-in); upstream reads reporting-disabled.
reporting-enabled = false
reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"

[meta]
  dir = "${dir}/meta"
  logging-enabled = false

[data]
  dir = "${dir}/data"
  wal-dir = "${dir}/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:${httpPort}"
  auth-enabled = false
  log-enabled = false
  max-row-limit = 0

[logging]
  level = "error"
  suppress-logo = true

[continuous_queries]
  log-enabled = false
`;
}

class TestInfluxdb implements Influxdb {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  readonly #config: string;
  readonly #log: string;
  #child?: Deno.ChildProcess;
  #status?: Promise<Deno.CommandStatus>;
  #exited = false;
  #pumps: Promise<void>[] = [];

  constructor(dir: string) {
    const [httpPort, rpcPort] = freePorts(2);
    this.port = httpPort;
    this.url = `http://127.0.0.1:${httpPort}`;
    this.dir = dir;
    this.#config = `${dir}/influxdb.conf`;
    this.#log = `${dir}/influxd.log`;
    Deno.writeTextFileSync(this.#config, config(dir, httpPort, rpcPort));
  }

  /** The last lines influxd wrote (stdout and stderr), for error messages. */
  logTail(chars = 4000): string {
    let text = "";
    try {
      text = Deno.readTextFileSync(this.#log);
    } catch { /* not written yet */ }
    return text.length > chars ? `...${text.slice(-chars)}` : text || "(influxd wrote nothing)";
  }

  async start(): Promise<void> {
    if (this.#child) return;
    const child = new Deno.Command(findInPath("influxd") ?? "influxd", {
      args: ["run", "-config", this.#config],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#exited = false;
    this.#status = child.status.finally(() => this.#exited = true);
    const sink = (stream: ReadableStream<Uint8Array>) =>
      Deno.open(this.#log, { append: true, create: true }).then((file) =>
        stream.pipeTo(file.writable)
      );
    this.#pumps = [sink(child.stdout), sink(child.stderr)];

    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    while (true) {
      if (this.#exited) {
        const status = await this.#status;
        await Promise.allSettled(this.#pumps);
        this.#child = undefined;
        throw new Error(
          `influxd exited with code ${status.code} while starting:\n${this.logTail()}`,
        );
      }
      try {
        const res = await fetch(`${this.url}/ping`, { signal: AbortSignal.timeout(1000) });
        await res.body?.cancel();
        if (res.status === 204) return;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) {
        throw new Error(
          `influxd did not answer ${this.url}/ping within ${STARTUP_TIMEOUT_MS} ms:\n${this.logTail()}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    const child = this.#child;
    if (!child) return;
    try {
      child.kill(signal);
    } catch { /* already exited */ }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((r) =>
      timer = setTimeout(() => r("timeout"), STOP_TIMEOUT_MS)
    );
    const outcome = await Promise.race([this.#status!, timedOut]);
    clearTimeout(timer);
    if (outcome === "timeout") {
      try {
        child.kill("SIGKILL");
      } catch { /* exited just now */ }
      await this.#status;
    }
    await Promise.allSettled(this.#pumps);
    this.#child = undefined;
    if (outcome === "timeout") {
      throw new Error(`influxd did not stop within ${STOP_TIMEOUT_MS} ms of ${signal}`);
    }
  }

  async query(q: string, db?: string): Promise<unknown[]> {
    const params = new URLSearchParams({ q, epoch: "ns" });
    if (db !== undefined) params.set("db", db);
    return await readResults(await fetch(`${this.url}/query?${params}`), q);
  }

  async select(db: string, measurement: string): Promise<Record<string, unknown>[]> {
    const q = `SELECT * FROM ${quoteIdent(measurement)}`;
    const results = await this.query(q, db) as Result[];
    const rows: Record<string, unknown>[] = [];
    for (const result of results) {
      if (result.partial) throw new Error(`InfluxDB ${q}: partial result (row limit?)`);
      for (const series of result.series ?? []) {
        if (series.partial) throw new Error(`InfluxDB ${q}: partial series (row limit?)`);
        for (const values of series.values) {
          const row: Record<string, unknown> = {};
          series.columns.forEach((column, i) => {
            const v = values[i];
            if (v === null) return; // this point has no such tag or field
            row[column] = column === "time" ? BigInt(v as number | bigint) : v;
          });
          rows.push(row);
        }
      }
    }
    return rows;
  }

  async createDatabase(db: string): Promise<void> {
    const q = `CREATE DATABASE ${quoteIdent(db)}`;
    await readResults(
      await fetch(`${this.url}/query`, { method: "POST", body: new URLSearchParams({ q }) }),
      q,
    );
  }

  /** Kills influxd (its data is thrown away anyway) and deletes the temp dir. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.stop("SIGKILL");
    } finally {
      await Deno.remove(this.dir, { recursive: true });
    }
  }
}

/**
 * Starts a fresh influxd in a new temp dir on free loopback ports; resolves once GET /ping
 * answers 204. Dispose it (`await using`) to stop it and delete its data.
 *
 * @example
 * ```ts
 * await using influx = await startInfluxdb();
 * await influx.createDatabase("ebpf");
 * const rows = await influx.select("ebpf", "netflow");
 * ```
 */
export async function startInfluxdb(): Promise<Influxdb> {
  const dir = await Deno.makeTempDir({ prefix: "influxdb-test-" });
  let influx: TestInfluxdb;
  try {
    influx = new TestInfluxdb(dir);
  } catch (e) {
    await Deno.remove(dir, { recursive: true });
    throw e;
  }
  try {
    await influx.start();
  } catch (e) {
    await influx[Symbol.asyncDispose]();
    throw e;
  }
  return influx;
}

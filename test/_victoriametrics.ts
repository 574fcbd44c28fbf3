/**
 * A throwaway single-node VictoriaMetrics (Debian's `victoria-metrics`, 1.79.5) on loopback, for
 * tests and scripts that send it line protocol: its own temp `-storageDataPath` and free port,
 * so nothing touches /var/lib/victoria-metrics and runs can go side by side. Tests that need it
 * are declared with `victoriaTest`, which skips them with the reason in the name where the
 * binary is missing (and fails instead under EBPF_REQUIRE_KERNEL_TESTS=1).
 *
 * It accepts InfluxDB line protocol at `/write` and `/influx/write` (`?db=` becomes a `db`
 * label, each field a series `<measurement>_<field>`) and answers the Prometheus query API.
 */
import { freePorts, ServerProcess, serverTest } from "./_server_process.ts";

/** One series as `/api/v1/export` returns it: labels (with `__name__`), values, ms times. */
export interface ExportedSeries {
  metric: { [label: string]: string };
  values: number[];
  timestamps: number[];
}

/** A running test VictoriaMetrics; disposing it kills it and deletes its data. */
export interface Victoriametrics extends AsyncDisposable {
  /** HTTP port on 127.0.0.1. */
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Its temp dir (data/, victoria-metrics.log); dispose deletes it. */
  readonly dir: string;
  /**
   * Makes what was written so far searchable (`/internal/force_flush`): VictoriaMetrics buffers
   * new rows for up to a second or two before queries see them.
   */
  flush(): Promise<void>;
  /** Every raw sample of the series `selector` matches (`/api/v1/export`), sorted by labels. */
  export(selector: string): Promise<ExportedSeries[]>;
  /**
   * The label sets of the series `selector` matches (Prometheus `/api/v1/series`) with samples
   * since `start` (seconds; default: a day ago).
   */
  series(selector: string, start?: number): Promise<{ [label: string]: string }[]>;
  /**
   * A PromQL instant query at `time` (seconds) through Prometheus' `/api/v1/query`, as
   * `{metric, value: [seconds, "value"]}` per series.
   */
  query(
    query: string,
    time: number,
  ): Promise<{ metric: { [label: string]: string }; value: [number, string] }[]>;
}

/**
 * Declares a test that needs VictoriaMetrics: runs it, or skips it with the reason in its name;
 * with EBPF_REQUIRE_KERNEL_TESTS=1 (CI sets it) a skip is a failure instead.
 *
 * @example
 * ```ts
 * victoriaTest("samples read back equal", async () => {
 *   await using vm = await startVictoriametrics();
 * });
 * ```
 */
export function victoriaTest(name: string, fn: () => Promise<void> | void): void {
  serverTest("victoria-metrics", "victoriametrics", name, fn);
}

/** A stable order for series: by their labels, rendered as sorted `k=v` pairs. */
export function labelKey(labels: { [label: string]: string }): string {
  return Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`).join(",");
}

async function getJson(url: string, what: string): Promise<unknown> {
  const res = await fetch(url);
  const text = await res.text();
  if (!res.ok) throw new Error(`VictoriaMetrics ${what}: HTTP ${res.status}: ${text}`);
  return JSON.parse(text);
}

class TestVictoriametrics implements Victoriametrics {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  readonly #server: ServerProcess;

  constructor(dir: string, flags: string[]) {
    [this.port] = freePorts(1);
    this.url = `http://127.0.0.1:${this.port}`;
    this.dir = dir;
    this.#server = new ServerProcess(
      "victoria-metrics",
      [
        `-httpListenAddr=127.0.0.1:${this.port}`,
        `-storageDataPath=${dir}/data`,
        "-retentionPeriod=1y",
        "-loggerLevel=ERROR",
        ...flags,
      ],
      `${dir}/victoria-metrics.log`,
      async () => {
        const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(1000) });
        return res.status === 200 && (await res.text()).trim() === "OK";
      },
    );
  }

  start(): Promise<void> {
    return this.#server.start();
  }

  async flush(): Promise<void> {
    const res = await fetch(`${this.url}/internal/force_flush`);
    await res.body?.cancel();
    if (!res.ok) throw new Error(`VictoriaMetrics force_flush: HTTP ${res.status}`);
  }

  async export(selector: string): Promise<ExportedSeries[]> {
    const q = new URLSearchParams({ "match[]": selector });
    const res = await fetch(`${this.url}/api/v1/export?${q}`);
    const text = await res.text();
    if (!res.ok) throw new Error(`VictoriaMetrics export ${selector}: HTTP ${res.status}: ${text}`);
    const series = text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as ExportedSeries);
    return series.sort((a, b) => labelKey(a.metric) < labelKey(b.metric) ? -1 : 1);
  }

  async series(selector: string, start = Date.now() / 1000 - 86_400) {
    const q = new URLSearchParams({ "match[]": selector, start: `${Math.floor(start)}` });
    const body = await getJson(`${this.url}/api/v1/series?${q}`, `series ${selector}`) as {
      data: { [label: string]: string }[];
    };
    return body.data;
  }

  async query(query: string, time: number) {
    const q = new URLSearchParams({ query, time: `${time}` });
    const body = await getJson(`${this.url}/api/v1/query?${q}`, `query ${query}`) as {
      data: { result: { metric: { [label: string]: string }; value: [number, string] }[] };
    };
    return body.data.result;
  }

  /** Kills the server (its data is thrown away anyway) and deletes the temp dir. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.#server.stop("SIGKILL");
    } finally {
      await Deno.remove(this.dir, { recursive: true });
    }
  }
}

/**
 * Starts a fresh VictoriaMetrics in a new temp dir on a free loopback port, with `flags` added
 * to its command line (e.g. `-dedup.minScrapeInterval=1ms`); resolves once `/health` answers OK. Dispose it (`await using`) to stop it and delete its data.
 *
 * @example
 * ```ts
 * await using vm = await startVictoriametrics();
 * // ... POST line protocol to `${vm.url}/write?db=ebpf` ...
 * await vm.flush();
 * const series = await vm.export('{db="ebpf"}');
 * ```
 */
export async function startVictoriametrics(flags: string[] = []): Promise<Victoriametrics> {
  const dir = await Deno.makeTempDir({ prefix: "victoriametrics-test-" });
  const vm = new TestVictoriametrics(dir, flags);
  try {
    await vm.start();
  } catch (e) {
    await vm[Symbol.asyncDispose]();
    throw e;
  }
  return vm;
}

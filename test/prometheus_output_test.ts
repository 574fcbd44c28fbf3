/**
 * The `prometheus` output scraped by a real Prometheus (Debian's 2.42, started by the test on
 * loopback): the series are queryable through its HTTP API with the expected labels and
 * values, and `promtool check metrics` accepts the endpoint's output.
 */
import assert from "node:assert/strict";
import { prometheusOutput } from "../src/outputs/prometheus.ts";
import { buildStage } from "../src/pipeline/testing.ts";
import type { Record } from "../src/record.ts";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

function which(tool: string): boolean {
  return (Deno.env.get("PATH") ?? "").split(":").some((d) => {
    try {
      return Deno.statSync(`${d}/${tool}`).isFile;
    } catch {
      return false;
    }
  });
}

/** Like kernelTest: skipped with the reason when Prometheus is missing, failed under CI. */
function prometheusTest(name: string, fn: () => Promise<void>): void {
  const missing = ["prometheus", "promtool"].find((t) => !which(t));
  if (missing && Deno.env.get("EBPF_REQUIRE_KERNEL_TESTS") === "1") {
    Deno.test(`${name} [prometheus]`, () => {
      throw new Error(`${missing} not installed and EBPF_REQUIRE_KERNEL_TESTS=1`);
    });
    return;
  }
  Deno.test({
    name: missing ? `${name} [skipped: ${missing} not installed]` : `${name} [prometheus]`,
    ignore: missing !== undefined,
    sanitizeOps: false,
    sanitizeResources: false,
    fn,
  });
}

const T = BigInt(Date.now()) * 1_000_000n;

function window(port: string, read: bigint, rttUs: bigint): Record {
  return {
    measurement: "netflow",
    tags: { host: "web-1", source: "netflow", dst_port: port, dst_domain: 'a"b.example' },
    fields: { bytes_read: read, tcp_established: 2n, rtt: rttUs },
    time: T,
  };
}

prometheusTest(
  "prometheus output: Prometheus scrapes it and its API returns the series",
  async () => {
    const listen = `127.0.0.1:${freePort()}`;
    const out = await buildStage(prometheusOutput, { listen, idle_timeout: "10m" });
    const dir = await Deno.makeTempDir();
    const promPort = freePort();
    await Deno.writeTextFile(
      `${dir}/prometheus.yml`,
      `global: { scrape_interval: 1s }
scrape_configs:
  - job_name: ebpf
    static_configs: [{ targets: ["${listen}"] }]
`,
    );
    const prometheus = new Deno.Command("prometheus", {
      args: [
        `--config.file=${dir}/prometheus.yml`,
        `--storage.tsdb.path=${dir}/data`,
        `--web.listen-address=127.0.0.1:${promPort}`,
        "--log.level=error",
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      out.stage.push(window("443", 1000n, 31n));
      out.stage.push(window("443", 500n, 45n));
      out.stage.push(window("80", 7n, 12n));

      // The exposition is valid for promtool.
      const text = await (await fetch(`http://${listen}/metrics`)).text();
      const check = new Deno.Command("promtool", {
        args: ["check", "metrics"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = check.stdin.getWriter();
      await writer.write(new TextEncoder().encode(text));
      await writer.close();
      const checked = await check.output();
      assert.ok(
        checked.success,
        new TextDecoder().decode(checked.stderr) + new TextDecoder().decode(checked.stdout),
      );

      const query = async (q: string) => {
        const r = await fetch(
          `http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`,
        );
        return (await r.json()).data?.result ?? [];
      };
      let result: { metric: { [k: string]: string }; value: [number, string] }[] = [];
      for (let i = 0; i < 100 && result.length < 2; i++) {
        await new Promise((r) => setTimeout(r, 200));
        result = await query('netflow_bytes_read_total{job="ebpf"}').catch(() => []);
      }
      const byPort = Object.fromEntries(result.map((r) => [r.metric.dst_port, r]));
      assert.equal(byPort["443"].value[1], "1500", "the windows' sums add up");
      assert.equal(byPort["80"].value[1], "7");
      assert.equal(byPort["443"].metric.dst_domain, 'a"b.example');
      assert.equal(byPort["443"].metric.host, "web-1");
      const rtt = await query('netflow_rtt{job="ebpf",dst_port="443"}');
      assert.equal(rtt[0].value[1], "45", "a gauge keeps the last value");
      // The collector's own counters ride along (here the stage's own gauge of its series).
      const own = await query('ebpf_collector_series{job="ebpf"}');
      assert.equal(own[0]?.value[1], "6", JSON.stringify(own));
    } finally {
      prometheus.kill("SIGTERM");
      await prometheus.status;
      await out.stage.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

prometheusTest(
  "prometheus output: a scrape of 15,000 series renders them all",
  async () => {
    const listen = `127.0.0.1:${freePort()}`;
    const out = await buildStage(prometheusOutput, { listen });
    try {
      for (let i = 0; i < 5000; i++) out.stage.push(window(String(i), BigInt(i), 10n)); // 2 series each
      const start = performance.now();
      const text = await (await fetch(`http://${listen}/metrics`)).text();
      const ms = performance.now() - start;
      assert.equal(text.split("\n").filter((l) => l.startsWith("netflow_")).length, 15_000);
      if (Deno.env.get("NETFLOW_TEST_FIGURES")) {
        console.error(
          `FIGURE scrape of 15,000 series: ${ms.toFixed(1)} ms`,
        );
      }
    } finally {
      await out.stage.close();
    }
  },
);

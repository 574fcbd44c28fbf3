import assert from "node:assert/strict";
import { applyKeys, initialView } from "./keys.ts";
import type { Snapshot } from "./model.ts";
import { firstInOrder, formatRate, render, type StatusFacts } from "./render.ts";
import { displayWidth, fit } from "./text.ts";

const NOW = 1_764_000_000_000;

function snapshot(flows = 40): Snapshot {
  return {
    flows: Array.from({ length: flows }, (_, i) => ({
      process: i === 0 ? "测试进程名字很长的进程" : `proc${i}`,
      pid: String(1000 + i),
      container: "",
      localPort: "*",
      peer: i === 1 ? "例え.テスト.example:443" : `10.0.0.${i}:${5000 + i}`,
      netns: "4026531840",
      direction: "out",
      transport: "tcp",
      inRate: i * 1000,
      outRate: 5_000_000 - i * 2000,
      retransmits: i,
      failures: i === 2 ? 3 : 0,
      rttUs: 120,
    })),
    drops: [{
      reason: "NO_SOCKET",
      direction: "in",
      process: "",
      pid: "",
      localPort: "9",
      peer: "127.0.0.1:*",
      netns: "4026531840",
      transport: "tcp",
      packetRate: 2,
      byteRate: 120,
    }, {
      reason: "NETFILTER_DROP",
      direction: "out",
      process: "curl",
      pid: "88",
      localPort: "*",
      peer: "198.18.0.2:80",
      netns: "4026531840",
      transport: "tcp",
      packetRate: 0.4,
      byteRate: 24,
    }],
    dropRate: 2.4,
    dns: [{
      name: "dnsmasq.test",
      qtype: "A",
      process: "getent",
      pid: "77",
      qps: 1.2,
      total: 6,
      errors: "NXDOMAIN:1",
      errorCount: 1,
      meanNs: 250_000,
      maxNs: 900_000,
    }],
    commands: [
      { timeMs: NOW, user: "root", pid: "9", cmd: "echo top-test \x1b[31mred", cmdId: "9-3" },
      {
        timeMs: NOW - 5000,
        user: "root",
        pid: "9",
        cmd: "curl -s http://127.0.0.1:9/",
        cmdId: "9-2",
        exitCode: 7,
        durationNs: 12_300_000,
        processes: 1,
        bytes: 0,
        dnsQueries: 0,
        connectFailures: 1,
      },
      {
        timeMs: NOW - 9000,
        user: "root",
        pid: "9",
        cmd: "dig bench.test",
        cmdId: "9-1",
        exitCode: 0,
        durationNs: 1_200_000_000,
        processes: 1,
        bytes: 5300,
        dnsQueries: 1,
        connectFailures: 0,
      },
    ],
    cpuPercent: 1.5,
    rssBytes: 80 << 20,
  };
}

const STATUS: StatusFacts = { nowMs: NOW, probes: ["dns", "netflow"], disabled: [], lost: 0n };

// deno-lint-ignore no-control-regex
const ESC = /\x1b/;

for (const [cols, rows] of [[80, 24], [100, 30], [200, 60]]) {
  Deno.test(`render() fills ${cols}×${rows} exactly: no line wraps, every row written`, () => {
    const lines = render(snapshot(), STATUS, initialView(), {
      cols,
      rows,
      color: false,
      fill: true,
    });
    assert.equal(lines.length, rows);
    for (const line of lines) assert.equal(displayWidth(line), cols, JSON.stringify(line));
    const text = lines.join("\n");
    assert.match(text, /Flows \(40\)/);
    assert.match(text, /dnsmasq\.test +A +1\.2 +6 NXDOMAIN:1/);
    assert.match(text, /Drops \(2\)/);
    assert.match(text, /^NO_SOCKET +in .* 9 127\.0\.0\.1:\* +2\.0 +120B\/s$/m, "by rate first");
    assert.match(text, /drops 2\.4\/s/, "the status line counts drops a second");
    assert.ok(
      !lines[0].includes("…"),
      `the status line leaves parts out, never cuts one: ${lines[0]}`,
    );
    assert.match(text, /^proc2 .* 3 +120µs$/m, "a flow's failures");
    assert.match(text, / +7 +12\.3ms +1 +0B +0 .*curl -s/, "exit code, time, processes, bytes");
    assert.match(text, /root {0,5}( +9)? +echo top-test/, "a command with no activity yet");
    assert.match(
      text,
      /echo top-test \\u001b\[31mred/,
      "escape codes in a command are shown, not run",
    );
    assert.ok(!ESC.test(text), "no colour asked, none given");
  });
}

Deno.test("render() uses the room a wide screen has: more columns and more rows", () => {
  const narrow = render(snapshot(), STATUS, initialView(), {
    cols: 80,
    rows: 24,
    color: false,
    fill: true,
  });
  const wide = render(snapshot(), STATUS, initialView(), {
    cols: 200,
    rows: 60,
    color: false,
    fill: true,
  });
  assert.ok(!narrow.join("\n").includes("CONTAINER"));
  assert.ok(wide.join("\n").includes("CONTAINER"));
  const flowRows = (lines: string[]) => lines.filter((l) => /^proc\d+ /.test(l)).length;
  assert.ok(flowRows(wide) > flowRows(narrow) + 20, `${flowRows(wide)} vs ${flowRows(narrow)}`);
});

Deno.test("render() colours only when asked (NO_COLOR turns colour off in view.ts)", () => {
  const { view } = applyKeys(initialView(), "\t\t\t"); // the commands pane gets the rows
  const lines = render(snapshot(), STATUS, view, {
    cols: 80,
    rows: 24,
    color: true,
    fill: true,
  });
  assert.ok(lines.some((l) => ESC.test(l)));
  const red = (text: string) => new RegExp(`\x1b\\[31m *${text}\x1b\\[0m`);
  const command = (cmd: string) => lines.find((l) => l.includes(cmd))!;
  assert.match(command("curl -s"), red("7"), "a non-zero exit code is red");
  assert.ok(!command("dig bench").includes("\x1b[31m"), "exit code 0 is not");
  const flows = render(snapshot(), STATUS, initialView(), {
    cols: 80,
    rows: 24,
    color: true,
    fill: true,
  });
  assert.match(flows.find((l) => l.startsWith("proc2 "))!, red("3"), "so are failures");
  // Styles take no cells (string-width leaves escape codes out).
  for (const l of lines) assert.equal(displayWidth(l), 80);
});

Deno.test("fit() counts CJK characters as two cells and never cuts one in half", () => {
  assert.equal(displayWidth("测试"), 4);
  assert.equal(fit("测试进程", 5), "测试…");
  assert.equal(displayWidth(fit("测试进程", 5)), 5);
  assert.equal(fit("例え", 6), "例え  ");
  assert.equal(fit("ab", 4, true), "  ab");
  assert.equal(displayWidth(fit("👩‍👩‍👧 family", 6)), 6);
});

Deno.test("render() with a frame's worth of keys: Tab focuses DNS, / filters every pane", () => {
  let { view } = applyKeys(initialView(), "\t");
  let text = render(snapshot(), STATUS, view, { cols: 100, rows: 30, color: false, fill: true })
    .join("\n");
  assert.match(text, /▶ DNS/);
  ({ view } = applyKeys(view, "/proc33\r"));
  text = render(snapshot(), STATUS, view, { cols: 100, rows: 30, color: false, fill: true })
    .join("\n");
  assert.match(text, /Flows \(1 of 40\)/);
  assert.match(text, /proc33 /);
  assert.ok(!text.includes("proc3 "));
  assert.match(text, /nothing matches "proc33"/, "the DNS pane says why it is empty");
});

Deno.test("render() sorts the focused pane by what `s` picks", () => {
  const flowsBy = (keys: string) => {
    const { view } = applyKeys(initialView(), keys);
    return render(snapshot(5), STATUS, view, { cols: 100, rows: 30, color: false, fill: true })
      .filter((l) => /^(proc\d|测试)/.test(l)).map((l) => l.split(" ")[0]);
  };
  assert.deepEqual(flowsBy(""), ["测试进程名字很…", "proc1", "proc2", "proc3", "proc4"], "by rate");
  assert.deepEqual(flowsBy("s"), ["proc4", "proc3", "proc2", "proc1", "测试进程名字很…"], "by in");
  assert.deepEqual(flowsBy("ssss").slice(0, 1), ["proc2"], "by failures");
});

Deno.test("render() on the drops pane: Tab twice, sorted by rate, then by bytes, reason, process", () => {
  const dropsBy = (keys: string) => {
    const { view } = applyKeys(initialView(), "\t\t" + keys);
    const lines = render(snapshot(), STATUS, view, {
      cols: 200,
      rows: 60,
      color: false,
      fill: true,
    });
    assert.ok(lines.some((l) => l.startsWith("▶ Drops (2) · sort: ")));
    assert.match(
      lines.join("\n"),
      /^REASON +DIR PROCESS +PID +NETNS PROTO LOCAL PEER +PKT\/S +BYTES/m,
    );
    return lines.filter((l) => /^(NO_SOCKET|NETFILTER_DROP) /.test(l)).map((l) => l.split(" ")[0]);
  };
  assert.deepEqual(dropsBy(""), ["NO_SOCKET", "NETFILTER_DROP"]);
  assert.deepEqual(dropsBy("ss"), ["NETFILTER_DROP", "NO_SOCKET"], "by reason");
  assert.deepEqual(dropsBy("sss"), ["NO_SOCKET", "NETFILTER_DROP"], "by process");
});

Deno.test("formatRate() says bytes a second in three digits", () => {
  assert.equal(formatRate(512), "512B/s");
  assert.equal(formatRate(5_000_000), "5.00MB/s");
  assert.equal(formatRate(12_345), "12.3kB/s");
});

Deno.test("firstInOrder() keeps the first n of many rows as a full sort would", () => {
  const rows = Array.from({ length: 1000 }, (_, i) => (i * 7919) % 1000);
  const order = (a: number, b: number) => b - a;
  assert.deepEqual(firstInOrder(rows, order, 5), [999, 998, 997, 996, 995]);
  assert.deepEqual(firstInOrder([3, 1, 2], order, 10), [3, 2, 1]);
  assert.deepEqual(firstInOrder(rows, order, 0), []);
});

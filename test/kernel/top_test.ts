/**
 * `deno task top` as a person uses it: typed into a 100×30 tmux pane, with a local iperf3 at a
 * fixed 40 Mbit/s, DNS lookups (dig) against a local dnsmasq on 127.0.0.1:53 and a command typed
 * in another pane; read back with `capture-pane`, driven with keys, quit with `q`. And in a
 * 120×40 pane: a connect refused by a closed loopback port (a failure on its flow, a NO_SOCKET
 * drop) and a typed `false` (exit code 1).
 */
import assert from "node:assert/strict";
import { Child, sleep } from "../../scripts/bench/child.ts";
import { startDnsmasq } from "../../scripts/bench/dns.ts";
import { ROOT } from "../_run_command.ts";
import { kernelTest } from "./_kernel.ts";
import { BASH, PROMPT, Tmux } from "./_tmux.ts";

const NEEDS = {
  objects: ["bash", "netflow", "dns", "netdrop"],
  tools: ["tmux", "iperf3", "dnsmasq", "dig"],
};

/** The status line once the collector's own probe reported (the view has had a frame). */
const STARTED = / top \d\d:\d\d:\d\d │ probes:.*self │ lost \d+ │ drops /;

/** `4.77MB/s` → bytes a second. */
function rateOf(text: string): number {
  const m = /^([\d.]+)(B|kB|MB|GB)\/s$/.exec(text);
  assert.ok(m, `a rate: ${text}`);
  return Number(m[1]) * { B: 1, kB: 1e3, MB: 1e6, GB: 1e9 }[m[2]]!;
}

/** The in and out rates of the screen's iperf3 rows, highest first. */
function iperfRates(screen: string): number[] {
  return screen.split("\n").filter((l) => /^iperf3 /.test(l)).map((l) => {
    const [inRate, outRate] = l.match(/\S+B\/s/g)!.map(rateOf);
    return Math.max(inRate, outRate);
  }).sort((a, b) => b - a);
}

kernelTest(
  "deno task top shows iperf3 at its rate, a DNS name with its count, a typed command; " +
    "Tab, / and q work and the terminal comes back clean",
  NEEDS,
  async () => {
    await using _dns = await startDnsmasq(53); // the dns probe's default port
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    await using _server = new Child("iperf3", ["-s", "-1", "-B", "127.0.0.1", "-p", `${port}`], {
      discardStdout: true,
    });
    await using tmux = new Tmux();
    // Not "top": tmux reads that as a pane position.
    await tmux.start("viewer", BASH, 100, 30);
    await tmux.waitForScreen("viewer", PROMPT);
    await tmux.type("viewer", `cd ${ROOT} && ${Deno.execPath()} task top; echo "exit=$?"`);
    await tmux.waitForScreen("viewer", STARTED, 30_000);
    assert.equal(
      await tmux.display("viewer", "#{alternate_on}"),
      "1",
      "drawn on the alternate screen",
    );

    await tmux.start("root", BASH);
    await tmux.waitForScreen("root", PROMPT);
    await tmux.type("root", "echo top-test-$((6*7))");
    for (let i = 0; i < 5; i++) {
      const dig = await new Deno.Command("dig", {
        args: ["@127.0.0.1", "bench.test", "+short", "+tries=1", "+time=1"],
        stdout: "piped",
      }).output();
      assert.match(new TextDecoder().decode(dig.stdout), /127\.0\.0\.7/);
    }
    await using client = new Child("iperf3", [
      ...["-c", "127.0.0.1", "-p", `${port}`, "-b", "40M", "-t", "30"],
    ], { discardStdout: true });

    // Once the 5 s window has filled, both ends of the stream show 40 Mbit/s (5 MB/s), ±15%.
    await sleep(7_000);
    let screen = "";
    const deadline = Date.now() + 10_000;
    for (;;) {
      screen = await tmux.screen("viewer");
      const rates = iperfRates(screen);
      if (rates.length >= 2 && rates.slice(0, 2).every((r) => Math.abs(r - 5e6) <= 0.15 * 5e6)) {
        break;
      }
      if (Date.now() > deadline) assert.fail(`iperf3 not at 40 Mbit/s ±15%: ${rates}\n${screen}`);
      await sleep(500);
    }
    assert.ok(!client.exited, "iperf3 still sending");
    // COUNT 5, no errors, a mean and max latency, the asking program.
    assert.match(
      screen,
      /bench\.test +A +[\d.]+ +5 +[\d.]+(µs|ms) +[\d.]+(µs|ms) +dig/,
      `the name, with its 5 queries:\n${screen}`,
    );
    assert.ok(screen.includes("echo top-test-$((6*7))"), `the command typed:\n${screen}`);
    // Log lines are held (the keys line names the latest), never written over the frame.
    assert.ok(
      !/^(attached |collecting with)/m.test(screen),
      `no log line on the screen:\n${screen}`,
    );
    for (const line of screen.split("\n")) assert.ok([...line].length <= 100);

    await tmux.press("viewer", "Tab");
    await tmux.waitForScreen("viewer", /▶ DNS/);
    await tmux.press("viewer", "/");
    await tmux.type("viewer", "iperf3");
    await tmux.waitForScreen("viewer", /filter "iperf3"/);
    screen = await tmux.screen("viewer");
    assert.match(screen, /nothing matches "iperf3"/, "DNS rows are filtered too");
    assert.match(screen, /^iperf3 /m);

    await tmux.press("viewer", "q");
    await tmux.waitForScreen("viewer", /exit=\d+\n(.*\n)*?.*[$#]\s*$/, 30_000);
    screen = await tmux.screen("viewer", { history: true });
    assert.match(screen, /exit=0/);
    assert.match(screen, /stopping \(q pressed\)/, "the held log lines, printed at exit");
    assert.match(screen, /summary: .*frames_drawn\{stage=screen\}=\d+/);
    assert.equal(await tmux.display("viewer", "#{alternate_on}"), "0", "the normal screen is back");
    assert.equal(await tmux.display("viewer", "#{cursor_flag}"), "1", "the cursor is shown");
    // deno-lint-ignore no-control-regex
    assert.ok(!/\x1b|\^\[|\[\?\d+[hl]/.test(screen), `no stray escape codes:\n${screen}`);
  },
);

kernelTest(
  "deno task top: Ctrl-C in raw mode (a byte, not a signal) stops it and flushes",
  { objects: NEEDS.objects, tools: ["tmux"] },
  async () => {
    await using tmux = new Tmux();
    await tmux.start("viewer", BASH, 80, 24);
    await tmux.waitForScreen("viewer", PROMPT);
    await tmux.type("viewer", `cd ${ROOT} && ${Deno.execPath()} task top; echo "exit=$?"`);
    await tmux.waitForScreen("viewer", / top \d\d:\d\d:\d\d │ probes:.*self/, 30_000);
    await tmux.press("viewer", "C-c");
    await tmux.waitForScreen("viewer", /exit=\d+\n(.*\n)*?.*[$#]\s*$/, 30_000);
    const screen = await tmux.screen("viewer", { history: true });
    assert.match(screen, /exit=0/);
    assert.match(screen, /stopping \(Ctrl-C\): draining and flushing/);
    assert.match(screen, /summary: /);
    assert.equal(await tmux.display("viewer", "#{alternate_on}"), "0");
  },
);

/** A loopback port nothing listens on, below every Linux ephemeral range (never folded). */
function closedPort(): number {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch { /* taken: another */ }
  }
}

/** Polls the viewer's screen until `pattern` matches; fails with the screen after `timeoutMs`. */
async function screenMatching(tmux: Tmux, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  await tmux.waitForScreen("viewer", pattern, timeoutMs);
  return await tmux.screen("viewer");
}

kernelTest(
  "deno task top: a connect refused by a closed loopback port is a failure on its flow and a " +
    "NO_SOCKET drop; a typed `false` shows exit code 1",
  { objects: NEEDS.objects, tools: ["tmux"] },
  async () => {
    const port = closedPort();
    await using tmux = new Tmux();
    await tmux.start("viewer", BASH, 120, 40);
    await tmux.waitForScreen("viewer", PROMPT);
    await tmux.type("viewer", `cd ${ROOT} && ${Deno.execPath()} task top; echo "exit=$?"`);
    await tmux.waitForScreen("viewer", STARTED, 30_000);
    await tmux.press("viewer", "s", "s", "s", "s"); // flows by failures
    await tmux.waitForScreen("viewer", /▶ Flows .* sort: failures/);

    await tmux.start("shell", BASH);
    await tmux.waitForScreen("shell", PROMPT);
    await tmux.type("shell", "false");
    // bash connects itself: the flow is bash's, refused by the kernel's reset.
    await tmux.type("shell", `: </dev/tcp/127.0.0.1/${port}`);
    await tmux.waitForScreen("shell", /Connection refused/);

    // Within the 5 s window: FAIL 1 on bash's flow to the port (IN, OUT, RETR before it).
    let screen = await screenMatching(
      tmux,
      new RegExp(`^bash +\\d+ .* out +127\\.0\\.0\\.1:${port} +0B/s +0B/s +0 +1(\\s|$)`, "m"),
    );
    assert.match(screen, /drops [1-9][\d.]*\/s|drops 0\.[1-9]\/s/, `drops a second:\n${screen}`);

    await tmux.press("viewer", "Tab", "Tab");
    // The reset's SYN came in to the closed port: this host's end is the port, the client's `*`.
    screen = await screenMatching(
      tmux,
      new RegExp(`^NO_SOCKET +in +.* tcp +${port} 127\\.0\\.0\\.1:\\* +(1\\.0|0\\.[1-9])`, "m"),
    );
    assert.match(screen, /▶ Drops \(\d+\) · sort: rate/);

    // `false`'s bash_activity (2 s grace and a poll after it ended) fills in its row: EXIT 1.
    // TIME USER PID EXIT TIME+ PROC BYTES DNS FAIL COMMAND: a builtin starts no process.
    screen = await screenMatching(
      tmux,
      /^\d\d:\d\d:\d\d root +\d+ +1 +\S+ +0 +0B +0 +0 false\s*$/m,
    );
    // The refused connect's command: exit code 1 and its failure, joined by cmd_id.
    assert.match(screen, /^\d\d:\d\d:\d\d root +\d+ +1 +\S+ +0 +0B +0 +1 : <\/dev\/tcp/m);
    for (const line of screen.split("\n")) assert.ok([...line].length <= 120);

    await tmux.press("viewer", "q");
    await tmux.waitForScreen("viewer", /exit=\d+\n(.*\n)*?.*[$#]\s*$/, 30_000);
    assert.match(await tmux.screen("viewer", { history: true }), /exit=0/);
  },
);

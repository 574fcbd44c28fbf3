/** A real DNS server for the kernel tests: dnsmasq on loopback with local records. */

/** dnsmasq on 127.0.0.1 and ::1, port `port`, with the test's records; stopped on dispose. */
export async function startDnsmasq(
  port: number,
  ttl = 2,
): Promise<AsyncDisposable & { pid: number }> {
  const child = new Deno.Command("dnsmasq", {
    args: [
      "--no-daemon",
      "--no-resolv",
      "--no-hosts",
      `--port=${port}`,
      "--listen-address=127.0.0.1,::1",
      "--bind-interfaces",
      "--user=root",
      "--pid-file=",
      `--local-ttl=${ttl}`,
      "--address=/a.test/127.0.0.7",
      "--address=/svc.test/127.0.0.9",
      "--host-record=both.test,127.0.0.8,::8",
      "--cname=alias.test,both.test",
      "--local=/test/", // other names under .test: NXDOMAIN; outside it: REFUSED (no upstream)
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Ready when it answers.
  for (let i = 0; i < 50; i++) {
    const out = await new Deno.Command("dig", {
      args: ["@127.0.0.1", "-p", String(port), "a.test", "+short", "+tries=1", "+time=1"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (new TextDecoder().decode(out.stdout).includes("127.0.0.7")) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    pid: child.pid,
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await child.status;
      await child.stderr.cancel().catch(() => {});
    },
  };
}

/**
 * What the throwaway test servers (`_influxdb.ts`, `_victoriametrics.ts`) share: finding the
 * binary, free loopback ports, a test declared only where the server is installed, and the
 * process itself (its output kept in a log file, started until a readiness check passes, stopped
 * with a deadline). Each server's own file says how to configure and query it.
 */

const STARTUP_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;

/** The absolute path of `tool` in `$PATH`, or undefined. */
export function findInPath(tool: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${tool}`).isFile) return `${dir}/${tool}`;
    } catch { /* not here */ }
  }
  return undefined;
}

/** A TCP port free on 127.0.0.1 now. */
export function freePort(): number {
  return freePorts(1)[0];
}

/** `n` distinct free loopback ports (all held open while picking, so they differ). */
export function freePorts(n: number): number[] {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

/**
 * Declares a test that needs the server binary `tool` (shown as `[label]` in the name): runs
 * it, or skips it with the reason in its name; with EBPF_REQUIRE_KERNEL_TESTS=1 (CI sets it) a
 * skip is a failure instead, as for kernel tests.
 *
 * @example
 * ```ts
 * serverTest("influxd", "influxdb", "points read back equal", async () => {});
 * ```
 */
export function serverTest(
  tool: string,
  label: string,
  name: string,
  fn: () => Promise<void> | void,
): void {
  const reason = findInPath(tool) ? undefined : `${tool} not installed`;
  if (reason && Deno.env.get("EBPF_REQUIRE_KERNEL_TESTS") === "1") {
    Deno.test(`${name} [${label}]`, () => {
      throw new Error(`${label} test could not run (${reason}) and EBPF_REQUIRE_KERNEL_TESTS=1`);
    });
    return;
  }
  Deno.test({
    name: reason ? `${name} [skipped: ${reason}]` : `${name} [${label}]`,
    ignore: reason !== undefined,
    fn,
  });
}

/**
 * One server process started by a test: stdout and stderr appended to `log`, `start()` resolves
 * once `ready()` says so (or throws with the log's tail when it exits or takes too long),
 * `stop()` signals it and waits, with SIGKILL after a deadline.
 */
export class ServerProcess {
  readonly #tool: string;
  readonly #args: string[];
  readonly #log: string;
  readonly #ready: () => Promise<boolean>;
  #child?: Deno.ChildProcess;
  #status?: Promise<Deno.CommandStatus>;
  #exited = false;
  #pumps: Promise<void>[] = [];

  /** `ready` is polled every 50 ms while starting; a throw counts as "not yet". */
  constructor(tool: string, args: string[], log: string, ready: () => Promise<boolean>) {
    this.#tool = tool;
    this.#args = args;
    this.#log = log;
    this.#ready = ready;
  }

  /** The last lines the server wrote (stdout and stderr), for error messages. */
  logTail(chars = 4000): string {
    let text = "";
    try {
      text = Deno.readTextFileSync(this.#log);
    } catch { /* not written yet */ }
    return text.length > chars
      ? `...${text.slice(-chars)}`
      : text || `(${this.#tool} wrote nothing)`;
  }

  async start(): Promise<void> {
    if (this.#child) return;
    const child = new Deno.Command(findInPath(this.#tool) ?? this.#tool, {
      args: this.#args,
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
          `${this.#tool} exited with code ${status.code} while starting:\n${this.logTail()}`,
        );
      }
      try {
        if (await this.#ready()) return;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) {
        throw new Error(
          `${this.#tool} was not ready within ${STARTUP_TIMEOUT_MS} ms:\n${this.logTail()}`,
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
      throw new Error(`${this.#tool} did not stop within ${STOP_TIMEOUT_MS} ms of ${signal}`);
    }
  }
}

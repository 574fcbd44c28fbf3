/**
 * A V8 CPU profile of the collector over one stretch of time, taken through its inspector
 * (`deno run --inspect`). Not `--cpu-prof`: that samples from the start with SIGPROF, and a
 * signal arriving while the kernel verifies a BPF program fails the load with EAGAIN (seen:
 * netflow disabled in every --cpu-prof run), so the collector would be measured without it.
 */
import { sleep } from "./child.ts";
import type { CpuProfile } from "./cpu_profile.ts";

/** `--inspect` on a port of its own, for `Collector.start`'s `denoFlags`. */
export function inspectFlag(port: number): string {
  return `--inspect=127.0.0.1:${port}`;
}

/** A profiler session on the process listening on `port`. */
export class Profiler implements Disposable {
  readonly #socket: WebSocket;
  readonly #pending = new Map<number, (result: unknown) => void>();
  #next = 1;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      this.#pending.get(message.id)?.(message.result);
      this.#pending.delete(message.id);
    };
  }

  /** Connects to the inspector on `port` and starts sampling (every `intervalUs`). */
  static async start(port: number, intervalUs = 500): Promise<Profiler> {
    let targets: { webSocketDebuggerUrl: string }[] = [];
    for (let tries = 0; targets.length === 0; tries++) {
      try {
        targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
      } catch (e) {
        if (tries > 50) throw e;
        await sleep(100);
      }
    }
    const socket = new WebSocket(targets[0].webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = reject;
    });
    const profiler = new Profiler(socket);
    await profiler.#call("Profiler.enable");
    await profiler.#call("Profiler.setSamplingInterval", { interval: intervalUs });
    await profiler.#call("Profiler.start");
    return profiler;
  }

  #call(method: string, params: object = {}): Promise<unknown> {
    const id = this.#next++;
    this.#socket.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve) => this.#pending.set(id, resolve));
  }

  /**
   * Stops sampling, disconnects (a Deno process with a debugger attached does not exit) and
   * returns the profile.
   */
  async stop(): Promise<CpuProfile> {
    const result = await this.#call("Profiler.stop") as { profile: CpuProfile };
    this.#socket.close();
    return result.profile;
  }

  [Symbol.dispose](): void {
    this.#socket.close();
  }
}

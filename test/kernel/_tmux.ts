/** Interactive shells on real ptys through tmux, on a private server socket per test. */

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const shown = `${cmd} ${args.join(" ")}`.slice(0, 200);
    throw new Error(`${shown} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

/** A tmux server with named sessions, each running one interactive program. */
export class Tmux implements AsyncDisposable {
  readonly socket = `ebpfc-test-${Deno.pid}-${Math.random().toString(36).slice(2, 8)}`;

  #tmux(...args: string[]): Promise<string> {
    return run("tmux", ["-L", this.socket, ...args]);
  }

  /**
   * Starts `command` (argv) in a new detached session of `cols`×`rows`; returns the pid of its
   * process.
   */
  async start(session: string, command: string[], cols = 200, rows = 50): Promise<number> {
    await this.#tmux(
      "new-session",
      "-d",
      "-s",
      session,
      "-x",
      `${cols}`,
      "-y",
      `${rows}`,
      ...command,
    );
    return Number(await this.display(session, "#{pane_pid}"));
  }

  /** A tmux format about the session's pane, e.g. `#{alternate_on}` (1: alternate screen on). */
  async display(session: string, format: string): Promise<string> {
    return (await this.#tmux("display-message", "-p", "-t", session, format)).trim();
  }

  /** Presses keys by tmux's names (`Tab`, `Enter`, `C-c`, `q`), not typed as text. */
  async press(session: string, ...keys: string[]): Promise<void> {
    await this.#tmux("send-keys", "-t", session, ...keys);
  }

  /**
   * What the session's screen shows now; with `history`, also the lines scrolled off it, and
   * lines the terminal wrapped joined again.
   */
  screen(session: string, { history = false } = {}): Promise<string> {
    const more = history ? ["-J", "-S", "-"] : [];
    return this.#tmux("capture-pane", "-p", ...more, "-t", session);
  }

  /** Waits until the screen matches `pattern`. */
  async waitForScreen(session: string, pattern: RegExp, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(await this.screen(session))) {
      if (Date.now() > deadline) {
        throw new Error(
          `screen of ${session} never matched ${pattern}: ${await this.screen(session)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Types `text` literally, then Enter. */
  async type(session: string, text: string): Promise<void> {
    // tmux refuses very long commands: send long text in pieces (on code point boundaries).
    const chars = [...text];
    for (let i = 0; i < chars.length; i += 2048) {
      await this.#tmux("send-keys", "-t", session, "-l", chars.slice(i, i + 2048).join(""));
    }
    await this.#tmux("send-keys", "-t", session, "Enter");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#tmux("kill-server").catch(() => {});
  }
}

/** A throwaway login user for a test; removed on dispose. */
export async function createUser(): Promise<
  { name: string; uid: number; gid: number } & AsyncDisposable
> {
  const name = `ebpfc${Math.random().toString(36).slice(2, 9)}`;
  await run("useradd", ["--no-create-home", "--shell", "/bin/bash", name]);
  const uid = Number((await run("id", ["-u", name])).trim());
  const gid = Number((await run("id", ["-g", name])).trim());
  return {
    name,
    uid,
    gid,
    async [Symbol.asyncDispose]() {
      await run("userdel", [name]).catch(() => {});
    },
  };
}

/** The interactive bash the kernel tests type into: no rc files, so the prompt is predictable. */
export const BASH = ["bash", "--norc", "--noprofile"];
/** bash's prompt on screen (`capture-pane` trims the space after it). */
export const PROMPT = /[$#]\s*$/m;

/** An interactive root bash in session "root", waiting at its prompt (inside readline); its pid. */
export async function rootShell(tmux: Tmux): Promise<number> {
  const pid = await tmux.start("root", BASH);
  await tmux.waitForScreen("root", PROMPT);
  return pid;
}

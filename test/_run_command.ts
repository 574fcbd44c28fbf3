/**
 * The `deno task run` command line, read from deno.json, so tests spawn the collector with
 * exactly the permissions users run it with.
 */

/** Repository root (absolute path, with trailing slash). */
export const ROOT = new URL("../", import.meta.url).pathname;

/**
 * Arguments for `deno` that `deno task run` uses, up to and including `src/main.ts`; `root` (with
 * a trailing slash) another checkout of the project, whose own deno.json is read.
 */
export function runTaskArgs(root = ROOT): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${root}deno.json`));
  const words: string[] = config.tasks.run.split(/\s+/);
  if (words[0] !== "deno" || words.at(-1) !== "src/main.ts") {
    throw new Error(`deno.json tasks.run is not "deno run ... src/main.ts": ${config.tasks.run}`);
  }
  return [...words.slice(1, -1), `${root}src/main.ts`];
}

/**
 * Writes a pipeline file under build/tmp/ (inside the folder `deno task run` may read) of this
 * checkout or of `root`, and returns its path.
 */
export function tempPipeline(yaml: string, root = ROOT): string {
  Deno.mkdirSync(`${root}build/tmp`, { recursive: true });
  const path = Deno.makeTempFileSync({
    dir: `${root}build/tmp`,
    prefix: "pipeline-",
    suffix: ".yaml",
  });
  Deno.writeTextFileSync(path, yaml);
  written.push(path);
  return path;
}

// Removed when the test process ends, so build/tmp does not fill up run after run.
const written: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const path of written) {
    try {
      Deno.removeSync(path);
    } catch { /* already gone */ }
  }
});

/**
 * The command `--explain` prints for `pipeline` (`deno run <flags> <script> --pipeline <file>`),
 * split into words, for the mode `args` ask for (e.g. `--replay FILE`); the script is given
 * relative to the repository root, where {@linkcode output} runs by default.
 */
export async function explainedCommand(pipeline: string, args: string[] = []): Promise<string[]> {
  const explained = await output(Deno.execPath(), [
    ...runTaskArgs(),
    "--pipeline",
    pipeline,
    ...args,
    "--explain",
  ]);
  if (explained.code !== 0) throw new Error(`--explain failed: ${explained.stderr}`);
  const line = explained.stdout.trimEnd().split("\n").at(-1)!.trim();
  if (!line.startsWith("deno run ")) {
    throw new Error(`--explain's last line is not a command: ${line}`);
  }
  return line.split(/\s+/);
}

/** Runs `command` to its end (in the repository root unless `cwd`), its output as text. */
export async function output(
  command: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; clearEnv?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(command, {
    args,
    cwd: options.cwd ?? ROOT,
    env: options.env,
    clearEnv: options.clearEnv,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

/**
 * The `deno task run` command line, read from deno.json, so tests spawn the collector with
 * exactly the permissions users run it with.
 */

/** Repository root (absolute path, with trailing slash). */
export const ROOT = new URL("../", import.meta.url).pathname;

/**
 * Arguments for `deno` that `deno task run` uses, up to and including `src/main.ts` (the
 * environment it sets before `deno`, NAME=value, is {@linkcode runTaskEnv}); `root` (with a
 * trailing slash) another checkout of the project, whose own deno.json is read.
 */
export function runTaskArgs(root = ROOT): string[] {
  const words = runTaskWords(root);
  const start = words.findIndex((w) => !ASSIGNMENT.test(w));
  return [...words.slice(start + 1, -1), `${root}src/main.ts`];
}

/** The environment `deno task run` sets for the collector (`DENO_NO_UPDATE_CHECK=1 deno ...`). */
export function runTaskEnv(root = ROOT): Record<string, string> {
  const words = runTaskWords(root);
  const assignments = words.slice(0, words.findIndex((w) => !ASSIGNMENT.test(w)));
  return Object.fromEntries(
    assignments.map((w) => [w.slice(0, w.indexOf("=")), w.slice(w.indexOf("=") + 1)]),
  );
}

const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*=/;

function runTaskWords(root = ROOT): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${root}deno.json`));
  const words: string[] = config.tasks.run.split(/\s+/);
  const start = words.findIndex((w) => !ASSIGNMENT.test(w));
  if (words[start] !== "deno" || words.at(-1) !== "src/main.ts") {
    throw new Error(`deno.json tasks.run is not "deno run ... src/main.ts": ${config.tasks.run}`);
  }
  return words;
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
  const words = await shellWords(line);
  // Environment assignments before the command (NAME=value deno run ...) are not its words.
  const start = words.findIndex((w) => !ASSIGNMENT.test(w));
  if (words[start] !== "deno" || words[start + 1] !== "run") {
    throw new Error(`--explain's last line is not a command: ${line}`);
  }
  return words.slice(start);
}

/**
 * The words bash makes of `line`, as a user pasting it into a shell would run them: quotes
 * removed, `${VAR}` expanded from `env` (nothing else in the environment), run in `cwd`.
 */
export async function shellWords(
  line: string,
  env: Record<string, string> = {},
  cwd?: string,
): Promise<string[]> {
  const out = await new Deno.Command("bash", {
    args: ["-c", `printf '%s\\0' ${line}`],
    cwd,
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`bash cannot read ${line}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout).split("\0").slice(0, -1);
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

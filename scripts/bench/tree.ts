/**
 * A checkout of this project whose collector the benchmark starts: this one, or another one
 * (`--collector-root`, `--compare`), e.g. a worktree of an older commit. Each is run as its own
 * `deno task run` says, from its own directory, with its own pipeline.yaml and BPF objects, so
 * one run of the (newer) benchmark measures an old and a new tree alike.
 */
import { parse, stringify } from "yaml";
import { ROOT, runTaskArgs, tempPipeline } from "../../test/_run_command.ts";

/** One checkout: where it is and which commit it holds. */
export class Tree {
  private constructor(
    /** Absolute path with a trailing slash. */
    readonly root: string,
    /** `<directory name>@<short commit>` (`+` when it has uncommitted changes). */
    readonly label: string,
    /** The short commit, `+` if changed since, or "" outside git. */
    readonly commit: string,
  ) {}

  /** This checkout: the one the benchmark itself runs from. */
  static here(): Promise<Tree> {
    return Tree.open(ROOT);
  }

  /** A checkout at `dir`; fails with what to do if it cannot run a collector. */
  static async open(dir: string, flag = "--collector-root"): Promise<Tree> {
    const root = (dir.startsWith("/") ? dir : `${Deno.cwd()}/${dir}`).replace(/\/*$/, "/");
    for (const needed of ["deno.json", "src/main.ts", "pipeline.yaml"]) {
      if (!exists(`${root}${needed}`)) {
        throw new Error(`${flag} ${dir}: no ${needed} there (not a checkout of this project?)`);
      }
    }
    if (!exists(`${root}build/bpf/netflow.bpf.o`)) {
      throw new Error(
        `${flag} ${dir}: no build/bpf objects; run \`deno install && deno task build\` there`,
      );
    }
    runTaskArgs(root); // its task must be one this benchmark can start: fails with why
    const commit = await gitCommit(root);
    const name = root.slice(0, -1).split("/").at(-1);
    return new Tree(root, commit ? `${name}@${commit}` : name!, commit);
  }

  /** Whether this is the checkout the benchmark runs from. */
  get isHere(): boolean {
    return this.root === ROOT;
  }

  /** `deno` arguments of its `deno task run`, up to and including its src/main.ts. */
  runArgs(): string[] {
    return runTaskArgs(this.root);
  }

  /** Writes `yaml` where its collector may read it (its build/tmp/); the path. */
  pipeline(yaml: string): string {
    return tempPipeline(yaml, this.root);
  }

  /** Its own pipeline.yaml, as text. */
  defaultPipelineText(): string {
    return Deno.readTextFileSync(`${this.root}pipeline.yaml`);
  }
}

/**
 * `text` (a pipeline) with its `dns` probe also watching `dnsPort` (the benchmark's dnsmasq does
 * not take port 53 from the machine's own resolver); unchanged if it has no `dns` probe.
 */
export function withDnsPort(text: string, dnsPort: number): string {
  const pipeline = parse(text);
  const dns = pipeline.probes?.dns;
  if (!dns) return text;
  dns.ports = [...(dns.ports ?? [53]), dnsPort];
  return stringify(pipeline);
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function gitCommit(root: string): Promise<string> {
  const git = (args: string[]) =>
    new Deno.Command("git", { args: ["-C", root, ...args], stdout: "piped", stderr: "null" })
      .output().then((o) => o.success ? new TextDecoder().decode(o.stdout).trim() : undefined)
      .catch(() => undefined);
  // A copy inside another checkout (git archive | tar) is not that checkout's commit.
  if (await git(["rev-parse", "--show-toplevel"]) !== root.slice(0, -1)) return "";
  const commit = await git(["rev-parse", "--short=7", "HEAD"]);
  if (!commit) return "";
  const changed = await git(["status", "--porcelain", "--untracked-files=no"]);
  return changed ? `${commit}+` : commit;
}

/**
 * Where the collector's RSS above an empty `deno run` goes. Five stages of one picture, each a
 * process started with the tree's own `deno task run` flags and read from /proc/<pid>/smaps
 * (smaps.ts), beside V8's own count of its heap:
 *
 * 1. `empty`: a script that only waits;
 * 2. `npm`: one that imports the npm packages the collector's src/ imports (and waits);
 * 3. `modules`: one that imports src/main.ts (every module the collector loads) without running it;
 * 4. `light`: the collector itself on the tree's pipeline.yaml, after some light load;
 * 5. `loaded`: the same collector after the heavy load (the DNS flood).
 *
 * With `parts` (--probes), between 3 and 4 one `part` stage each: the collector on a part of the
 * pipeline (no BPF probe at all, or one probe alone), after the same light load.
 *
 * The step from one to the next is what that layer costs: the packages' code and Deno's npm
 * loader, the collector's own code, then what running adds (V8 heap of live objects, C heap of
 * libbpf and buffers, the BPF rings it maps).
 *
 * V8's figures come from `Deno.memoryUsage()`: the scripts print theirs when their stdin closes
 * (after smaps is read); the collector's `collector` probe reports `heap_used_bytes`, every
 * second here. Not the inspector: `--inspect` itself added up to 5 MiB to the process.
 */
import { parse, stringify } from "yaml";
import { Child, sleep } from "./child.ts";
import { Collector } from "./collector.ts";
import { memoryKb } from "./proc.ts";
import { type MemoryKinds, processMemoryKinds } from "./smaps.ts";
import type { Tree } from "./tree.ts";

/** V8's own count (`Deno.memoryUsage()`), bytes; the collector reports only `heapUsed`. */
export interface V8Usage {
  heapTotal?: number;
  heapUsed: number;
  /** ArrayBuffers' backing stores (outside V8's heap, from malloc). */
  external?: number;
}

/** One process's memory at the moment it was read. */
export interface MemoryStage {
  id: "empty" | "npm" | "modules" | "part" | "light" | "loaded";
  label: string;
  rssKib: number;
  kinds: MemoryKinds;
  v8?: V8Usage;
}

/** The load the collector runs under before each of its readings. */
export interface MemoryLoad {
  light: () => Promise<unknown>;
  heavy: () => Promise<unknown>;
}

/** A pipeline for the collector to run: its text, and the probes that must attach. */
export interface MemoryPipeline {
  label: string;
  text: string;
  expectProbes: string[];
}

/** What the collector of `tree` uses at each stage; see the module's doc. */
export async function memoryStages(
  tree: Tree,
  full: MemoryPipeline,
  load: MemoryLoad,
  parts: MemoryPipeline[] = [],
): Promise<MemoryStage[]> {
  const scripts: [MemoryStage["id"], string, string][] = [
    ["empty", "empty deno run", ""],
    ["npm", "+ npm packages", npmPackages(tree).map((p) => `import "${p}";\n`).join("")],
    ["modules", "+ collector modules", `import "${tree.root}src/main.ts";\n`],
  ];
  const stages: MemoryStage[] = [];
  for (const [id, label, imports] of scripts) {
    await using child = waitingDeno(tree, imports, { reportOnEof: true });
    await sleep(SETTLE_MS);
    const stage = readStage(id, label, child.pid);
    await child.closeStdin();
    await child.waitFor(`${label}: its Deno.memoryUsage()`, () => child.stdout.includes("}\n"));
    stages.push({ ...stage, v8: JSON.parse(child.stdout) });
  }

  for (const part of parts) {
    await using collector = await startReporting(tree, part);
    await load.light();
    stages.push(await collectorStage("part", part.label, collector));
    await collector.stop();
  }

  await using collector = await startReporting(tree, full);
  await load.light();
  stages.push(await collectorStage("light", "collector, light load", collector));
  await load.heavy();
  stages.push(await collectorStage("loaded", "collector, after DNS flood", collector));
  await collector.stop();
  return stages;
}

/** Start-up done, as for the empty run the bench compares RSS with. */
const SETTLE_MS = 1000;

/**
 * `deno run` with `tree`'s collector flags on a script that runs `code` (imports) and then
 * waits until stopped, or with `reportOnEof` prints `Deno.memoryUsage()` once its stdin closes;
 * the script is removed when the process ends.
 */
export function waitingDeno(tree: Tree, code: string, options: { reportOnEof?: boolean } = {}) {
  Deno.mkdirSync(`${tree.root}build/tmp`, { recursive: true });
  const script = Deno.makeTempFileSync({ dir: `${tree.root}build/tmp`, suffix: ".ts" });
  const report = "for await (const _ of Deno.stdin.readable);\n" +
    "console.log(JSON.stringify(Deno.memoryUsage()));\n";
  const wait = "setInterval(() => {}, 1000);\n";
  Deno.writeTextFileSync(script, code + (options.reportOnEof ? report : "") + wait);
  const child = new Child(Deno.execPath(), [...tree.runArgs().slice(0, -1), script], {
    discardStdout: !options.reportOnEof,
    stdin: options.reportOnEof ? "piped" : "null",
    cwd: tree.root,
  });
  void child.finished().finally(() => Deno.remove(script).catch(() => {}));
  return child;
}

/** The npm packages (bare specifiers of deno.json's imports) that `tree`'s src/ imports. */
function npmPackages(tree: Tree): string[] {
  const imports: { [name: string]: string } =
    JSON.parse(Deno.readTextFileSync(`${tree.root}deno.json`)).imports ?? {};
  const npm = Object.keys(imports).filter((name) => imports[name].startsWith("npm:"));
  const used = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(dir)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) walk(path);
      else if (/(?<!_test|_bench)\.ts$/.test(entry.name)) {
        const text = Deno.readTextFileSync(path);
        for (const name of npm) if (text.includes(`from "${name}"`)) used.add(name);
      }
    }
  };
  walk(`${tree.root}src`);
  return [...used].sort();
}

/** The collector on `pipeline`, its `collector` probe (if any) reporting every second. */
function startReporting(tree: Tree, pipeline: MemoryPipeline): Promise<Collector> {
  return Collector.start(tree.pipeline(reportingEverySecond(pipeline.text)), {
    readStdout: true,
    expectProbes: pipeline.expectProbes,
    tree,
  });
}

/** `text` with its `collector` probe (if any) reporting every second, for `heap_used_bytes`. */
function reportingEverySecond(text: string): string {
  const pipeline = parse(text);
  for (const probe of Object.values(pipeline.probes ?? {}) as { type?: string }[]) {
    if (probe.type === "collector") Object.assign(probe, { every: "1s" });
  }
  return stringify(pipeline);
}

function readStage(id: MemoryStage["id"], label: string, pid: number): MemoryStage {
  return { id, label, kinds: processMemoryKinds(pid), rssKib: memoryKb(pid).rss };
}

/** The collector's memory now, with the heap_used_bytes of its next own report. */
async function collectorStage(
  id: MemoryStage["id"],
  label: string,
  collector: Collector,
): Promise<MemoryStage> {
  const stage = readStage(id, label, collector.pid);
  const seen = collector.child.stdout.length;
  let heapUsed: number | undefined;
  try {
    await collector.child.waitFor(`${label}: a _process report`, () => {
      const line = collector.child.stdout.slice(seen).split("\n")
        .find((l) => l.includes('"_process"') && l.endsWith("}"));
      heapUsed = line ? Number(JSON.parse(line).fields.heap_used_bytes) : undefined;
      return heapUsed !== undefined;
    }, 5000);
  } catch (e) {
    if (collector.child.exited) throw e; // else: a pipeline with no `collector` probe
  }
  return heapUsed === undefined ? stage : { ...stage, v8: { heapUsed } };
}

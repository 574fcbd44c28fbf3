/**
 * Who may import whom (STYLE.md): transforms, windows and outputs work on records alone, so
 * they never reach the kernel (`ffi/`) or this host's facts (`src/system/`), directly or
 * through anything they import; host facts reach them through their context. And `src/` has no
 * import cycle. The graph is Deno's own (`deno info --json`, type-only imports included), of
 * every module under src/ and ffi/ except tests and benches. No root, about a second.
 */
import assert from "node:assert/strict";
import { ROOT } from "./_run_command.ts";

/** Every module of src/ and ffi/ that is not a test or a bench, as file URLs. */
async function modules(): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(`${ROOT}${dir}`)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (/\.ts$/.test(entry.name) && !/_(test|bench)\.ts$/.test(entry.name)) {
        found.push(`file://${ROOT}${path}`);
      }
    }
  };
  await walk("src");
  await walk("ffi");
  return found.sort();
}

/** One import in `deno info --json`: what it resolved to as code and as types. */
interface Dependency {
  code?: { specifier: string };
  type?: { specifier: string };
}

/** Each local module's local imports (code and type-only), from one `deno info` of them all. */
async function importGraph(): Promise<Map<string, string[]>> {
  const root = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(
      root,
      (await modules()).map((m) => `import type {} from "${m}";\n`).join(""),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", "--config", `${ROOT}deno.json`, root],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const info = JSON.parse(new TextDecoder().decode(out.stdout));
    const local = (s: string | undefined) =>
      s?.startsWith(`file://${ROOT}`) ? s.slice(`file://${ROOT}`.length) : undefined;
    const graph = new Map<string, string[]>();
    for (const m of info.modules) {
      const from = local(m.specifier);
      if (from === undefined || !/^(src|ffi)\//.test(from)) continue;
      const deps: Dependency[] = m.dependencies ?? [];
      const localDeps = deps.flatMap((d) => [local(d.code?.specifier), local(d.type?.specifier)]);
      graph.set(from, [...new Set(localDeps.filter((d) => d !== undefined))]);
    }
    return graph;
  } finally {
    await Deno.remove(root);
  }
}

/** A path of imports from `start` to a module `bad` accepts, if there is one. */
function pathTo(
  graph: Map<string, string[]>,
  start: string,
  bad: (m: string) => boolean,
): string[] | undefined {
  const cameFrom = new Map<string, string>([[start, ""]]);
  const queue = [start];
  while (queue.length > 0) {
    const m = queue.shift()!;
    if (bad(m)) {
      const path = [m];
      for (let at = cameFrom.get(m)!; at; at = cameFrom.get(at)!) path.unshift(at);
      return path;
    }
    for (const next of graph.get(m) ?? []) {
      if (!cameFrom.has(next)) cameFrom.set(next, m), queue.push(next);
    }
  }
  return undefined;
}

/** Import cycles among `nodes`, each as one path that comes back to its start. */
function cycles(graph: Map<string, string[]>, nodes: string[]): string[][] {
  const found: string[][] = [];
  const done = new Set<string>();
  for (const start of nodes) {
    const cycle = pathTo(
      new Map([...graph].map(([m, deps]) => [m, done.has(m) ? [] : deps])),
      start,
      (m) => m !== start && (graph.get(m) ?? []).includes(start),
    );
    if (cycle) found.push([...cycle, start]);
    done.add(start);
  }
  return found;
}

const graph = await importGraph();

Deno.test("the import graph covers the stages and the kernel layer", () => {
  // A walk that found nothing would pass every check below.
  for (const m of ["src/main.ts", "src/transforms/container.ts", "ffi/libbpf.ts"]) {
    assert.ok(graph.has(m), `${m} missing from the graph`);
  }
  assert.ok(graph.get("src/main.ts")!.includes("src/pipeline/load.ts"));
});

Deno.test("no transform, window or output imports ffi/ or src/system/, even through others", () => {
  const stages = [...graph.keys()].filter((m) => /^src\/(transforms|windows|outputs)\//.test(m));
  const reaches = stages.flatMap((m) => {
    const path = pathTo(graph, m, (d) => /^(ffi|src\/system)\//.test(d));
    return path ? [path.join(" -> ")] : [];
  });
  assert.deepEqual(reaches, []);
});

Deno.test("src/ has no import cycle", () => {
  const src = [...graph.keys()].filter((m) => m.startsWith("src/")).sort();
  const found = cycles(graph, src).map((c) => c.join(" -> "));
  assert.deepEqual(found, []);
});

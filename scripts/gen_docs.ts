/**
 * `deno task docs`: writes the parts of the docs that restate the stage registry
 * (src/pipeline/registry.ts), between marker comments in the committed files, so a new stage
 * type is documented by its def alone:
 *
 * - README.md `probes`: each probe and what it collects.
 * - docs/capabilities.md `capabilities`: each probe's capabilities and the default pipeline's.
 * - docs/pipeline.md `stages`: every stage type with what it does and its capabilities.
 * - docs/pipeline.md `keys`: every stage type's keys, defaults and one-line docs.
 * - docs/self-metrics.md `losses`: every loss counter the loss watch warns about, and why.
 *
 * A block is `<!-- generated: NAME (deno task docs) -->` ... `<!-- end generated: NAME -->`;
 * the text around it is written by hand. `scripts/gen_docs_test.ts` fails when a committed
 * block differs from what this would write. The text goes through `deno fmt` (tables aligned),
 * so `deno task check` and this agree.
 */
import { parse } from "yaml";
import { REGISTRY, SECTIONS } from "../src/pipeline/registry.ts";
import { declaredLosses, lossKinds } from "../src/pipeline/loss_watch.ts";
import type { KeySpec } from "../src/pipeline/schema.ts";
import type { StageDef } from "../src/pipeline/stage.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** The files with generated blocks, and what each block holds. */
export const GENERATED: { [file: string]: { [block: string]: () => string } } = {
  "README.md": { probes: probesBlock },
  "docs/capabilities.md": { capabilities: capabilitiesBlock },
  "docs/pipeline.md": { stages: stagesBlock, keys: keysBlock },
  "docs/self-metrics.md": { losses: lossesBlock },
};

/** A table cell: one line, `|` escaped. */
function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

function table(head: string[], rows: string[][]): string {
  return [head, head.map(() => "-"), ...rows].map((r) => `| ${r.map(cell).join(" | ")} |`)
    .join("\n");
}

const list = (items: readonly string[]) => items.map((i) => `\`${i}\``).join(", ");
const caps = (def: StageDef) => def.capabilities?.length ? def.capabilities.join(", ") : "none";

function probesBlock(): string {
  const rows = [...REGISTRY.probes.values()].map((d) => [`\`${d.type}\``, d.describe]);
  return table(["probe", "what it collects"], rows);
}

function capabilitiesBlock(): string {
  const probes = [...REGISTRY.probes.values()];
  const rows = probes.map((d) => [`\`${d.type}\``, caps(d)]);
  const types: string[] = Object.values(
    parse(Deno.readTextFileSync(`${ROOT}pipeline.yaml`)).probes as {
      [name: string]: { type: string };
    },
  ).map((p) => p.type);
  const needed = [...new Set(types.flatMap((t) => REGISTRY.probes.get(t)?.capabilities ?? []))];
  return `${table(["probe", "capabilities"], rows)}

**The default pipeline** (${list([...new Set(types)])}) needs **${needed.join(", ")}**.`;
}

function lossesBlock(): string {
  const declaredBy = (counter: string) =>
    SECTIONS.flatMap((s) => [...REGISTRY[s].values()])
      .filter((d) => [...d.drops ?? [], ...d.losses ?? []].some((l) => l.counter === counter))
      .map((d) => d.type);
  const declared = new Set(declaredLosses().map((l) => l.counter));
  const rows = Object.entries(lossKinds()).map(([counter, k]) => [
    `\`${counter}\``,
    k.what,
    k.why ?? (counter === "records_dropped" ? "its `reason` label says" : ""),
    declared.has(counter) ? list(declaredBy(counter)) : "the runtime, outputs",
  ]);
  return table(["counter", "what is lost", "why", "counted by"], rows);
}

function stagesBlock(): string {
  const rows = SECTIONS.flatMap((section) =>
    [...REGISTRY[section].values()].map((d) => [
      section,
      `[\`${d.type}\`](#${anchor(d)})`,
      d.describe,
      d.kind === "probe" ? caps(d) : "",
    ])
  );
  return table(["section", "type", "what it does", "capabilities"], rows);
}

/** The heading of a stage type's keys, and its anchor (GitHub's: lower case, spaces to `-`). */
const heading = (d: StageDef) => `\`${d.type}\` ${d.kind}`;
const anchor = (d: StageDef) => `${d.type}-${d.kind}`.toLowerCase();

function keysBlock(): string {
  return SECTIONS.flatMap((section) =>
    [...REGISTRY[section].values()].map((d) => {
      const rows = Object.entries(d.schema).map(([key, spec]) => [
        `\`${key}\``,
        spec.type === "custom" ? "" : spec.type,
        defaultText(spec),
        spec.doc + (spec.required ? " (required)" : "") + (spec.secret ? " (a secret)" : ""),
      ]);
      const keys = rows.length ? table(["key", "type", "default", "what"], rows) : "No keys.";
      const inputs = d.kind === "probe" ? "" : " Reads the stages named in `inputs`.";
      const needs = d.kind === "probe" ? ` Capabilities: ${caps(d)}.` : "";
      return `### ${heading(d)}\n\n${d.describe}${inputs}${needs}\n\n${keys}`;
    })
  ).join("\n\n");
}

function defaultText(spec: KeySpec): string {
  if (!("default" in spec) || spec.default === undefined) return "";
  const d = spec.default;
  if (typeof d === "string") return d === "" ? '`""`' : `\`${d}\``;
  return `\`${JSON.stringify(d)}\``;
}

/** `text` with each of `blocks` replaced by what it generates; throws on a missing marker. */
export function withBlocks(
  file: string,
  text: string,
  blocks: { [block: string]: () => string },
): string {
  for (const [name, make] of Object.entries(blocks)) {
    const begin = `<!-- generated: ${name} (deno task docs) -->`;
    const end = `<!-- end generated: ${name} -->`;
    const from = text.indexOf(begin), to = text.indexOf(end);
    if (from < 0 || to < from) throw new Error(`${file}: no "${begin}" ... "${end}"`);
    text = `${text.slice(0, from + begin.length)}\n\n${make()}\n\n${text.slice(to)}`;
  }
  return text;
}

/** Formats markdown as `deno fmt` does with this project's settings. */
export async function formatMarkdown(text: string): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext", "md", "-"],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  if (!out.success) throw new Error(`deno fmt: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

/** Each file with generated blocks: what is committed, and what this task would write. */
export async function generatedDocs(): Promise<{ file: string; now: string; want: string }[]> {
  const docs = [];
  for (const [file, blocks] of Object.entries(GENERATED)) {
    const now = Deno.readTextFileSync(`${ROOT}${file}`);
    docs.push({ file, now, want: await formatMarkdown(withBlocks(file, now, blocks)) });
  }
  return docs;
}

if (import.meta.main) {
  for (const { file, now, want } of await generatedDocs()) {
    if (now === want) continue;
    Deno.writeTextFileSync(`${ROOT}${file}`, want);
    console.error(`docs: wrote ${file}`);
  }
}

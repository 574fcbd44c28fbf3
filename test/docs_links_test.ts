/**
 * The README and docs/ link to each other: every relative link names a file that exists, and
 * every `#anchor` a heading of that file (GitHub's slugs), so moving a section breaks a test,
 * not a reader's click.
 */
import assert from "node:assert/strict";
import { ROOT } from "./_run_command.ts";

/** GitHub's anchor for a heading: lower case, punctuation but `-` and `_` gone, spaces `-`. */
export function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/\s/g, "-");
}

/** The anchors of a markdown file's headings (outside code blocks). */
function anchors(text: string): Set<string> {
  const found = new Set<string>();
  let fenced = false;
  for (const line of text.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    const h = !fenced && line.match(/^#{1,6} (.+)$/);
    if (h) found.add(slug(h[1]));
  }
  return found;
}

/** Relative links `[text](target)` of a markdown file, outside code blocks and inline code. */
function links(text: string): string[] {
  const out: string[] = [];
  let fenced = false;
  for (const line of text.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    if (fenced) continue;
    for (const m of line.replace(/`[^`]*`/g, "").matchAll(/\]\(([^)\s]+)\)/g)) {
      if (!/^[a-z]+:/.test(m[1])) out.push(m[1]);
    }
  }
  return out;
}

Deno.test("every relative link in README.md and docs/ resolves, anchors included", () => {
  const files = [
    "README.md",
    ...[...Deno.readDirSync(`${ROOT}docs`)]
      .filter((e) => e.name.endsWith(".md")).map((e) => `docs/${e.name}`),
  ];
  let checked = 0;
  for (const file of files) {
    const dir = file.includes("/") ? file.slice(0, file.lastIndexOf("/") + 1) : "";
    for (const link of links(Deno.readTextFileSync(`${ROOT}${file}`))) {
      const [path, anchor] = link.split("#");
      const target = path ? new URL(path, `file://${ROOT}${dir}`).pathname : `${ROOT}${file}`;
      let text: string;
      try {
        text = Deno.readTextFileSync(target);
      } catch {
        assert.fail(`${file}: link ${link}: no ${target.slice(ROOT.length)}`);
      }
      if (anchor) {
        assert.ok(anchors(text).has(anchor), `${file}: link ${link}: no heading #${anchor}`);
      }
      checked++;
    }
  }
  assert.ok(checked > 20, `only ${checked} links found`);
});

Deno.test("slug() makes GitHub's anchors", () => {
  assert.equal(slug("Permissions (least privilege)"), "permissions-least-privilege");
  assert.equal(slug("`dns_domain` transform"), "dns_domain-transform");
  assert.equal(slug("The bash probe's uretprobe"), "the-bash-probes-uretprobe");
});

/**
 * The capabilities table of docs/capabilities.md, read the one way both the deployment test and
 * the kernel capabilities test check against, so a change to the table's layout is met once.
 */
import { ROOT } from "./_run_command.ts";

/** The capabilities docs/capabilities.md lists per probe type, from its table. */
export function documentedCapabilities(): Map<string, string[]> {
  const doc = Deno.readTextFileSync(`${ROOT}docs/capabilities.md`);
  const rows = new Map<string, string[]>();
  for (const m of doc.matchAll(/^\| `(\w+)`\s*\|\s*([A-Z_, ]+|none)\s*\|$/gm)) {
    rows.set(m[1], m[2].trim() === "none" ? [] : m[2].split(",").map((c) => c.trim()));
  }
  return rows;
}

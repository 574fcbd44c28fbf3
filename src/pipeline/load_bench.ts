/** How long checking a pipeline takes (what `--check` does after Deno starts). */
import { parsePipeline } from "./load.ts";

const DEFAULT = Deno.readTextFileSync(new URL("../../pipeline.yaml", import.meta.url));

Deno.bench("parsePipeline() on the default pipeline.yaml", () => {
  parsePipeline("pipeline.yaml", DEFAULT, () => undefined);
});

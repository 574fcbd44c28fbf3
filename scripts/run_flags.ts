/**
 * Prints, one a line, the `deno` flags the collector needs to run PIPELINE (Deno's runtime
 * flags, then the permissions `--explain` derives), with `${VAR}`s read from this environment:
 * `scripts/package.sh compile` builds them into the binary, as an array, never a split string.
 *
 *   deno run --allow-read --allow-env --allow-sys=hostname scripts/run_flags.ts PIPELINE
 *
 * Exits 2 with one line per problem when the pipeline is bad.
 */
import { describeError } from "../src/errors.ts";
import { loadPipeline } from "../src/pipeline/load.ts";
import { permissionFlags, RUNTIME_FLAGS } from "../src/pipeline/permissions.ts";

try {
  const pipeline = await loadPipeline(Deno.args[0] ?? "pipeline.yaml");
  console.log([...RUNTIME_FLAGS, ...permissionFlags(pipeline, {}, { values: true })].join("\n"));
} catch (e) {
  for (const line of describeError(e).split("\n")) console.error(`error: ${line}`);
  Deno.exit(2);
}

/** The output registry: one line per kind. */
import type { OutputDef } from "../pipeline/stage.ts";
import { stdoutOutput } from "./stdout.ts";

// deno-lint-ignore no-explicit-any
export const OUTPUTS: ReadonlyMap<string, OutputDef<any>> = new Map([
  [stdoutOutput.type, stdoutOutput],
]);

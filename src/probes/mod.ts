/** The probe registry: one line per kind. */
import type { ProbeDef } from "../pipeline/stage.ts";
import { bashProbe } from "./bash.ts";

// deno-lint-ignore no-explicit-any
export const PROBES: ReadonlyMap<string, ProbeDef<any>> = new Map([
  [bashProbe.type, bashProbe],
]);

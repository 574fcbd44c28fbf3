/**
 * Every stage type, by the section of the pipeline file it belongs to. Adding a type is one
 * line in its folder's `mod.ts`.
 */
import { PROBES } from "../probes/mod.ts";
import { TRANSFORMS } from "../transforms/mod.ts";
import { WINDOWS } from "../windows/mod.ts";
import { OUTPUTS } from "../outputs/mod.ts";
import type { StageDef } from "./stage.ts";

/** The sections of a pipeline file, in the order records flow. */
export const SECTIONS = ["probes", "transforms", "windows", "outputs"] as const;
export type Section = typeof SECTIONS[number];

/** Stage types by section, then by `type`. */
export const REGISTRY: { readonly [section in Section]: ReadonlyMap<string, StageDef> } = {
  probes: PROBES,
  transforms: TRANSFORMS,
  windows: WINDOWS,
  outputs: OUTPUTS,
};

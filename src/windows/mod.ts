/** The window registry: one line per stage type. */
import type { StageDef } from "../pipeline/stage.ts";
import { windowStage } from "./window.ts";

/** Every window stage type by its `type` name. */
// deno-lint-ignore no-explicit-any
export const WINDOWS: ReadonlyMap<string, StageDef<any>> = new Map([
  [windowStage.type, windowStage],
]);

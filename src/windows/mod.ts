/** The window types: one line each. */
import { registryOf } from "../pipeline/stage.ts";
import { windowStage } from "./window.ts";

export const WINDOWS = registryOf(windowStage);

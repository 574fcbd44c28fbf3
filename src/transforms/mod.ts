/** The transform types: one line each. */
import { registryOf } from "../pipeline/stage.ts";

export const TRANSFORMS = registryOf();

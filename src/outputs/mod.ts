/** The output types: one line each. */
import { registryOf } from "../pipeline/stage.ts";
import { stdoutOutput } from "./stdout.ts";

export const OUTPUTS = registryOf(stdoutOutput);

/** The probe types: one line each. */
import { registryOf } from "../pipeline/stage.ts";
import { bashProbe } from "./bash.ts";

export const PROBES = registryOf(bashProbe);

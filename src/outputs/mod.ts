/** The output types: one line each. */
import { registryOf } from "../pipeline/stage.ts";
import { fileOutput } from "./file.ts";
import { httpOutput } from "./http.ts";
import { otlpOutput } from "./otlp.ts";
import { prometheusOutput } from "./prometheus.ts";
import { stdoutOutput } from "./stdout.ts";
import { topOutput } from "./top.ts";

export const OUTPUTS = registryOf(
  stdoutOutput,
  fileOutput,
  httpOutput,
  prometheusOutput,
  otlpOutput,
  topOutput,
);

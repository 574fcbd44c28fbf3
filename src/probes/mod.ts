/** The probe types: one line each. */
import { registryOf } from "../pipeline/stage.ts";
import { bashProbe } from "./bash.ts";
import { collectorProbe } from "./collector.ts";
import { dnsProbe } from "./dns.ts";
import { netflowProbe } from "./netflow.ts";

export const PROBES = registryOf(bashProbe, netflowProbe, dnsProbe, collectorProbe);

/** The probe types: one line each. */
import { registryOf } from "../pipeline/stage.ts";
import { bashProbe } from "./bash.ts";
import { collectorProbe } from "./collector.ts";
import { dnsProbe } from "./dns.ts";
import { netdropProbe } from "./netdrop.ts";
import { netflowProbe } from "./netflow.ts";

export const PROBES = registryOf(bashProbe, netflowProbe, dnsProbe, netdropProbe, collectorProbe);

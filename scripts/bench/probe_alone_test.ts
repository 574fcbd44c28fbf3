import assert from "node:assert/strict";
import { parse } from "yaml";
import { ROOT } from "../../test/_run_command.ts";
import { parsePipeline } from "../../src/pipeline/load.ts";
import { probeAlone } from "./probe_alone.ts";

const DEFAULT = Deno.readTextFileSync(`${ROOT}pipeline.yaml`);

/** Stage name → its inputs, over every section, of a pipeline that must load cleanly. */
function graph(text: string): Map<string, string[]> {
  const pipeline = parsePipeline("alone.yaml", text);
  return new Map(pipeline.stages.map((s) => [s.name, s.inputs]));
}

/** The stages' names, sorted, in one line. */
const names = (stages: Map<string, string[]>) => [...stages.keys()].sort().join(" ");

Deno.test("probeAlone() keeps netflow and its chain, without the stage that needs dns", () => {
  const stages = graph(probeAlone(DEFAULT, "netflow"));
  assert.equal(
    names(stages),
    "console merge_client_ports netflow netflow_containers netflow_per_minute",
  );
  // name_destinations (dns_domain, answers_from: dns) is left out; its reader reads its input.
  // command_activity (events_from: bash) is left out, and redact_secrets with it: without bash
  // it would have nothing to join, and it passes no flow on.
  assert.deepEqual(stages.get("merge_client_ports"), ["netflow_containers"]);
  assert.deepEqual(stages.get("console"), ["netflow_per_minute"]);
});

Deno.test("probeAlone() keeps dns with what the default pipeline puts after it", () => {
  const text = probeAlone(DEFAULT, "dns");
  const stages = graph(text);
  assert.equal(
    names(stages),
    "console dns dns_containers dnsflow_per_minute merge_dns_client_ports",
  );
  assert.deepEqual(stages.get("console"), ["dnsflow_per_minute"]);
  // Settings of kept stages are kept as written.
  assert.equal(parse(text).windows.dnsflow_per_minute.every, "60s");
});

Deno.test("probeAlone() keeps bash's redaction and leaves out the other probes", () => {
  const stages = graph(probeAlone(DEFAULT, "bash"));
  assert.equal(names(stages), "bash bash_containers command_activity console redact_secrets");
  assert.deepEqual(stages.get("console"), ["redact_secrets"]);
});

Deno.test("probeAlone() names a probe the pipeline does not have", () => {
  assert.throws(
    () => probeAlone(DEFAULT, "nope"),
    /--probes: pipeline.yaml has no probe named nope/,
  );
});

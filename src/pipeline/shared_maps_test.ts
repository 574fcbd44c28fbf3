/**
 * The probe contract's one cross-probe facility through the runtime: a probe that provides a
 * kernel map is built before those that consume it, whatever the file's order, and withdraws
 * it when it stops. The probes here are stand-ins (no kernel): they pass fds as numbers.
 */
import assert from "node:assert/strict";
import { Counters } from "../counters.ts";
import { ManualClock } from "./clock.ts";
import type { Pipeline, StageNode } from "./load.ts";
import { startPipeline } from "./run.ts";
import { SharedMaps } from "./shared_maps.ts";
import type { StageDef } from "./stage.ts";
import type { YamlSource } from "./yaml_source.ts";

function probe(name: string, def: StageDef): StageNode {
  return {
    name,
    section: "probes",
    kind: "probe",
    def,
    config: {} as StageNode["config"],
    raw: {},
    inputs: [],
    sideInputs: [],
    required: true,
  };
}

Deno.test("a provider of a shared map is built before its consumers, and withdraws it at stop", async () => {
  const seen: (number | undefined)[] = [];
  const consumer: StageDef = {
    type: "consumer",
    kind: "probe",
    describe: "Test-only: reads the shared map's fd when built.",
    schema: {},
    example: {},
    consumes: ["commands"],
    build(_config, ctx) {
      seen.push(ctx.sharedMaps.fd("commands"));
      return { push() {}, flush() {}, close() {} };
    },
  };
  const provider: StageDef = {
    type: "provider",
    kind: "probe",
    describe: "Test-only: shares fd 42 as commands.",
    schema: {},
    example: {},
    provides: ["commands"],
    build(_config, ctx) {
      ctx.sharedMaps.provide("commands", 42);
      return {
        push() {},
        flush() {},
        close: () => ctx.sharedMaps.withdraw("commands", 42),
      };
    },
  };
  const pipeline: Pipeline = {
    file: "test.yaml",
    source: undefined as unknown as YamlSource,
    // The consumers come first in the file, and last but one: the provider still goes first.
    stages: [probe("flows", consumer), probe("shell", provider), probe("dns", consumer)],
    warnings: [],
    tests: [],
  };
  const sharedMaps = new SharedMaps();
  const running = await startPipeline(pipeline, {
    host: "h",
    counters: new Counters(),
    log: { info() {}, warn() {}, debug() {} },
    clock: new ManualClock(0n),
    sharedMaps,
  });
  assert.deepEqual(seen, [42, 42]);
  await running.stop();
  assert.equal(sharedMaps.fd("commands"), undefined, "withdrawn: the fd is gone");
});

Deno.test("SharedMaps.withdraw() leaves a newer provider's fd alone", () => {
  const maps = new SharedMaps();
  maps.provide("commands", 7);
  maps.provide("commands", 9); // a rebuilt provider
  maps.withdraw("commands", 7); // the old one closing
  assert.equal(maps.fd("commands"), 9);
});

import assert from "node:assert/strict";
import { BpfObject } from "../../ffi/object.ts";
import { kernelTest, objectPath } from "../../test/kernel/_kernel.ts";
import { Counters } from "../counters.ts";
import type { StageContext } from "../pipeline/stage.ts";
import { countEntries, hashMapFill, refreshMapFill, watchMapFill } from "./map_fill.ts";

function context(counters: Counters, logs: string[] = []): StageContext {
  return {
    name: "flows",
    counters: counters.bound({ stage: "flows" }),
    log: { info() {}, warn: (m: string) => logs.push(m), debug() {} },
  } as unknown as StageContext;
}

Deno.test("watchMapFill() publishes capacity at once and entries on each refresh and at stop", () => {
  const counters = new Counters();
  let entries = 1;
  const fill = watchMapFill(context(counters), [
    { map: "pending", capacity: 8, entries: () => entries },
  ]);
  const get = (name: string) => counters.get(name, { stage: "flows", map: "pending" });
  assert.equal(get("map_capacity"), 8n);
  assert.equal(get("map_entries"), 1n);
  entries = 5;
  refreshMapFill();
  assert.equal(get("map_entries"), 5n);
  entries = 8;
  fill.stop();
  assert.equal(get("map_entries"), 8n, "a last reading at stop");
  entries = 2;
  refreshMapFill();
  assert.equal(get("map_entries"), 8n, "stopped: no longer refreshed");
});

Deno.test("watchMapFill() logs a map it cannot count once and keeps counting the others", () => {
  const counters = new Counters();
  const logs: string[] = [];
  const fill = watchMapFill(context(counters, logs), [
    {
      map: "broken",
      capacity: 4,
      entries: () => {
        throw new Error("EPERM");
      },
    },
    { map: "ok", capacity: 4, entries: () => 2 },
  ]);
  refreshMapFill();
  fill.stop();
  assert.deepEqual(logs, ["flows: cannot count map broken: Error: EPERM"]);
  assert.equal(counters.get("map_entries", { stage: "flows", map: "ok" }), 2n);
});

kernelTest("countEntries() counts a real BPF hash map (netflow's closed0), full or not", {
  objects: ["netflow"],
}, () => {
  using obj = BpfObject.open(objectPath("netflow"));
  obj.map("closed0").setMaxEntries(1000);
  obj.load(); // loaded, not attached: only this test writes the map
  const map = obj.map("closed0");
  assert.equal(countEntries(map), 0);
  const key = new Uint8Array(map.keySize), value = new Uint8Array(map.valueSize);
  for (let i = 0; i < 1000; i++) {
    new DataView(key.buffer).setUint32(0, i + 1, true); // the flow key's pid
    map.update(key, value);
  }
  const fill = hashMapFill(map);
  assert.deepEqual([fill.map, fill.capacity, fill.entries()], ["closed0", 1000, 1000]);
});

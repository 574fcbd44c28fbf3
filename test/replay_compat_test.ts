/**
 * A recording made before recordings kept their host's facts (no header) replays to the same
 * output as before, through the real collector (`deno task run`'s command line). The fixture
 * was written by the Recorder of f511429 and its expected output is that commit's replay of
 * it on a host with the Linux default port range (32768-60999) and no container on cgroup 1 or
 * 987654321: such a replay takes the replaying host's facts, as it did then.
 */
import assert from "node:assert/strict";
import { kernelPortRange } from "../src/system/port_range.ts";
import { output, ROOT, runTaskArgs } from "./_run_command.ts";

const FIXTURE = `${ROOT}test/fixtures/recording_before_host_facts`;

// The ports the fixture collapses (45000-45005, 50000-50004) and keeps (80, 443) on this host.
const { range } = kernelPortRange();
const rangeFits = range.low <= 45000 && range.high >= 50004 && range.low > 443;

const skipped = rangeFits
  ? ""
  : ` [skipped: this host's port range ${range.low}-${range.high} is not the fixture's]`;

Deno.test({
  name: "a recording without host facts replays to what the collector gave before them" + skipped,
  ignore: !rangeFits,
  async fn() {
    const result = await output(Deno.execPath(), [
      ...runTaskArgs(),
      "--pipeline",
      `${FIXTURE}.yaml`,
      "--replay",
      `${FIXTURE}.ndjson`,
    ]);
    assert.equal(result.code, 0, result.stderr);
    const want = await Deno.readTextFile(`${FIXTURE}.expected.jsonl`);
    assert.equal(result.stdout, want);
    assert.match(result.stderr, /ports_collapsed\{stage=merge_clients\}=9 /);
  },
});

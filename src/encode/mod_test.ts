import assert from "node:assert/strict";
import type { Record } from "../record.ts";
import { encodeJson, encodeLineProtocol, encoderFor, type Format } from "./mod.ts";

const record: Record = {
  measurement: "bash",
  tags: { host: "web-1" },
  fields: { pid: 9007199254740993n },
  time: 1764085464123456789n,
};

Deno.test("encoderFor returns the encoder of each format", () => {
  assert.equal(encoderFor("json"), encodeJson);
  assert.equal(encoderFor("line_protocol"), encodeLineProtocol);
  assert.equal(
    encoderFor("line_protocol")(record),
    "bash,host=web-1 pid=9007199254740993i 1764085464123456789",
  );
});

Deno.test("encoderFor rejects an unknown format with the valid names", () => {
  assert.throws(
    () => encoderFor("csv" as Format),
    /unknown format "csv": use "json" or "line_protocol"/,
  );
});

/**
 * Record encoders by output format name.
 *
 * @module
 */

import type { BoundCounters } from "../counters.ts";
import type { Record } from "../record.ts";
import { encodeJson } from "./json.ts";
import { encodeLineProtocol, type LineProtocolOptions } from "./line_protocol.ts";

export { encodeJson } from "./json.ts";
export { EncodeError, encodeLineProtocol } from "./line_protocol.ts";

/** The output formats a record can be encoded in. */
export type Format = "json" | "line_protocol";

/**
 * Returns the encoder for `format`; each returns one line without a trailing newline. With
 * `counters`, fields line protocol cannot write are counted as `fields_dropped{reason}`.
 */
export function encoderFor(format: Format, counters?: BoundCounters): (r: Record) => string {
  switch (format) {
    case "json":
      return encodeJson;
    case "line_protocol": {
      if (!counters) return encodeLineProtocol;
      const options = countingDroppedFields(counters);
      return (record) => encodeLineProtocol(record, options);
    }
    default: {
      // Reached only when a caller bypasses the type (e.g. an unchecked config string).
      const never: never = format;
      throw new RangeError(
        `unknown format ${JSON.stringify(never)}: use "json" or "line_protocol"`,
      );
    }
  }
}

/** Line protocol options that count each field left out as `fields_dropped{reason}`. */
export function countingDroppedFields(
  counters: BoundCounters,
  options: LineProtocolOptions = {},
): LineProtocolOptions {
  return { ...options, onDroppedField: (reason) => counters.add("fields_dropped", 1, { reason }) };
}

/**
 * Record encoders by output format name.
 *
 * @module
 */

import type { Record } from "../record.ts";
import { encodeJson } from "./json.ts";
import { encodeLineProtocol } from "./line_protocol.ts";

export { encodeJson } from "./json.ts";
export { EncodeError, encodeLineProtocol } from "./line_protocol.ts";

/** The output formats a record can be encoded in. */
export type Format = "json" | "line_protocol";

/** Returns the encoder for `format`; each returns one line without a trailing newline. */
export function encoderFor(format: Format): (r: Record) => string {
  switch (format) {
    case "json":
      return encodeJson;
    case "line_protocol":
      return encodeLineProtocol;
    default: {
      // Reached only when a caller bypasses the type (e.g. an unchecked config string).
      const never: never = format;
      throw new RangeError(
        `unknown format ${JSON.stringify(never)}: use "json" or "line_protocol"`,
      );
    }
  }
}

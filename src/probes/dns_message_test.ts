import assert from "node:assert/strict";
import { rcodeName } from "./dns_message.ts";

Deno.test("rcodeName() names the IANA codes, -1 as TIMEOUT, and others RCODE<n>", () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 9, 16, -1, 12, 4095].map(rcodeName),
    [
      "NOERROR",
      "FORMERR",
      "SERVFAIL",
      "NXDOMAIN",
      "NOTIMP",
      "REFUSED",
      "NOTAUTH",
      "BADVERS",
      "TIMEOUT",
      "RCODE12",
      "RCODE4095",
    ],
  );
});

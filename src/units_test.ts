import assert from "node:assert/strict";
import { formatDuration, formatSize, MAX_DURATION_MS, parseDuration, parseSize } from "./units.ts";

Deno.test("parseDuration reads each unit as milliseconds", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("30s"), 30_000);
  assert.equal(parseDuration("1m"), 60_000);
  assert.equal(parseDuration("2h"), 7_200_000);
});

Deno.test("parseDuration adds up combined parts", () => {
  assert.equal(parseDuration("1m30s"), 90_000);
  assert.equal(parseDuration("1h2m3s4ms"), 3_723_004);
  assert.equal(parseDuration("1s500ms"), 1_500);
});

Deno.test("parseDuration reads decimals exactly", () => {
  assert.equal(parseDuration("1.5s"), 1_500);
  assert.equal(parseDuration("1.1s"), 1_100); // 1.1 * 1000 in floats would be 1100.0000000000002
  assert.equal(parseDuration("0.5h"), 1_800_000);
  assert.equal(parseDuration("2.5ms"), 2.5);
  assert.equal(parseDuration("0.001s"), 1);
});

Deno.test("parseDuration accepts leading zeros and big values", () => {
  assert.equal(parseDuration("05s"), 5_000);
  assert.equal(parseDuration("596h"), 2_145_600_000);
  assert.equal(parseDuration("596h31m23.647s"), MAX_DURATION_MS);
});

Deno.test("parseDuration rejects durations past 2^31-1 ms, which a timer would fire at once", () => {
  for (const text of ["596h31m23.648s", "597h", "720h", "1000h"]) {
    assert.throws(
      () => parseDuration(text),
      (err: unknown) => {
        assert.ok(err instanceof RangeError);
        assert.equal(
          err.message,
          `invalid duration ${JSON.stringify(text)}: ` +
            "longer than 596h31m23.647s, the longest a timer can wait",
        );
        return true;
      },
    );
  }
});

Deno.test("parseDuration rejects bad input, quoting it with an example", () => {
  const bad = [
    "",
    "abc",
    "30",
    "s",
    "-1s",
    "+1s",
    "1 s",
    " 30s",
    "30s ",
    "1.s",
    ".5s",
    "1,5s",
    "1d",
    "1sec",
    "1S",
    "1e3ms",
    "1m30",
    "30s\n",
  ];
  for (const text of bad) {
    assert.throws(
      () => parseDuration(text),
      (err: unknown) => {
        assert.ok(err instanceof RangeError, `${JSON.stringify(text)} throws a RangeError`);
        assert.equal(
          err.message,
          `invalid duration ${
            JSON.stringify(text)
          }: use a number with a unit, e.g. 30s, 1m30s, 500ms`,
        );
        return true;
      },
    );
  }
});

Deno.test("parseDuration rejects zero-length durations", () => {
  for (const text of ["0s", "0ms", "0m0s", "0.0h", "0.0000000001s"]) {
    assert.throws(
      () => parseDuration(text),
      /^RangeError: invalid duration ".+": must be longer than zero/,
    );
  }
});

Deno.test("parseDuration rejects durations too long to count in milliseconds", () => {
  assert.throws(() => parseDuration("99999999999999999999h"), /longer than 596h31m23.647s/);
});

Deno.test("formatDuration writes the shortest text", () => {
  assert.equal(formatDuration(90_000), "1m30s");
  assert.equal(formatDuration(1_500), "1.5s");
  assert.equal(formatDuration(20), "20ms");
  assert.equal(formatDuration(0), "0s");
  assert.equal(formatDuration(1_000), "1s");
  assert.equal(formatDuration(60_000), "1m");
  assert.equal(formatDuration(3_600_000), "1h");
  assert.equal(formatDuration(5_400_000), "1h30m");
  assert.equal(formatDuration(3_601_000), "1h1s");
  assert.equal(formatDuration(90_500), "1m30.5s");
  assert.equal(formatDuration(2.5), "2.5ms");
  assert.equal(formatDuration(0.25), "0.25ms");
  assert.equal(formatDuration(-1_500), "-1.5s");
});

Deno.test("formatDuration output parses back to the same milliseconds", () => {
  for (const ms of [1, 20, 999, 1_000, 1_100, 1_500, 59_999, 90_000, 3_723_004, 86_400_000]) {
    assert.equal(parseDuration(formatDuration(ms)), ms);
  }
});

Deno.test("formatDuration rejects non-finite values", () => {
  assert.throws(() => formatDuration(NaN), RangeError);
  assert.throws(() => formatDuration(Infinity), RangeError);
});

Deno.test("parseSize() reads binary and decimal units and bare bytes", () => {
  assert.equal(parseSize("64KiB"), 65536);
  assert.equal(parseSize("1MiB"), 1048576);
  assert.equal(parseSize("1.5GiB"), 1.5 * 1024 ** 3);
  assert.equal(parseSize("10kB"), 10000);
  assert.equal(parseSize("512"), 512);
  assert.equal(parseSize("512B"), 512);
});

Deno.test("parseSize() rejects garbage with an example", () => {
  for (const bad of ["", "KiB", "-1KiB", "1 KiBs", "1TiB", "abc"]) {
    assert.throws(() => parseSize(bad), /invalid size .*e\.g\. 64KiB/, bad);
  }
});

Deno.test("formatSize() picks the largest unit that divides exactly", () => {
  assert.equal(formatSize(65536), "64KiB");
  assert.equal(formatSize(1048576), "1MiB");
  assert.equal(formatSize(1000), "1000B");
});

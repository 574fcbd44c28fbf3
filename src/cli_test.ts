import assert from "node:assert/strict";
import { parseCli, USAGE } from "./cli.ts";
import { UserError } from "./errors.ts";

/** Asserts that parseCli(args) throws a one-line UserError with exit code 2 matching `message`. */
function assertBadFlags(args: string[], message: RegExp): void {
  assert.throws(() => parseCli(args), (e) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${e}`);
    assert.equal(e.exitCode, 2);
    assert.match(e.message, message);
    assert.equal(e.message.includes("\n"), false, `not one line: ${JSON.stringify(e.message)}`);
    return true;
  });
}

Deno.test("parseCli() with no flags runs pipeline.yaml until a signal", () => {
  assert.deepEqual(parseCli([]), {
    pipeline: "pipeline.yaml",
    durationMs: undefined,
    debug: false,
    check: false,
    explain: undefined,
    test: false,
    doctor: false,
    record: undefined,
    replay: undefined,
    replaySkipBad: false,
    watch: false,
    help: false,
    version: false,
  });
});

Deno.test("parseCli() reads --check and --explain, bare or =dot", () => {
  assert.equal(parseCli(["--check"]).check, true);
  assert.equal(parseCli(["--explain"]).explain, "text");
  assert.equal(parseCli(["--explain=dot"]).explain, "dot");
  assert.throws(
    () => parseCli(["--explain=svg"]),
    (e: UserError) => e.exitCode === 2 && /=dot/.test(e.message),
  );
});

Deno.test("parseCli() reads --pipeline and --duration, the duration in milliseconds", () => {
  const options = parseCli(["--pipeline", "x.yaml", "--duration", "1m30s"]);

  assert.equal(options.pipeline, "x.yaml");
  assert.equal(options.durationMs, 90_000);
  assert.equal(options.help, false);
});

Deno.test("parseCli() accepts the --flag=value form", () => {
  const options = parseCli(["--pipeline=other.yaml", "--duration=500ms"]);

  assert.equal(options.pipeline, "other.yaml");
  assert.equal(options.durationMs, 500);
});

Deno.test("parseCli() sets help for --help and -h", () => {
  assert.equal(parseCli(["--help"]).help, true);
  assert.equal(parseCli(["-h"]).help, true);
  assert.equal(parseCli(["-h"]).version, false);
});

Deno.test("parseCli() sets version for --version and debug for --debug", () => {
  assert.equal(parseCli(["--version"]).version, true);
  assert.equal(parseCli(["--version"]).help, false);
  assert.equal(parseCli(["--debug"]).debug, true);
});

Deno.test("parseCli() rejects an unknown flag with exit code 2, naming it", () => {
  assertBadFlags(["--verbose"], /^Unknown option '--verbose' \(see --help\)$/);
  assertBadFlags(["-x"], /'-x'/);
});

Deno.test("parseCli() rejects a bad duration with exit code 2, quoting it", () => {
  assertBadFlags(["--duration", "soon"], /^--duration: invalid duration "soon"/);
  assertBadFlags(["--duration", "0s"], /^--duration: .*longer than zero/);
});

Deno.test("parseCli() rejects a positional argument with exit code 2, naming it", () => {
  assertBadFlags(["extra.yaml"], /Unexpected argument 'extra\.yaml'/);
  assertBadFlags(["--pipeline", "a.yaml", "b.yaml"], /'b\.yaml'/);
});

Deno.test("parseCli() rejects an empty --pipeline with exit code 2", () => {
  assertBadFlags(["--pipeline", ""], /^--pipeline needs a file name$/);
  assertBadFlags(["--pipeline="], /^--pipeline needs a file name$/);
});

Deno.test("parseCli() rejects a flag missing its value with exit code 2, naming the flag", () => {
  assertBadFlags(["--pipeline"], /'--pipeline <value>' argument missing/);
  assertBadFlags(["--duration"], /'--duration <value>' argument missing/);
});

Deno.test("parseCli() words a flag followed by another flag as one line", () => {
  // node:util's message for this has three sentences on three lines.
  assertBadFlags(
    ["--pipeline", "--debug"],
    /^Option '--pipeline' argument is ambiguous \(see --help\)$/,
  );
});

Deno.test("parseCli() rejects a value given to a boolean flag with exit code 2", () => {
  assertBadFlags(["--debug=false"], /'--debug' does not take an argument/);
});

Deno.test("USAGE documents every flag parseCli() accepts", () => {
  for (const flag of ["--pipeline", "--duration", "--debug", "--version", "-h, --help"]) {
    assert.ok(USAGE.includes(flag), `USAGE lacks ${flag}`);
  }
});

Deno.test("parseCli() reads --test, --record, --replay and --watch; record and replay exclude each other", () => {
  const o = parseCli(["--test", "--watch", "--record", "r.ndjson"]);
  assert.equal(o.test, true);
  assert.equal(o.watch, true);
  assert.equal(o.record, "r.ndjson");
  assert.equal(parseCli(["--replay", "r.ndjson"]).replay, "r.ndjson");
  assert.equal(parseCli(["--replay", "r", "--replay-skip-bad"]).replaySkipBad, true);
  assertBadFlags(["--replay-skip-bad"], /^--replay-skip-bad goes with --replay FILE$/);
  assert.throws(
    () => parseCli(["--record", "a", "--replay", "b"]),
    (e: UserError) => e.exitCode === 2 && /do not go together/.test(e.message),
  );
});

Deno.test("parseCli() refuses a file name with a comma or a line break, which Deno cannot grant", () => {
  for (
    const args of [["--pipeline", "a,b.yaml"], ["--record", "x,/etc/cron.d/y"], [
      "--replay",
      "r\n.ndjson",
    ]]
  ) {
    assertBadFlags(args, /^--(pipeline|record|replay): a file name with a comma or a line break/);
  }
});

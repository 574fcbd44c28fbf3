/**
 * User regexes, on V8's linear-time engine so that no pattern can stall the collector
 * ({@linkcode compileRegex}); shared by the `regex` operator and `redact`.
 *
 * @module
 */
import { type At, describeValue } from "../../pipeline/schema.ts";

/** The flag that puts a regex on V8's linear-time engine. */
export const LINEAR = "l";
/** The flags the linear-time engine runs besides its own. */
const LINEAR_ENGINE_FLAGS = "gmsy";

/**
 * Compiles a user's `source` with `flags` (a string, or undefined for none) on V8's linear-time
 * engine (the `l` flag; the collector runs with `--enable-experimental-regexp-engine`), so that
 * no pattern, however written, can stall the collector: `(a+)+$` on 5,000 characters returns
 * at once where backtracking takes forever. What that engine cannot run is refused here, at
 * load: backreferences, lookahead, counted repetition above 16, and the flags i, u, v and d. A
 * bad pattern is reported at `at` (`invalid regex: <reason>`), bad flags at `flagsAt`; flags in
 * `refused` are rejected too (g and y make `test` stateful); `extraFlags` are added. Shared
 * with `redact`. (The built-in redact rules need lookaround and stay on the backtracking
 * engine; redact_test bounds their time on adversarial input.)
 */
export function compileRegex(
  source: unknown,
  flags: unknown,
  at: At,
  flagsAt: At,
  refused: string,
  extraFlags = "",
): RegExp | undefined {
  let flagText = "";
  let flagsOk = true;
  if (flags !== undefined && flags !== null) {
    const allowed = [...LINEAR_ENGINE_FLAGS].filter((f) => !refused.includes(f)).join(", ");
    if (typeof flags !== "string") {
      flagsAt.report(`expected regex flags such as "m", got ${describeValue(flags)}`);
      flagsOk = false;
    } else {
      const refusedFlag = [...flags].find((f) => refused.includes(f));
      const slow = [...flags].find((f) => "diuv".includes(f));
      if (refusedFlag) {
        flagsAt.report(`flag "${refusedFlag}" is not allowed here (allowed: ${allowed})`);
        flagsOk = false;
      } else if (slow) {
        const hint = slow === "i" ? ": write both cases instead, e.g. [Ss][Uu][Dd][Oo]" : "";
        flagsAt.report(
          `flag "${slow}" cannot run in linear time (allowed: ${allowed})${hint}`,
        );
        flagsOk = false;
      } else if (!/^[gmsy]*$/.test(flags) || new Set(flags).size !== flags.length) {
        flagsAt.report(`invalid regex flags "${flags}" (allowed: ${allowed})`);
        flagsOk = false;
      } else flagText = flags;
    }
  }
  if (typeof source !== "string" || source === "") {
    at.report(`expected a regex (a non-empty string), got ${describeValue(source)}`);
    return undefined;
  }
  const all = flagText + [...extraFlags].filter((f) => !flagText.includes(f)).join("") + LINEAR;
  try {
    const re = new RegExp(source, all);
    return flagsOk ? re : undefined;
  } catch (e) {
    at.report(regexProblem(e));
    return undefined;
  }
}

// V8 says `Invalid regular expression: /<source>/<flags>: <reason>`; the source is in the
// file already, so keep the reason, and say what to do about the linear-time engine's.
function regexProblem(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  if (message.startsWith("Invalid flags supplied to RegExp constructor")) {
    return "user regexes run on V8's linear-time engine, and this process was started " +
      "without it: add --v8-flags=--enable-experimental-regexp-engine (deno task run and " +
      "the command --explain prints have it)";
  }
  const i = message.lastIndexOf(": ");
  const reason = message.startsWith("Invalid regular expression:") && i >= 0
    ? message.slice(i + 2)
    : message;
  if (reason === "Cannot be executed in linear time") {
    return "cannot run in linear time: backreferences (\\1, \\k<name>), lookahead ((?=...), " +
      "(?!...)) and counted repetition above 16 (a{17}, a{2,40}) need backtracking, which a " +
      "hostile command could stall; rewrite it (a{16}a{16}a* for a{32,}) or use prefix, " +
      "suffix, contains";
  }
  return `invalid regex: ${reason}`;
}

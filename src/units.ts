/**
 * Units as people write them in config and flags, parsed in this one place.
 *
 * Sizes: `64KiB`, `1MiB`, `512B`, `1.5GiB`, `10kB` (binary and decimal prefixes).
 *
 * Durations: `30s`, `1m30s`, `500ms`, `2h`, `1.5s`.
 *
 * The grammar is one or more `<number><unit>` parts with no spaces, where the number is an integer
 * or a decimal with digits on both sides of the point and the unit is `ms`, `s`, `m` or `h`; the
 * parts add up (like Go's `time.ParseDuration`, without signs or sub-millisecond units). The
 * arithmetic is done in integer nanoseconds so `1.1s` is exactly 1100 ms, not 1100.0000000000002.
 *
 * @module
 */

const NS_PER: { [unit: string]: bigint } = {
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};
const NS_PER_MS = 1_000_000n;
// `ms` must come before `m` so `500ms` is not read as 500 minutes followed by garbage.
const PART = /(\d+)(?:\.(\d+))?(ms|h|m|s)/y;
const EXAMPLE = "use a number with a unit, e.g. 30s, 1m30s, 500ms";

/**
 * The longest duration accepted: 2^31-1 ms (596h31m23.647s). Timers hold a signed 32-bit
 * delay; a longer one fires after 1 ms, so `every: 1000h` would report a thousand times a
 * second and `--duration 1000h` would stop at once.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/**
 * Parses a duration such as `1m30s` into milliseconds; throws a RangeError on anything else,
 * including durations past {@linkcode MAX_DURATION_MS}.
 */
export function parseDuration(text: string): number {
  const invalid = (why: string) =>
    new RangeError(`invalid duration ${JSON.stringify(text)}: ${why}`);
  if (text === "") throw invalid(EXAMPLE);
  let ns = 0n;
  PART.lastIndex = 0;
  while (PART.lastIndex < text.length) {
    const match = PART.exec(text);
    if (match === null) throw invalid(EXAMPLE);
    const [, whole, fraction = "", unit] = match;
    const per = NS_PER[unit];
    // Sub-nanosecond digits are dropped, as Go does.
    ns += BigInt(whole) * per + (BigInt(fraction || "0") * per) / 10n ** BigInt(fraction.length);
  }
  if (ns === 0n) throw invalid("must be longer than zero, e.g. 30s, 1m30s, 500ms");
  if (ns > BigInt(MAX_DURATION_MS) * NS_PER_MS) {
    throw invalid(`longer than ${formatDuration(MAX_DURATION_MS)}, the longest a timer can wait`);
  }
  return Number(ns) / 1e6;
}

/** Formats milliseconds as the shortest duration text, e.g. 90000 → `1m30s`, 1500 → `1.5s`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) throw new RangeError(`cannot format duration ${ms}: not finite`);
  if (ms < 0) return `-${formatDuration(-ms)}`;
  // Integer nanoseconds avoid float noise such as 1.1 * 1000 = 1100.0000000000002.
  const ns = BigInt(Math.round(ms * 1e6));
  if (ns === 0n) return "0s";
  if (ns < NS_PER.s) return `${decimal(ns, NS_PER_MS)}ms`;
  const h = ns / NS_PER.h;
  const m = (ns % NS_PER.h) / NS_PER.m;
  const s = ns % NS_PER.m;
  return (h > 0n ? `${h}h` : "") + (m > 0n ? `${m}m` : "") +
    (s > 0n ? `${decimal(s, NS_PER.s)}s` : "");
}

// Writes n / unit in decimal without trailing zeros (both are positive integers).
function decimal(n: bigint, unit: bigint): string {
  const whole = n / unit;
  const rest = n % unit;
  if (rest === 0n) return `${whole}`;
  const digits = unit.toString().length - 1;
  return `${whole}.${rest.toString().padStart(digits, "0").replace(/0+$/, "")}`;
}

const SIZE = /^(\d+(?:\.\d+)?)\s?(B|KiB|MiB|GiB|kB|KB|MB|GB)?$/;
const BYTES_PER: { [unit: string]: number } = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  kB: 1000,
  KB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3,
};

/** Parses a size (`64KiB`, `1MiB`, `512B`; a bare number is bytes) into whole bytes. */
export function parseSize(text: string): number {
  const m = SIZE.exec(text.trim());
  const bytes = m ? Math.round(Number(m[1]) * BYTES_PER[m[2] ?? "B"]) : NaN;
  if (!m || !Number.isSafeInteger(bytes)) {
    throw new RangeError(
      `invalid size "${text}": use a number with a unit, e.g. 64KiB, 1MiB, 512B`,
    );
  }
  return bytes;
}

/** Formats bytes with the largest binary unit that divides them (`65536` → `64KiB`). */
export function formatSize(bytes: number): string {
  for (const unit of ["GiB", "MiB", "KiB"]) {
    if (bytes >= BYTES_PER[unit] && bytes % BYTES_PER[unit] === 0) {
      return `${bytes / BYTES_PER[unit]}${unit}`;
    }
  }
  return `${bytes}B`;
}

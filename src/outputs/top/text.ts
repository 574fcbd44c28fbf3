/**
 * Text in terminal cells: widths from `string-width` (East Asian wide characters take two
 * cells, combining marks and zero-width joiners none, an emoji sequence two), cut on
 * grapheme boundaries, never mid-character. Control characters from outside (a command, a
 * process name) are shown escaped first, so they cannot drive the terminal.
 */
import stringWidth from "string-width";
import { printable } from "../../log.ts";

const segmenter = new Intl.Segmenter();
const PLAIN_ASCII = /^[ -~]*$/;

/** Cells `text` takes on a terminal. */
export function displayWidth(text: string): number {
  return PLAIN_ASCII.test(text) ? text.length : stringWidth(text);
}

/**
 * `text` (escaped: no control characters) in exactly `width` cells: cut with `…` when longer,
 * padded with spaces on the right (or, `right`, on the left) when shorter.
 */
export function fit(text: string, width: number, right = false): string {
  if (width <= 0) return "";
  const safe = printable(text);
  let w = displayWidth(safe);
  let shown = safe;
  if (w > width) {
    shown = "";
    w = 0;
    for (const { segment } of segmenter.segment(safe)) {
      const sw = displayWidth(segment);
      if (w + sw > width - 1) break;
      shown += segment;
      w += sw;
    }
    shown += "…";
    w += 1;
  }
  const pad = " ".repeat(width - w);
  return right ? pad + shown : shown + pad;
}

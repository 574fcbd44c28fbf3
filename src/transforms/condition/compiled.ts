/** What an operator compiles to: shared by operators.ts and the operators in files of their own. */
import type { FieldValue } from "../../record.ts";

/** A compiled operator's test of a value that is present. */
export type Matcher = (v: FieldValue) => boolean;

/** An operator's compiled test of a present value, and its text after the subject. */
export interface Compiled {
  match: Matcher;
  text: string;
  /** What a missing value gives (false, except for `exists: false`). */
  missing?: boolean;
}

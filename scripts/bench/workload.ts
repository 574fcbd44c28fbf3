/** What every benchmark workload returns. */

/** One measured run of a workload; `note` says what else was seen (retransmits, drops). */
export interface Measurement {
  value: number;
  note?: string;
}

/** What every benchmark workload returns. */

/**
 * One measured run of a workload: `value` in the workload's unit a second, `events` how many of
 * the workload's events (datagrams received, connections, answers...) the run counted in all,
 * `note` what else was seen (retransmits, drops).
 */
export interface Measurement {
  value: number;
  events: number;
  note?: string;
}

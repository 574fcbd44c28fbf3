/**
 * netflow's failure fields: their record names, each with the `FlowDelta` member it comes from.
 * A module of its own, importing nothing, so outputs and transforms that name these fields
 * (otlp's counters, command_activity, top) read one list without reaching the probe's code.
 */
export const TCP_FAILURES = [
  ["tcp_connect_refused", "connectRefused"],
  ["tcp_connect_timeouts", "connectTimeouts"],
  ["tcp_connect_unreachable", "connectUnreachable"],
  ["tcp_connect_aborted", "connectAborted"],
  ["tcp_resets_received", "resetsReceived"],
  ["tcp_resets_sent", "resetsSent"],
] as const;

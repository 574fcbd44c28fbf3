/**
 * One frame of the `top` view as lines of text, each exactly `cols` cells wide (so a line
 * never wraps and overwrites all of the previous frame's): a status line, the four panes
 * (flows, DNS, drops, commands; the focused one gets the spare rows and its sort), and a line of
 * keys.
 * Columns that do not fit are left out, narrowest terminal first (80×24 shows the essentials);
 * the peer, name and command columns take what is left.
 */
import type { CommandRow, DnsRow, DropRow, FlowRow, Snapshot } from "./model.ts";
import { type Pane, PANES, SORTS, type ViewState } from "./keys.ts";
import { displayWidth, fit } from "./text.ts";

/** What the status line says besides the model's figures. */
export interface StatusFacts {
  /** When the frame is drawn, ms since the epoch. */
  nowMs: number;
  /** Probes that emitted, and those disabled. */
  probes: string[];
  disabled: string[];
  /** Events and records lost so far (every loss counter of the collector). */
  lost: bigint;
  /** How long the previous frame took, ms. */
  frameMs?: number;
  /** The latest log line (held while the screen is drawn), and how many are held. */
  lastLog?: string;
  heldLogs?: number;
}

/** The terminal: its size, and whether to use colour. */
export interface Screen {
  cols: number;
  rows: number;
  color: boolean;
  /**
   * Blank lines fill what rows leave free, so a frame drawn in place hides the one before;
   * plain frames (not a terminal) leave them out.
   */
  fill: boolean;
}

interface Column<R> {
  title: string;
  width: number;
  right?: boolean;
  /** Takes the width left over (one column a table). */
  flex?: boolean;
  /** Shown only from this many columns on. */
  from?: number;
  cell(r: R): string;
  /** A style for this row's cell, when colour is on (a failure, a non-zero exit code). */
  style?(r: R): keyof typeof STYLE | undefined;
}

const STYLE = {
  bold: "\x1b[1m",
  inverse: "\x1b[7m",
  dim: "\x1b[2m",
  red: "\x1b[31m",
  reset: "\x1b[0m",
};

/** `n` in three significant digits with an SI prefix: `812B`, `4.77MB`. */
function formatSI(n: number, unit: string): string {
  const prefixes = ["", "k", "M", "G", "T"];
  let v = n, u = 0;
  while (v >= 999.5 && u < prefixes.length - 1) {
    v /= 1000;
    u++;
  }
  if (u === 0) return `${Math.round(v)}${unit}`;
  return `${v.toPrecision(3)}${prefixes[u]}${unit}`;
}

/** Bytes a second, three significant digits: `812B/s`, `4.77MB/s`. */
export function formatRate(bytesPerSecond: number): string {
  return formatSI(bytesPerSecond, "B/s");
}

/** Nanoseconds as `850µs`, `12.3ms`, `1.20s`, `17m`. */
export function formatNs(ns: number | undefined): string {
  if (ns === undefined) return "-";
  if (ns < 1e6) return `${Math.round(ns / 1e3)}µs`;
  if (ns < 1e9) return `${(ns / 1e6).toPrecision(3)}ms`;
  if (ns < 999.5e9) return `${(ns / 1e9).toPrecision(3)}s`;
  return `${Math.round(ns / 60e9)}m`;
}

/** A count a second: `0.4`, `12`, `3.40k`. */
function formatPerSecond(n: number): string {
  return n < 10 ? n.toFixed(1) : formatSI(n, "");
}

function formatBytes(n: number): string {
  return n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)}GiB` : `${Math.round(n / (1 << 20))}MiB`;
}

const FLOW_COLUMNS = (cols: number): Column<FlowRow>[] => [
  { title: "PROCESS", width: cols >= 120 ? 24 : 15, cell: (r) => r.process },
  { title: "PID", width: 7, right: true, cell: (r) => r.pid },
  { title: "CONTAINER", width: 12, from: 120, cell: (r) => r.container },
  { title: "PROTO", width: 5, from: 100, cell: (r) => r.transport },
  { title: "NETNS", width: 10, right: true, from: 160, cell: (r) => r.netns },
  { title: "LOCAL", width: 5, right: true, cell: (r) => r.localPort },
  { title: "DIR", width: 3, cell: (r) => r.direction },
  { title: "PEER", width: 0, flex: true, cell: (r) => r.peer },
  { title: "IN", width: 9, right: true, cell: (r) => formatRate(r.inRate) },
  { title: "OUT", width: 9, right: true, cell: (r) => formatRate(r.outRate) },
  {
    title: "RETR",
    width: 4,
    right: true,
    from: 90,
    cell: (r) => r.transport === "tcp" ? `${r.retransmits}` : "",
  },
  {
    title: "FAIL",
    width: 4,
    right: true,
    cell: (r) => r.failures ? `${r.failures}` : "",
    style: (r) => r.failures ? "red" : undefined,
  },
  {
    title: "RTT",
    width: 7,
    right: true,
    cell: (r) => r.rttUs === undefined ? "" : formatNs(r.rttUs * 1000),
  },
];

const DNS_COLUMNS = (cols: number): Column<DnsRow>[] => [
  { title: "NAME", width: 0, flex: true, cell: (r) => r.name },
  { title: "TYPE", width: 5, cell: (r) => r.qtype },
  { title: "Q/S", width: 6, right: true, cell: (r) => r.qps.toFixed(r.qps < 10 ? 1 : 0) },
  { title: "COUNT", width: 6, right: true, cell: (r) => `${r.total}` },
  { title: "ERRORS", width: cols >= 100 ? 16 : 10, cell: (r) => r.errors },
  { title: "MEAN", width: 7, right: true, cell: (r) => formatNs(r.meanNs) },
  { title: "MAX", width: 7, right: true, cell: (r) => formatNs(r.maxNs) },
  { title: "PROCESS", width: cols >= 120 ? 24 : 15, cell: (r) => `${r.process}` },
  { title: "PID", width: 7, right: true, from: 100, cell: (r) => r.pid },
];

const DROP_COLUMNS = (cols: number): Column<DropRow>[] => [
  { title: "REASON", width: cols >= 100 ? 22 : 16, cell: (r) => r.reason },
  { title: "DIR", width: 3, cell: (r) => r.direction },
  { title: "PROCESS", width: cols >= 120 ? 24 : 15, cell: (r) => r.process },
  { title: "PID", width: 7, right: true, from: 100, cell: (r) => r.pid },
  { title: "NETNS", width: 10, right: true, from: 160, cell: (r) => r.netns },
  { title: "PROTO", width: 5, from: 100, cell: (r) => r.transport },
  { title: "LOCAL", width: 5, right: true, cell: (r) => r.localPort },
  { title: "PEER", width: 0, flex: true, cell: (r) => r.peer },
  { title: "PKT/S", width: 6, right: true, cell: (r) => formatPerSecond(r.packetRate) },
  { title: "BYTES", width: 9, right: true, cell: (r) => formatRate(r.byteRate) },
];

/** A command's activity cell: blank until its `bash_activity` came. */
const activity = (r: CommandRow, value: number | undefined, format = (n: number) => `${n}`) =>
  r.cmdId === undefined || value === undefined ? "" : format(value);

const COMMAND_COLUMNS = (cols: number): Column<CommandRow>[] => [
  { title: "TIME", width: 8, cell: (r) => clock(r.timeMs) },
  { title: "USER", width: cols >= 100 ? 10 : 8, cell: (r) => r.user },
  { title: "PID", width: 7, right: true, from: 100, cell: (r) => r.pid },
  {
    title: "EXIT",
    width: 4,
    right: true,
    cell: (r) => r.exitCode === -1 ? "?" : activity(r, r.exitCode),
    style: (r) => r.exitCode ? "red" : undefined, // -1 (not known) too: worth a look
  },
  {
    title: "TIME+",
    width: 6,
    right: true,
    cell: (r) => activity(r, r.durationNs, formatNs) + (r.running ? "+" : ""),
  },
  { title: "PROC", width: 4, right: true, cell: (r) => activity(r, r.processes) },
  {
    title: "BYTES",
    width: 6,
    right: true,
    cell: (r) => activity(r, r.bytes, (n) => formatSI(n, "B")),
  },
  { title: "DNS", width: 4, right: true, cell: (r) => activity(r, r.dnsQueries) },
  {
    title: "FAIL",
    width: 4,
    right: true,
    from: 120,
    cell: (r) => activity(r, r.connectFailures),
    style: (r) => r.connectFailures ? "red" : undefined,
  },
  { title: "COMMAND", width: 0, flex: true, cell: (r) => r.cmd },
];

/** Local time of day, `HH:MM:SS`. */
function clock(ms: number): string {
  return new Date(ms).toTimeString().slice(0, 8);
}

/**
 * The header and rows of a table, each exactly `width` cells; with `color`, cells styled by their
 * column (styles take no cells). A screen too narrow for the columns gets them cut, unstyled.
 */
function table<R>(
  all: Column<R>[],
  rows: R[],
  width: number,
  color: boolean,
): { header: string; lines: string[] } {
  const columns = all.filter((c) => (c.from ?? 0) <= width);
  const fixed = columns.reduce((sum, c) => sum + (c.flex ? 0 : c.width), 0) + columns.length - 1;
  const flexWidth = Math.max(width - fixed, 4);
  const fits = fixed + flexWidth === width;
  const line = (cell: (c: Column<R>) => string, r?: R) => {
    const cells = columns.map((c) => fit(cell(c), c.flex ? flexWidth : c.width, c.right));
    if (!fits) return fit(cells.join(" "), width);
    if (color && r !== undefined) {
      columns.forEach((c, i) => {
        const s = c.style?.(r);
        if (s) cells[i] = STYLE[s] + cells[i] + STYLE.reset;
      });
    }
    return cells.join(" ");
  };
  return {
    header: line((c) => c.title),
    lines: rows.map((r) => line((c) => c.cell(r), r)),
  };
}

type Compare<R> = (a: R, b: R) => number;
const byDesc = <R>(f: (r: R) => number): Compare<R> => (a, b) => f(b) - f(a);
const byPeer = (a: { peer: string }, b: { peer: string }) =>
  a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0;

/** A comparison for each sort keys.ts offers a pane: one it adds without one here fails to check. */
type Sorts<P extends Pane, R> = { readonly [sort in typeof SORTS[P][number]]: Compare<R> };

const FLOW_SORTS: Sorts<"flows", FlowRow> = {
  rate: byDesc((r) => r.inRate + r.outRate),
  in: byDesc((r) => r.inRate),
  out: byDesc((r) => r.outRate),
  retransmits: byDesc((r) => r.retransmits),
  failures: byDesc((r) => r.failures),
  rtt: byDesc((r) => r.rttUs ?? -1),
  process: (a, b) => a.process.localeCompare(b.process),
};

const DNS_SORTS: Sorts<"dns", DnsRow> = {
  rate: byDesc((r) => r.qps),
  errors: byDesc((r) => r.errorCount),
  latency: byDesc((r) => r.meanNs ?? -1),
  name: (a, b) => a.name.localeCompare(b.name),
};

const DROP_SORTS: Sorts<"drops", DropRow> = {
  rate: () => 0, // the tie-break's packets a second
  bytes: byDesc((r) => r.byteRate),
  reason: (a, b) => a.reason.localeCompare(b.reason),
  process: (a, b) => a.process.localeCompare(b.process),
};

/** The comparison of `sort` in `sorts`, the first (default) for one it does not know. */
function sortOf<R>(sorts: { readonly [sort: string]: Compare<R> }, sort: string): Compare<R> {
  return Object.hasOwn(sorts, sort) ? sorts[sort] : sorts.rate;
}

/** How flows compare in each sort (first = shown first); ties go by peer. */
function flowOrder(sort: string): Compare<FlowRow> {
  const compare = sortOf(FLOW_SORTS, sort);
  return (a, b) => compare(a, b) || byPeer(a, b);
}

/** How DNS rows compare in each sort; ties go by count, then name. */
function dnsOrder(sort: string): Compare<DnsRow> {
  const compare = sortOf(DNS_SORTS, sort);
  return (a, b) => compare(a, b) || b.total - a.total || a.name.localeCompare(b.name);
}

/** How drops compare in each sort; ties go by packets a second, then reason, then peer. */
function dropOrder(sort: string): Compare<DropRow> {
  const compare = sortOf(DROP_SORTS, sort);
  return (a, b) =>
    compare(a, b) || b.packetRate - a.packetRate || a.reason.localeCompare(b.reason) ||
    byPeer(a, b);
}

/**
 * The first `n` of `rows` in `order`, without sorting them all: a frame shows a few dozen of
 * 10,000 flows, and most rows cost one comparison with the last kept.
 */
export function firstInOrder<R>(rows: R[], order: (a: R, b: R) => number, n: number): R[] {
  const kept: R[] = [];
  if (n <= 0) return kept;
  for (const r of rows) {
    if (kept.length === n && order(r, kept[n - 1]) >= 0) continue;
    let lo = 0, hi = kept.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (order(r, kept[mid]) < 0) hi = mid;
      else lo = mid + 1;
    }
    kept.splice(lo, 0, r);
    if (kept.length > n) kept.pop();
  }
  return kept;
}

/** Whether any of `texts` contains `filter` (lower case). */
function matches(filter: string, ...texts: string[]): boolean {
  return !filter || texts.some((t) => t.toLowerCase().includes(filter));
}

/** A pane's rows after the filter; `draw(n)` lays out the first `n` in its sort order. */
function paneRows(snap: Snapshot, view: ViewState, pane: Pane, screen: Screen) {
  const f = view.filter.toLowerCase(), { cols, color } = screen;
  switch (pane) {
    case "flows": {
      const rows = snap.flows.filter((r) => matches(f, r.process, r.peer));
      return {
        title: "Flows",
        total: snap.flows.length,
        ...tableOf(FLOW_COLUMNS(cols), rows, cols, color, flowOrder(view.sort.flows)),
      };
    }
    case "dns": {
      const rows = snap.dns.filter((r) => matches(f, r.process, r.name));
      return {
        title: "DNS",
        total: snap.dns.length,
        ...tableOf(DNS_COLUMNS(cols), rows, cols, color, dnsOrder(view.sort.dns)),
      };
    }
    case "drops": {
      const rows = snap.drops.filter((r) => matches(f, r.process, r.peer, r.reason));
      return {
        title: "Drops",
        total: snap.drops.length,
        ...tableOf(DROP_COLUMNS(cols), rows, cols, color, dropOrder(view.sort.drops)),
      };
    }
    case "commands": {
      const rows = snap.commands.filter((r) => matches(f, r.cmd, r.user));
      return {
        title: "Commands",
        total: snap.commands.length,
        ...tableOf(COMMAND_COLUMNS(cols), rows, cols, color), // newest first already
      };
    }
  }
}

/** Rows become lines only when shown: 10,000 flows are filtered, not sorted or drawn. */
function tableOf<R>(
  columns: Column<R>[],
  rows: R[],
  width: number,
  color: boolean,
  order?: (a: R, b: R) => number,
) {
  return {
    count: rows.length,
    draw: (n: number) =>
      table(columns, order ? firstInOrder(rows, order, n) : rows.slice(0, n), width, color),
  };
}

/**
 * The frame for `screen`: `screen.rows` lines (fewer on a tiny screen, or without `fill`), each
 * `screen.cols` wide.
 */
export function render(
  snap: Snapshot,
  status: StatusFacts,
  view: ViewState,
  screen: Screen,
): string[] {
  const { cols, rows } = screen;
  const style = (s: keyof typeof STYLE, text: string) =>
    screen.color ? STYLE[s] + text + STYLE.reset : text;
  const panes = PANES.map((p) => ({ pane: p, ...paneRows(snap, view, p, screen) }));
  // Status and keys lines; two lines (title, header) a pane and one row at least. A tiny screen
  // shows the focused one.
  const body = Math.max(rows - 2, 0);
  const shown = body >= 3 * panes.length ? panes : panes.filter((p) => p.pane === view.pane);
  let free = body - 2 * shown.length;
  const small = Math.max(1, Math.floor(free / 5));
  const want = new Map(
    shown.map((p) => [p.pane, p.pane === view.pane ? 0 : Math.min(Math.max(p.count, 1), small)]),
  );
  for (const n of want.values()) free -= n;
  want.set(view.pane, Math.max(free, 0));

  const lines = [style("inverse", fit(statusLine(snap, status, view, cols), cols))];
  for (const p of shown) {
    const n = want.get(p.pane)!;
    const focused = p.pane === view.pane;
    const sort = p.pane === "commands" ? "newest first" : `sort: ${view.sort[p.pane]}`;
    const counted = p.count === p.total ? `${p.total}` : `${p.count} of ${p.total}`;
    const title = `${focused ? "▶" : " "} ${p.title} (${counted}) · ${sort}` +
      (p.pane === "commands" ? "" : " · rates over 5 s") + " ";
    const rule = "─".repeat(Math.max(cols - displayWidth(title), 0));
    lines.push(style(focused ? "bold" : "dim", fit(title + rule, cols)));
    const { header, lines: rowLines } = p.draw(n);
    lines.push(style("bold", header));
    if (rowLines.length === 0 && n > 0) {
      rowLines.push(
        fit(view.filter ? `  nothing matches "${view.filter}"` : "  nothing yet", cols),
      );
    }
    lines.push(...rowLines);
    if (screen.fill) { for (let i = rowLines.length; i < n; i++) lines.push(fit("", cols)); }
  }
  while (screen.fill && lines.length < rows - 1) lines.push(fit("", cols));
  if (rows >= 2) lines.push(fit(keysLine(status, view), cols));
  return lines.slice(0, Math.max(rows, 1));
}

function statusLine(snap: Snapshot, s: StatusFacts, view: ViewState, cols: number): string {
  const parts = [
    `top ${clock(s.nowMs)}${view.paused ? " PAUSED" : ""}`,
    `probes: ${s.probes.join(" ") || "-"}` +
    (s.disabled.length ? ` (disabled: ${s.disabled.join(" ")})` : ""),
    `lost ${s.lost}`,
    `drops ${formatPerSecond(snap.dropRate)}/s`,
    `cpu ${snap.cpuPercent === undefined ? "-" : `${snap.cpuPercent.toFixed(1)}%`}` +
    ` rss ${snap.rssBytes === undefined ? "-" : formatBytes(snap.rssBytes)}`,
    `frame ${s.frameMs === undefined ? "-" : `${s.frameMs.toFixed(1)}ms`}`,
  ];
  // Whole parts, the last first, leave a narrow screen rather than one cut mid-word.
  while (parts.length > 1 && displayWidth(" " + parts.join(" │ ")) > cols) parts.pop();
  return " " + parts.join(" │ ");
}

function keysLine(s: StatusFacts, view: ViewState): string {
  if (view.editing !== undefined) {
    return ` filter by process or name: ${view.editing}▏  (Enter keeps, Esc clears)`;
  }
  const filter = view.filter ? `filter "${view.filter}"  ` : "";
  const log = s.lastLog ? `  │ log (${s.heldLogs ?? 0} held, shown at exit): ${s.lastLog}` : "";
  return ` ${filter}Tab pane  s sort  / filter  space ${
    view.paused ? "resume" : "pause"
  }  q quit${log}`;
}

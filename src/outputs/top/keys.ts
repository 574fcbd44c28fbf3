/**
 * What the keys do to the view: Tab (Shift-Tab back) cycles the focused pane, `s` the focused
 * pane's sort, `/` starts typing a filter (Enter keeps it, Esc clears it), space pauses, `q`
 * or Ctrl-C quits. In raw mode Ctrl-C is the byte 0x03, not a signal: {@linkcode applyKeys}
 * reports it as a quit, and the output asks the pipeline to stop.
 */

/** The panes, in Tab order. */
export const PANES = ["flows", "dns", "drops", "commands"] as const;
export type Pane = typeof PANES[number];

/** Sorts of each pane, in `s` order; the first is the default. */
export const SORTS = {
  flows: ["rate", "in", "out", "retransmits", "failures", "rtt", "process"],
  dns: ["rate", "errors", "latency", "name"],
  drops: ["rate", "bytes", "reason", "process"],
  commands: ["time"],
} as const satisfies { [p in Pane]: readonly string[] };

/** What the user chose: the focused pane, sorts, filter, pause. */
export interface ViewState {
  pane: Pane;
  sort: { [p in Pane]: string };
  /** Rows whose process or name contains it (case-insensitive); "" shows all. */
  filter: string;
  /** The filter being typed after `/`, until Enter or Esc. */
  editing?: string;
  paused: boolean;
}

export function initialView(): ViewState {
  return {
    pane: "flows",
    sort: {
      flows: SORTS.flows[0],
      dns: SORTS.dns[0],
      drops: SORTS.drops[0],
      commands: SORTS.commands[0],
    },
    filter: "",
    paused: false,
  };
}

function next<T>(list: readonly T[], current: T, step: number): T {
  const i = list.indexOf(current);
  return list[(i + step + list.length) % list.length];
}

/**
 * Applies what one read of the terminal brought (`input`: one key or several, escape
 * sequences whole) to `view`. Returns the new view and, for `q` or Ctrl-C, why to quit.
 */
export function applyKeys(view: ViewState, input: string): { view: ViewState; quit?: string } {
  let v = { ...view, sort: { ...view.sort } };
  for (let i = 0; i < input.length; i++) {
    const c = input[i];
    if (c === "\x03") return { view: v, quit: "Ctrl-C" };
    if (c === "\x1b") {
      // An escape sequence (an arrow, Shift-Tab `ESC [ Z`), or Esc alone.
      // deno-lint-ignore no-control-regex
      const m = /^\x1b(?:\[[0-?]*[ -/]*[@-~]|O.)/.exec(input.slice(i));
      if (m) {
        if (m[0] === "\x1b[Z" && v.editing === undefined) v.pane = next(PANES, v.pane, -1);
        i += m[0].length - 1;
      } else if (v.editing !== undefined) {
        v = { ...v, editing: undefined, filter: "" };
      }
      continue;
    }
    if (v.editing !== undefined) {
      if (c === "\r" || c === "\n") v = { ...v, filter: v.editing, editing: undefined };
      else if (c === "\x7f" || c === "\b") v.editing = [...v.editing].slice(0, -1).join("");
      else if (c >= " ") v.editing += c;
      continue;
    }
    switch (c) {
      case "q":
        return { view: v, quit: "q pressed" };
      case "\t":
        v.pane = next(PANES, v.pane, 1);
        break;
      case "s":
        v.sort[v.pane] = next<string>(SORTS[v.pane], v.sort[v.pane], 1);
        break;
      case "/":
        v.editing = "";
        break;
      case " ":
        v.paused = !v.paused;
        break;
    }
  }
  return { view: v };
}

/**
 * The stage graph's order and cycles, in time linear in stages plus references: a pipeline file
 * is checked before anything runs, so a hostile one must not make `--check` spin (the earlier
 * pass-until-stable loop took 27 s for 10,000 stages).
 *
 * @module
 */

/** A stage as the graph sees it: the stages it reads from (inputs and side inputs). */
export interface GraphNode {
  readonly name: string;
  /** Names of the stages it reads; unknown names and its own name are ignored here. */
  readonly reads: readonly string[];
}

/** What {@linkcode graphOrder} found. */
export interface GraphOrder {
  /** Indices into the nodes, each after every node it reads; nodes on or after a cycle left out. */
  order: number[];
  /** Indices of the nodes that sit on a cycle, ascending (empty when there is none). */
  onCycle: number[];
}

/**
 * Orders `nodes` so each comes after those it reads (Kahn's algorithm; among nodes ready at
 * once, the one written first goes first) and finds the nodes on a cycle (Tarjan's strongly
 * connected components, without recursion).
 *
 * @example
 * ```ts
 * graphOrder([{ name: "out", reads: ["bash"] }, { name: "bash", reads: [] }]).order; // [1, 0]
 * ```
 */
export function graphOrder(nodes: readonly GraphNode[]): GraphOrder {
  const index = new Map(nodes.map((n, i) => [n.name, i]));
  // readers[i]: the nodes that read node i, once per reference (a count, like `pending`).
  const readers: number[][] = nodes.map(() => []);
  const pending = new Array<number>(nodes.length).fill(0);
  nodes.forEach((n, i) => {
    for (const name of n.reads) {
      const j = index.get(name);
      if (j === undefined || j === i) continue;
      readers[j].push(i);
      pending[i]++;
    }
  });
  const ready = new MinHeap();
  pending.forEach((p, i) => p === 0 && ready.push(i));
  const order: number[] = [];
  while (ready.size > 0) {
    const i = ready.pop();
    order.push(i);
    for (const r of readers[i]) if (--pending[r] === 0) ready.push(r);
  }
  const onCycle = order.length === nodes.length ? [] : cycles(readers);
  return { order, onCycle };
}

/** Nodes in a strongly connected component of two or more (Tarjan's, with an explicit stack). */
function cycles(edges: readonly number[][]): number[] {
  const n = edges.length;
  const indexOf = new Array<number>(n).fill(-1), low = new Array<number>(n).fill(0);
  const onStack = new Array<boolean>(n).fill(false);
  const stack: number[] = [], found: number[] = [];
  let next = 0;
  for (let root = 0; root < n; root++) {
    if (indexOf[root] !== -1) continue;
    // Each frame: a node and how many of its edges were followed.
    const frames: [number, number][] = [[root, 0]];
    indexOf[root] = low[root] = next++;
    stack.push(root);
    onStack[root] = true;
    while (frames.length > 0) {
      const frame = frames[frames.length - 1];
      const [v, e] = frame;
      if (e < edges[v].length) {
        frame[1]++;
        const w = edges[v][e];
        if (indexOf[w] === -1) {
          indexOf[w] = low[w] = next++;
          stack.push(w);
          onStack[w] = true;
          frames.push([w, 0]);
        } else if (onStack[w]) low[v] = Math.min(low[v], indexOf[w]);
        continue;
      }
      frames.pop();
      if (frames.length > 0) {
        const parent = frames[frames.length - 1][0];
        low[parent] = Math.min(low[parent], low[v]);
      }
      if (low[v] !== indexOf[v]) continue;
      const component: number[] = [];
      let w: number;
      do {
        w = stack.pop()!;
        onStack[w] = false;
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(...component);
    }
  }
  return found.sort((a, b) => a - b);
}

/**
 * A binary min-heap of numbers: the ready stage written first is taken first. Written here:
 * std's BinaryHeap is on JSR, which this project cannot reach, and this is all it needs.
 */
class MinHeap {
  readonly #items: number[] = [];

  get size(): number {
    return this.#items.length;
  }

  push(value: number): void {
    const a = this.#items;
    a.push(value);
    for (let i = a.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (a[parent] <= a[i]) break;
      [a[parent], a[i]] = [a[i], a[parent]];
      i = parent;
    }
  }

  pop(): number {
    const a = this.#items;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      for (let i = 0;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < a.length && a[l] < a[m]) m = l;
        if (r < a.length && a[r] < a[m]) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return top;
  }
}

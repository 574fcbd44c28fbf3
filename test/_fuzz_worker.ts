/**
 * The runtime fuzz's worker: runs each case the test posts (see _fuzz_case.ts) and posts back
 * what came of it. Whatever writes to the console is caught and reported too: everything the
 * collector says must go through its logger.
 */
import { type FuzzCase, type FuzzResult, runCase } from "./_fuzz_case.ts";

const worker = globalThis as unknown as {
  onmessage: (e: MessageEvent<FuzzCase>) => void;
  postMessage(result: FuzzResult | "ready"): void;
};
const stray: string[] = [];
for (const key of ["log", "error", "warn", "info"] as const) {
  console[key] = (...args: unknown[]) => stray.push(`console.${key}: ${args.join(" ")}`);
}
worker.onmessage = async (e) => {
  stray.length = 0;
  const result = await runCase(e.data);
  result.lines.push(...stray);
  worker.postMessage(result);
};
worker.postMessage("ready"); // the collector is loaded: the test measures memory from here

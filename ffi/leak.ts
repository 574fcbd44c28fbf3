/** The leak backstop: a handle collected without close() says so on stderr. */
export function warnLeak(kind: string, what: string): void {
  console.error(`warning: leaked ${kind} ${what}: forgot close()`);
}

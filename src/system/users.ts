/**
 * Login names for uids, read from `/etc/passwd`.
 *
 * Only local users are found: users that come from NSS services such as LDAP or SSSD are not in
 * `/etc/passwd` and show as their uid in decimal. Reading the file directly (rather than calling
 * `getpwuid` through FFI) keeps this pure and the collector's permissions to `--allow-read`.
 *
 * @module
 */

/** Parses passwd text into uid → login name; comments, blank and malformed lines are skipped. */
export function parsePasswd(text: string): Map<number, string> {
  const users = new Map<number, string>();
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === "" || line.startsWith("#")) continue;
    const [name, , uidText] = line.split(":");
    // `+`/`-` lines are NIS compat markers, not users.
    if (!name || name.startsWith("+") || name.startsWith("-")) continue;
    if (uidText === undefined || !/^\d+$/.test(uidText)) continue;
    const uid = Number(uidText);
    if (uid > 0xffff_ffff) continue;
    // The first entry wins, as it does for getpwuid.
    if (!users.has(uid)) users.set(uid, name);
  }
  return users;
}

/** Options for {@linkcode UserNames}: the passwd source, a clock and the re-read interval. */
export interface UserNamesOptions {
  /** Returns the passwd text; may throw, in which case the names already known are kept. */
  read: () => string;
  /** Returns the current time in milliseconds (injected so tests control it). */
  now: () => number;
  /** Minimum time between re-reads on a miss, in milliseconds; default 5000. */
  refreshMs?: number;
}

/** Resolves uids to login names, re-reading passwd on a miss so new users are found. */
export class UserNames {
  #read: () => string;
  #now: () => number;
  #refreshMs: number;
  #names = new Map<number, string>();
  #lastRead: number | undefined;

  /** Creates the resolver; passwd is first read on the first lookup. */
  constructor({ read, now, refreshMs = 5000 }: UserNamesOptions) {
    this.#read = read;
    this.#now = now;
    this.#refreshMs = refreshMs;
  }

  /** Returns the login name of `uid`, or the uid in decimal when it is unknown. */
  name(uid: number): string {
    let name = this.#names.get(uid);
    if (name === undefined && this.#dueForRead()) {
      this.#reload();
      name = this.#names.get(uid);
    }
    return name ?? String(uid);
  }

  // A miss on an unknown uid (e.g. a container's) would otherwise re-read the file per event.
  #dueForRead(): boolean {
    return this.#lastRead === undefined || this.#now() - this.#lastRead >= this.#refreshMs;
  }

  #reload(): void {
    this.#lastRead = this.#now();
    let text: string;
    try {
      text = this.#read();
    } catch {
      return;
    }
    // Merge rather than replace: a failed or partial read (the file being rewritten) must not
    // forget names, and events of a deleted user still deserve the name it had. A renamed uid
    // takes its new name.
    for (const [uid, name] of parsePasswd(text)) this.#names.set(uid, name);
  }
}

/** Returns a resolver reading `/etc/passwd` (a read error counts as empty, so uids are shown). */
export function systemUserNames(): UserNames {
  return new UserNames({
    read: () => {
      try {
        return Deno.readTextFileSync("/etc/passwd");
      } catch {
        return "";
      }
    },
    now: () => performance.now(),
  });
}

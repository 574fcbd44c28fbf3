import assert from "node:assert/strict";
import { parsePasswd, systemUserNames, UserNames } from "./users.ts";

const PASSWD = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash
`;

Deno.test("parsePasswd maps uids to login names", () => {
  assert.deepEqual(
    parsePasswd(PASSWD),
    new Map([[0, "root"], [1, "daemon"], [1000, "alice"]]),
  );
});

Deno.test("parsePasswd keeps the first entry of a duplicated uid", () => {
  const users = parsePasswd("root:x:0:0::/root:/bin/sh\ntoor:x:0:0::/root:/bin/csh\n");
  assert.equal(users.get(0), "root");
  assert.equal(users.size, 1);
});

Deno.test("parsePasswd skips comments, blank, malformed and NIS lines", () => {
  const text = [
    "# comment:x:5:5::/:/bin/sh",
    "",
    "   ",
    "nouid",
    "bad:x:abc:1::/:/bin/sh",
    "neg:x:-1:1::/:/bin/sh",
    ":x:7:7::/:/bin/sh",
    "huge:x:4294967296:1::/:/bin/sh",
    "+::::::",
    "+nisuser:::::",
    "-banned:::::",
    "bob:x:1001:1001::/home/bob:/bin/sh\r",
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
  ].join("\n");
  assert.deepEqual(parsePasswd(text), new Map([[1001, "bob"], [65534, "nobody"]]));
});

Deno.test("parsePasswd of empty text is an empty map", () => {
  assert.equal(parsePasswd("").size, 0);
});

function fakeClock(start = 0) {
  const clock = { t: start, now: () => clock.t };
  return clock;
}

Deno.test("name returns the login name and falls back to the uid in decimal", () => {
  const users = new UserNames({ read: () => PASSWD, now: () => 0 });
  assert.equal(users.name(0), "root");
  assert.equal(users.name(1000), "alice");
  assert.equal(users.name(4242), "4242");
});

Deno.test("passwd is read once on the first lookup, not at construction", () => {
  let reads = 0;
  const users = new UserNames({ read: () => (reads++, PASSWD), now: () => 0 });
  assert.equal(reads, 0);
  users.name(0);
  users.name(1);
  assert.equal(reads, 1);
});

Deno.test("a user created after start is found once refreshMs has passed since the read", () => {
  let text = PASSWD;
  let reads = 0;
  const clock = fakeClock(1_000);
  const users = new UserNames({ read: () => (reads++, text), now: clock.now, refreshMs: 5000 });

  assert.equal(users.name(1002), "1002");
  assert.equal(reads, 1);

  text += "carol:x:1002:1002::/home/carol:/bin/sh\n";
  clock.t += 4_999;
  assert.equal(users.name(1002), "1002", "too soon to re-read");
  assert.equal(reads, 1);

  clock.t += 1;
  assert.equal(users.name(1002), "carol");
  assert.equal(reads, 2);
});

Deno.test("repeated misses re-read at most once per refreshMs", () => {
  let reads = 0;
  const clock = fakeClock();
  const users = new UserNames({ read: () => (reads++, PASSWD), now: clock.now, refreshMs: 100 });
  for (let i = 0; i < 1_000; i++) {
    users.name(50_000 + i);
    clock.t += 1;
  }
  // One first read plus one per 100 ms over 1000 ms.
  assert.equal(reads, 10);
});

Deno.test("hits never re-read passwd", () => {
  let reads = 0;
  const clock = fakeClock();
  const users = new UserNames({ read: () => (reads++, PASSWD), now: clock.now, refreshMs: 1 });
  for (let i = 0; i < 100; i++) {
    assert.equal(users.name(0), "root");
    clock.t += 10;
  }
  assert.equal(reads, 1);
});

Deno.test("a failed or empty re-read keeps the names already known", () => {
  const results: (() => string)[] = [
    () => PASSWD,
    () => {
      throw new Error("EACCES");
    },
    () => "",
  ];
  const clock = fakeClock();
  const users = new UserNames({ read: () => results.shift()!(), now: clock.now, refreshMs: 10 });
  assert.equal(users.name(0), "root");
  clock.t += 10;
  assert.equal(users.name(7), "7");
  clock.t += 10;
  assert.equal(users.name(7), "7");
  assert.equal(users.name(1000), "alice");
});

Deno.test("a read that throws on first use falls back to uids", () => {
  const users = new UserNames({
    read: () => {
      throw new Deno.errors.NotFound("no passwd");
    },
    now: () => 0,
  });
  assert.equal(users.name(0), "0");
});

Deno.test("a renamed uid takes its new name on re-read", () => {
  let text = PASSWD;
  const clock = fakeClock();
  const users = new UserNames({ read: () => text, now: clock.now, refreshMs: 10 });
  assert.equal(users.name(1000), "alice");
  text = text.replace("alice:", "alicia:");
  clock.t += 10;
  users.name(9999); // a miss triggers the re-read
  assert.equal(users.name(1000), "alicia");
});

Deno.test("systemUserNames answers without throwing, even without read permission", () => {
  // Without --allow-read the read fails and the fallback applies; with it, the uid is unknown.
  assert.equal(systemUserNames().name(4_000_000_123), "4000000123");
});

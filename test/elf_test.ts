/**
 * ELF reading and the bash probe's choice of where readline lives, on this machine's real
 * binaries (Debian's /bin/bash carries its own readline; `nm -D --undefined-only /bin/bash`
 * lists malloc and strlen as imports).
 */
import assert from "node:assert/strict";
import { UserError } from "../src/errors.ts";
import { findCommandEnd, findReadline } from "../src/probes/bash.ts";
import {
  definedFunctions,
  ElfError,
  functionFileOffset,
  neededLibraries,
  symbolAddress,
} from "../src/system/elf.ts";

const bash = Deno.readFileSync("/bin/bash");
const encoder = new TextEncoder();

/** The file's bytes, or undefined when it does not exist here. */
function readIfPresent(path: string): Uint8Array<ArrayBuffer> | undefined {
  try {
    return Deno.readFileSync(path);
  } catch {
    return undefined;
  }
}

/** A `read` for findReadline that serves `files` and nothing else, noting each path asked for. */
function fakeFs(files: { [path: string]: Uint8Array<ArrayBuffer> }) {
  const asked: string[] = [];
  const read = (path: string | URL): Uint8Array<ArrayBuffer> => {
    asked.push(String(path));
    const bytes = files[String(path)];
    if (!bytes) throw new Deno.errors.NotFound(`No such file or directory: ${path}`);
    return bytes;
  };
  return { read, asked };
}

// The fallback fixture: a real ELF file that links libreadline.so.8 but does not define readline
// (Python's readline extension module), and the real library it links.
const LIBREADLINE = "/usr/lib/x86_64-linux-gnu/libreadline.so.8";
const libreadline = readIfPresent(LIBREADLINE);
const linker = (() => {
  for (const lib of ["/usr/lib", "/usr/lib64"]) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(lib)].filter((e) => /^python3(\.\d+)?$/.test(e.name));
    } catch {
      continue;
    }
    for (const python of entries) {
      const dir = `${lib}/${python.name}/lib-dynload`;
      let modules: Deno.DirEntry[];
      try {
        modules = [...Deno.readDirSync(dir)].filter((e) => /^readline\..*\.so$/.test(e.name));
      } catch {
        continue;
      }
      for (const module of modules) {
        const bytes = Deno.readFileSync(`${dir}/${module.name}`);
        if (neededLibraries(bytes).includes("libreadline.so.8")) return bytes;
      }
    }
  }
  return undefined;
})();
const noFallbackFixture = !linker || !libreadline;

Deno.test("definedFunctions() finds readline and readline_internal_teardown in /bin/bash", () => {
  const found = definedFunctions(bash, ["readline", "readline_internal_teardown"]);

  assert.deepEqual([...found].sort(), ["readline", "readline_internal_teardown"]);
});

Deno.test("definedFunctions() does not report functions /bin/bash only imports", () => {
  const found = definedFunctions(bash, ["malloc", "strlen", "readline", "no_such_function"]);

  assert.deepEqual([...found], ["readline"]);
});

Deno.test("neededLibraries() of /bin/bash includes libc.so.6", () => {
  const needed = neededLibraries(bash);

  assert.ok(needed.includes("libc.so.6"), `needed: ${needed.join(", ")}`);
  assert.ok(needed.every((soname) => /^[\w.+-]+\.so(\.\d+)*$/.test(soname)), needed.join(", "));
});

Deno.test("definedFunctions() and neededLibraries() throw an ElfError for a file that is not ELF", () => {
  const script = encoder.encode(
    "#!/bin/sh\necho this is a shell script, not an ELF file\n".repeat(4),
  );
  const elf32 = bash.slice(0, 64);
  elf32[4] = 1; // ELFCLASS32
  const bigEndian = bash.slice(0, 64);
  bigEndian[5] = 2; // ELFDATA2MSB

  for (const bytes of [script, new Uint8Array(), bash.subarray(0, 63), elf32, bigEndian]) {
    assert.throws(() => definedFunctions(bytes, ["readline"]), ElfError);
    assert.throws(() => neededLibraries(bytes), ElfError);
  }
});

/** `readelf -W <flag> path`'s lines, or undefined without binutils. */
function readelf(flag: string, path: string): string[] | undefined {
  try {
    const out = new Deno.Command("readelf", { args: ["-W", flag, path] }).outputSync();
    return out.success ? new TextDecoder().decode(out.stdout).split("\n") : undefined;
  } catch {
    return undefined;
  }
}

/** What readelf says `func`'s file offset is: its value, less its section's address, plus the section's offset. */
function readelfFileOffset(path: string, func: string): number | undefined {
  const symbols = readelf("-s", path), headers = readelf("-S", path);
  if (!symbols || !headers) return undefined;
  // "  2153: 00000000000c5800   304 FUNC    GLOBAL DEFAULT   15 readline_internal_teardown"
  const sym = symbols.map((l) => l.trim().split(/\s+/)).find((f) =>
    f[7] === func && f[3] === "FUNC"
  );
  if (!sym) return undefined;
  // "  [15] .text   PROGBITS   000000000002fe20 02fe20 0bfd71 00  AX  0   0 16"
  const header = headers.find((l) => l.trim().startsWith(`[${sym[6].padStart(2)}]`));
  const [addr, offset] = header!.replace(/^\s*\[\s*\d+\]/, "").trim().split(/\s+/).slice(2, 4);
  return parseInt(sym[1], 16) - parseInt(addr, 16) + parseInt(offset, 16);
}

const noReadelf = readelf("-h", "/bin/bash") === undefined;

for (
  const [path, func] of [["/bin/bash", "readline_internal_teardown"], [LIBREADLINE, "readline"]]
) {
  const missing = noReadelf ? "no readelf" : readIfPresent(path) ? "" : `no ${path}`;
  Deno.test({
    name: `functionFileOffset() of ${func} in ${path} is the one readelf's tables give` +
      (missing ? ` (ignored: ${missing} here)` : ""),
    ignore: missing !== "",
    fn() {
      const expected = readelfFileOffset(path, func);

      assert.ok(expected !== undefined, `readelf lists no ${func} in ${path}`);
      assert.equal(functionFileOffset(Deno.readFileSync(path), func), expected);
    },
  });
}

Deno.test("functionFileOffset() moves a symbol by its section's address less its file offset", () => {
  // Debian's bash is linked with .text at the same address as its file offset, which would
  // hide a mix-up of the two: lower every section's sh_addr by 0x1000, as if linked elsewhere.
  const moved = bash.slice();
  const view = new DataView(moved.buffer);
  const shoff = Number(view.getBigUint64(0x28, true));
  const shentsize = view.getUint16(0x3a, true), shnum = view.getUint16(0x3c, true);
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize + 0x10;
    const addr = view.getBigUint64(at, true);
    if (addr >= 0x1000n) view.setBigUint64(at, addr - 0x1000n, true);
  }

  assert.equal(
    functionFileOffset(moved, "readline_internal_teardown"),
    functionFileOffset(bash, "readline_internal_teardown") + 0x1000,
  );
});

Deno.test("functionFileOffset() throws an ElfError for a function the file only imports", () => {
  assert.throws(() => functionFileOffset(bash, "malloc"), ElfError);
  assert.throws(() => functionFileOffset(bash.subarray(0, 63), "readline"), ElfError);
});

Deno.test("findReadline() probes /bin/bash's own readline_internal_teardown", () => {
  assert.deepEqual(findReadline("/bin/bash"), {
    binary: "/bin/bash",
    func: "readline_internal_teardown",
    shared: false,
    offset: functionFileOffset(bash, "readline_internal_teardown"),
  });
});

Deno.test({
  name: noFallbackFixture
    ? "findReadline() falls back to a linked libreadline (ignored: no ELF linking libreadline.so.8 here)"
    : "findReadline() falls back to the libreadline.so.8 a bash without readline links",
  ignore: noFallbackFixture,
  fn() {
    const { read, asked } = fakeFs({ "/opt/bash": linker!, [LIBREADLINE]: libreadline! });

    assert.deepEqual(findReadline("/opt/bash", read), {
      binary: LIBREADLINE,
      func: "readline_internal_teardown",
      shared: true,
      offset: functionFileOffset(libreadline!, "readline_internal_teardown"),
    });
    // It looked in /lib/x86_64-linux-gnu first and went on when the library was not there.
    assert.deepEqual(asked, ["/opt/bash", "/lib/x86_64-linux-gnu/libreadline.so.8", LIBREADLINE]);
  },
});

Deno.test({
  name: noFallbackFixture
    ? "findReadline() skips a libreadline without readline (ignored: no ELF linking libreadline.so.8 here)"
    : "findReadline() skips a libreadline.so.8 that lacks readline and tries the next directory",
  ignore: noFallbackFixture,
  fn() {
    const { read } = fakeFs({
      "/opt/bash": linker!,
      "/lib/x86_64-linux-gnu/libreadline.so.8": linker!, // an ELF file without readline
      [LIBREADLINE]: libreadline!,
    });

    assert.equal(findReadline("/opt/bash", read).binary, LIBREADLINE);
  },
});

Deno.test({
  name: noFallbackFixture
    ? "findReadline() fails when libreadline is missing (ignored: no ELF linking libreadline.so.8 here)"
    : "findReadline() gives a UserError when the libreadline a bash links is nowhere to be found",
  ignore: noFallbackFixture,
  fn() {
    const { read } = fakeFs({ "/opt/bash": linker! });

    assert.throws(() => findReadline("/opt/bash", read), (e) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /\/opt\/bash neither defines readline nor links a libreadline/);
      assert.match(e.message, /probes\.<name>\.binary/);
      return true;
    });
  },
});

Deno.test("findReadline() gives a UserError for an ELF file with no readline and no libreadline", () => {
  const { read } = fakeFs({ "/opt/bash": Deno.readFileSync("/bin/ls") });

  assert.throws(() => findReadline("/opt/bash", read), (e) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /^bash probe: \/opt\/bash neither defines readline/);
    return true;
  });
});

Deno.test("findReadline() gives a UserError naming a bash path that cannot be read", () => {
  assert.throws(() => findReadline("/nonexistent/dir/bash"), (e) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /^bash probe: cannot read \/nonexistent\/dir\/bash: /);
    return true;
  });
});

/** What readelf says the value of symbol `name` (of `type`: FUNC, OBJECT) is. */
function readelfValue(path: string, name: string, type: string): number | undefined {
  const sym = readelf("-s", path)?.map((l) => l.trim().split(/\s+/)).find((f) =>
    f[7] === name && f[3] === type
  );
  return sym ? parseInt(sym[1], 16) : undefined;
}

Deno.test({
  name: "findCommandEnd() finds /bin/bash's parse_command and its $? (last_command_exit_value) " +
    "where readelf does" + (noReadelf ? " (ignored: no readelf here)" : ""),
  ignore: noReadelf,
  fn() {
    const end = findCommandEnd("/bin/bash");
    assert.ok(end, "Debian's bash exports both");
    assert.equal(end.binary, "/bin/bash");
    assert.equal(end.parseCommandAddr, readelfValue("/bin/bash", "parse_command", "FUNC"));
    assert.equal(end.exitValueAddr, readelfValue("/bin/bash", "last_command_exit_value", "OBJECT"));
    assert.equal(end.offset, readelfFileOffset("/bin/bash", "parse_command"));
  },
});

Deno.test("symbolAddress() is undefined for what a file does not define; findCommandEnd() too", () => {
  assert.equal(symbolAddress(bash, "malloc"), undefined, "an import");
  assert.equal(symbolAddress(bash, "no_such_symbol_here"), undefined);
  const { read } = fakeFs({ "/usr/bin/python3-like": encoder.encode("not an ELF file") });
  assert.equal(findCommandEnd("/usr/bin/python3-like", read), undefined);
  assert.equal(findCommandEnd("/missing/bash", read), undefined);
});

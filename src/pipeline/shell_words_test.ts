import assert from "node:assert/strict";
import { shellWord } from "./shell_words.ts";

/** What bash makes of `line` (a command's words), with `env`; whether it ran anything else. */
function bashWords(line: string, env: { [name: string]: string } = {}): string[] {
  const dir = Deno.makeTempDirSync({ prefix: "shell_words_" });
  try {
    const out = new Deno.Command("bash", {
      args: ["-c", `printf '%s\\0' ${line}`],
      cwd: dir,
      env,
      clearEnv: true,
      stdout: "piped",
    }).outputSync();
    assert.deepEqual([...Deno.readDirSync(dir)], [], "the line created files: it ran something");
    return new TextDecoder().decode(out.stdout).split("\0").slice(0, -1);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("shellWord() leaves plain words bare and quotes the rest so bash reads them back", () => {
  const words = [
    "--allow-read=p.yaml,/etc/passwd",
    "a b;touch PWNED;x",
    "$(touch PWNED)",
    "`touch PWNED`",
    "it's",
    "*",
    "",
    "=x",
    "~root",
    "a\\b",
  ];
  assert.equal(shellWord(words[0]), words[0]);
  assert.deepEqual(bashWords(words.map(shellWord).join(" ")), words);
});

Deno.test("shellWord() lets ${VAR} expand and keeps a default's text literal", () => {
  const line = [
    "--allow-write=${EBPF_D:-$(touch PWNED2)}/g.jsonl",
    "${EBPF_D}/a b",
    'x${EBPF_U:-`id` "q" \\ $$HOME}y',
    "cost $${HOME}",
  ].map(shellWord).join(" ");
  assert.deepEqual(bashWords(line, { EBPF_D: "/var/d" }), [
    "--allow-write=/var/d/g.jsonl",
    "/var/d/a b",
    'x`id` "q" \\ $$HOMEy',
    "cost ${HOME}",
  ]);
  assert.deepEqual(bashWords(line)[0], "--allow-write=$(touch PWNED2)/g.jsonl");
});

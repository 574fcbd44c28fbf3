/**
 * The `top` output gives the terminal back however the process ends: the normal screen, the
 * cursor and cooked mode (what `stty` shows) come back after an uncaught error, an unhandled
 * rejection and `Deno.exit`. On a real pty (tmux); no kernel.
 */
import assert from "node:assert/strict";
import { ROOT } from "./_run_command.ts";
import { BASH, PROMPT, Tmux } from "./kernel/_tmux.ts";

for (const how of ["throw", "reject", "exit"]) {
  Deno.test(`top gives the terminal back when the process ends by ${how}`, async () => {
    await using tmux = new Tmux();
    await tmux.start("crash", BASH, 80, 24);
    await tmux.waitForScreen("crash", PROMPT);
    await tmux.type(
      "crash",
      `cd ${ROOT} && ${Deno.execPath()} run -A test/_top_crash.ts ${how}; stty -a | tr ' ' '\\n' | grep -x -- '-\\?icanon'`,
    );
    await tmux.waitForScreen("crash", / top \d\d:\d\d:\d\d/, 20_000);
    assert.equal(await tmux.display("crash", "#{alternate_on}"), "1");
    await tmux.waitForScreen("crash", /^-?icanon\n(.*\n)*?.*[$#]\s*$/m, 20_000);
    const screen = await tmux.screen("crash");
    assert.match(screen, /^icanon$/m, `cooked mode again:\n${screen}`);
    assert.equal(await tmux.display("crash", "#{alternate_on}"), "0", "the normal screen");
    assert.equal(await tmux.display("crash", "#{cursor_flag}"), "1", "the cursor shown");
    if (how !== "exit") assert.match(screen, /on purpose/, "the error itself is on the screen");
  });
}

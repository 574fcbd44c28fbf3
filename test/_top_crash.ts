/**
 * For test/top_terminal_test.ts: a `top` output drawing on this process's terminal, which then
 * dies as asked (`throw`: an uncaught error; `reject`: an unhandled rejection; `exit`:
 * `Deno.exit`, what a second Ctrl-C does) two seconds after it took the screen.
 */
import { buildStage } from "../src/pipeline/testing.ts";
import { topOutput } from "../src/outputs/top.ts";

await buildStage(topOutput, { every: "1s" });
setTimeout(() => {
  switch (Deno.args[0]) {
    case "throw":
      throw new Error("crash on purpose");
    case "reject":
      Promise.reject(new Error("rejected on purpose"));
      break;
    default:
      Deno.exit(130);
  }
}, 2000);

/**
 * The uprobe_multi link the bash probe attaches with (ffi/uprobe_multi.ts), against the kernel:
 * the kernel takes the hand-laid `BPF_LINK_CREATE`, describes the link as a return probe on
 * bash's file at the function's offset, and closing the fd detaches it (bpftool no longer lists
 * it). A program loaded without the attach type is refused with EINVAL, the error on which the
 * probe falls back to a perf uprobe, as on kernels that lack the attach type. Commands arriving
 * through the link: bash_test.ts, capabilities_test.ts.
 */
import assert from "node:assert/strict";
import { LibbpfError } from "../../ffi/errors.ts";
import { BpfObject } from "../../ffi/object.ts";
import { BPF_TRACE_UPROBE_MULTI } from "../../ffi/uprobe_multi.ts";
import { functionFileOffset } from "../../src/system/elf.ts";
import { kernelTest, objectPath } from "./_kernel.ts";

const NEEDS = { objects: ["bash"], tools: ["bpftool"] };
const BASH = "/bin/bash";
const FUNC = "readline_internal_teardown";

/** `bpftool -j link show id <id>` as JSON, or undefined when there is no such link. */
async function bpftoolLink(id: number): Promise<Record<string, unknown> | undefined> {
  const out = await new Deno.Command("bpftool", { args: ["-j", "link", "show", "id", `${id}`] })
    .output();
  if (!out.success) return undefined;
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** The kernel's description of the link fd `fd` (its /proc/self/fdinfo entry). */
function fdinfo(fd: number): string {
  return Deno.readTextFileSync(`/proc/self/fdinfo/${fd}`);
}

kernelTest(
  "a uprobe_multi uretprobe on bash: the kernel has it at the function's offset; close detaches",
  NEEDS,
  async () => {
    using obj = BpfObject.open(objectPath("bash"));
    const program = obj.program("handle_readline");
    program.setExpectedAttachType(BPF_TRACE_UPROBE_MULTI);
    obj.load();
    const offset = functionFileOffset(Deno.readFileSync(BASH), FUNC);
    using link = program.attachUprobeMulti({ binary: BASH, func: FUNC, offset, retprobe: true });
    assert.equal(link.description, `uretprobe.multi ${BASH}:${FUNC}`);

    const info = fdinfo(link.fd);
    assert.match(info, /^link_type:\s+uretprobe_multi$/m);
    assert.match(info, /^uprobe_cnt:\s+1$/m);
    assert.match(info, /^pid:\s+0$/m); // every process
    // The kernel keeps the resolved path (/bin is a link to /usr/bin on merged-/usr systems).
    assert.match(info, new RegExp(`^path:\\s+${Deno.realPathSync(BASH)}$`, "m"));
    assert.match(info, new RegExp(`^0\\s+0x${offset.toString(16)}\\s+0x0$`, "m"));
    const id = Number(info.match(/^link_id:\s+(\d+)$/m)![1]);
    assert.ok(await bpftoolLink(id), `bpftool lists link ${id}`);

    link.close();
    assert.equal(await bpftoolLink(id), undefined, "the link is gone once its fd is closed");
  },
);

kernelTest(
  "a program loaded without the uprobe_multi attach type is refused a uprobe_multi link (EINVAL)",
  NEEDS,
  () => {
    using obj = BpfObject.open(objectPath("bash"));
    obj.load();
    const offset = functionFileOffset(Deno.readFileSync(BASH), FUNC);
    assert.throws(
      () =>
        obj.program("handle_readline").attachUprobeMulti({
          binary: BASH,
          func: FUNC,
          offset,
          retprobe: true,
        }),
      (e) => {
        assert.ok(e instanceof LibbpfError);
        assert.equal(e.errno, 22);
        assert.match(
          e.message,
          /^bpf\(BPF_LINK_CREATE uprobe_multi\) \/bin\/bash:0x[0-9a-f]+: EINVAL/,
        );
        return true;
      },
    );
    // The probe's fallback: the same object's program takes a perf uretprobe.
    using link = obj.program("handle_readline").attachUprobe({
      binary: BASH,
      func: FUNC,
      retprobe: true,
    });
    assert.equal(link.description, `uretprobe ${BASH}:${FUNC}`);
  },
);

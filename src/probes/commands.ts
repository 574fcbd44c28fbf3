/**
 * The typed command a process belongs to, as the kernel's shared `commands` map holds it
 * (bpf/commands.h): the bash probe fills the map, netflow and dns stamp its value on what they
 * count, and each turns it into the same `cmd_id` string.
 */
import type { BpfObject } from "../../ffi/object.ts";
import type { StageContext } from "../pipeline/stage.ts";
import { cStruct } from "./layout.ts";

/** The name of the shared kernel map, in the probe contract's `provides`/`consumes`. */
export const COMMANDS_MAP = "commands";

/** `struct command_ref` (bpf/commands.h). */
export const COMMAND_REF = cStruct("command_ref", 16, {
  boot_ns: [0, 8],
  shell_pid: [8, 4],
  _pad: [12, 4],
});

/**
 * A command's id, `<bash pid>-<boot ns when readline returned its first line>`: the same
 * string wherever it is made from the kernel's pair (`bash`, `netflow`, `dnsflow` and
 * `bash_activity` records).
 */
export function commandId(shellPid: number, cmdBootNs: bigint): string {
  return `${shellPid}-${cmdBootNs}`;
}

/** The id of the `struct command_ref` at `offset`, or undefined when it names none. */
export function decodeCommandRef(view: DataView, offset: number): string | undefined {
  const bootNs = view.getBigUint64(offset + COMMAND_REF.offsets.boot_ns, true);
  if (!bootNs) return undefined;
  return commandId(view.getUint32(offset + COMMAND_REF.offsets.shell_pid, true), bootNs);
}

/**
 * A consumer's part, before `obj` loads: its `commands` map becomes the bash probe's (map
 * reuse) when one provides it (said with --debug); otherwise it stays an empty copy of one
 * entry, looked up in vain, and nothing is stamped.
 */
export function shareCommands(obj: BpfObject, ctx: StageContext): void {
  const map = obj.map(COMMANDS_MAP);
  const fd = ctx.sharedMaps.fd(COMMANDS_MAP);
  if (fd === undefined) {
    map.setMaxEntries(1); // an LRU map preallocates: 65,536 entries would cost MiBs for nothing
    return;
  }
  map.reuseFd(fd);
  ctx.log.debug(`${ctx.name}: cmd_id from the bash probe's commands`);
}

/**
 * A probe's global variables, as its BPF object holds them: `.rodata` (settings, written
 * before load) and `.bss` (switches user space flips while the programs run). Each is one
 * struct of bpf/<name>.h, mirrored by a {@linkcode CStruct}; a size that differs means the
 * object and the collector were built apart.
 */
import type { BpfObject } from "../../ffi/object.ts";
import type { PortRange } from "../pipeline/stage.ts";
import type { CStruct } from "./layout.ts";

/** `obj`'s `.rodata` to write `settings` into before load. */
export function settingsView(obj: BpfObject, settings: CStruct): DataView {
  const rodata = obj.map(".rodata").initialValue();
  if (rodata.length !== settings.size) {
    throw new Error(
      `${settings.name} (.rodata) is ${rodata.length} bytes, not ${settings.size}: rebuild`,
    );
  }
  return new DataView(rodata.buffer, rodata.byteOffset, rodata.length);
}

/** Writes `obj`'s `.bss` whole (after load): `set` fills `switches`' members, the rest 0. */
export function writeBss(
  obj: BpfObject,
  switches: CStruct,
  set: (view: DataView) => void,
): void {
  const bss = obj.map(".bss");
  if (bss.valueSize !== switches.size) {
    throw new Error(
      `${switches.name} (.bss) is ${bss.valueSize} bytes, not ${switches.size}: rebuild`,
    );
  }
  const value = new Uint8Array(switches.size);
  set(new DataView(value.buffer));
  bss.update(new Uint8Array(4), value);
}

/**
 * Writes the client ports the kernel folds into a settings struct's `fold_low`/`fold_high`
 * (`settings` its layout); no range: 0, 0, nothing folded.
 */
export function writeFold(
  view: DataView,
  settings: CStruct<"fold_low" | "fold_high">,
  fold: PortRange | undefined,
): void {
  view.setUint16(settings.offsets.fold_low, fold?.low ?? 0, true);
  view.setUint16(settings.offsets.fold_high, fold?.high ?? 0, true);
}

/**
 * The default pipeline's probes as the registry describes them, for the tests that check what
 * follows from them (the deploy files' capabilities, the kernel tests' probe and object lists),
 * so a probe added to pipeline.yaml with one registry line is covered without editing them.
 */
import { parse } from "yaml";
import { PROBES } from "../src/probes/mod.ts";
import { ROOT } from "./_run_command.ts";

/** A probe stage of pipeline.yaml: its name there, and what its type's def declares. */
export interface DefaultProbe {
  readonly name: string;
  readonly type: string;
  readonly capabilities: readonly string[];
  /** Its BPF object (`build/bpf/<object>.bpf.o`), if it loads one. */
  readonly object?: string;
}

/** pipeline.yaml's probes, in file order. */
export function defaultPipelineProbes(): DefaultProbe[] {
  const probes = parse(Deno.readTextFileSync(`${ROOT}pipeline.yaml`)).probes as Record<
    string,
    { type: string }
  >;
  return Object.entries(probes).map(([name, { type }]) => {
    const def = PROBES.get(type);
    if (!def) throw new Error(`pipeline.yaml: probes.${name}: no probe type ${type}`);
    return { name, type, capabilities: def.capabilities ?? [], object: def.bpfObject };
  });
}

/** pipeline.yaml's probes that load a BPF object. */
export function defaultKernelProbes(): DefaultProbe[] {
  return defaultPipelineProbes().filter((p) => p.object);
}

/** The BPF objects pipeline.yaml's probes load (for a kernel test's `objects`). */
export function defaultObjects(): string[] {
  return [...new Set(defaultKernelProbes().map((p) => p.object!))];
}

/** The union of the capabilities of `probes`, sorted. */
export function capabilitiesOf(probes: readonly { capabilities: readonly string[] }[]): string[] {
  return [...new Set(probes.flatMap((p) => p.capabilities))].sort();
}

/** Every registered probe's BPF object. */
export function probeObjects(): string[] {
  return [...PROBES.values()].flatMap((d) => d.bpfObject ? [d.bpfObject] : []);
}

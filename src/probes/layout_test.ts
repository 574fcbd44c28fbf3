/**
 * The TypeScript side of each probe's kernel contract against the compiled object's BTF: every
 * struct user space reads or writes, member by member (offset and size, nested structs and
 * arrays included), and every enum it mirrors, value by value. Reading an object's BTF needs no
 * privilege, so this runs in the ordinary test run; it builds the objects first (incrementally:
 * an edited bpf/*.h is what it reads).
 */
import assert from "node:assert/strict";
import { DROP_REASONS } from "./drops.ts";
import type { CEnum, CStruct } from "./layout.ts";
import { PROBES as PROBE_DEFS } from "./mod.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/**
 * Each registered probe's object and the module that mirrors its header, by convention
 * `src/probes/<object>_event.ts`; its `KERNEL_ONLY_TYPES` names the header's types user space
 * never reads (socket storage and the like).
 */
const PROBES: { object: string; module: { [name: string]: unknown }; kernelOnly: string[] }[] =
  await Promise.all(
    [...PROBE_DEFS.values()].flatMap((def) => def.bpfObject ? [def.bpfObject] : []).map(
      async (object) => {
        const module = await import(`./${object}_event.ts`);
        return { object, module, kernelOnly: module.KERNEL_ONLY_TYPES ?? [] };
      },
    ),
  );

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number; bitfield_size?: number }[];
  values?: { name: string; val: number }[];
}

/** Runs a build tool, failing with what it said and how to get it when it is missing. */
async function run(tool: string, args: string[]): Promise<string> {
  const hint = "needs clang-16 and bpftool (./scripts/setup.sh installs them)";
  let out;
  try {
    out = await new Deno.Command(tool, { args, cwd: ROOT, stdin: "null" }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${tool} not found: ${hint}`);
    throw e;
  }
  const text = new TextDecoder();
  if (!out.success) {
    throw new Error(`${tool} ${args.join(" ")} failed (${hint}):\n${text.decode(out.stderr)}`);
  }
  return text.decode(out.stdout);
}

/** The objects' build, run once by the first test that reads one (it rebuilds what is stale). */
let built: Promise<string> | undefined;

/** The types in one object's BTF, by name and by id. */
class Btf {
  #byId = new Map<number, BtfType>();
  constructor(readonly object: string, types: BtfType[]) {
    for (const t of types) this.#byId.set(t.id, t);
  }

  static async read(object: string): Promise<Btf> {
    await (built ??= run("bash", ["scripts/build_bpf.sh"]));
    const json = await run("bpftool", ["-j", "btf", "dump", "file", `build/bpf/${object}.bpf.o`]);
    return new Btf(object, JSON.parse(json).types);
  }

  named(kinds: string[], name: string): BtfType | undefined {
    for (const t of this.#byId.values()) if (kinds.includes(t.kind) && t.name === name) return t;
  }

  /** The type behind typedefs and qualifiers. */
  resolve(id: number): BtfType {
    let t = this.#byId.get(id)!;
    while (["TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG"].includes(t.kind)) {
      t = this.#byId.get(t.type_id!)!;
    }
    return t;
  }

  sizeOf(id: number): number {
    const t = this.resolve(id);
    if (t.kind === "ARRAY") return t.nr_elems! * this.sizeOf(t.type_id!);
    if (t.kind === "PTR") return 8;
    return t.size!;
  }

  /** A struct's members as its TypeScript layout lists them: [name, offset, size, struct]. */
  members(struct: BtfType): [string, number, number, string | undefined][] {
    return struct.members!.map((m) => {
      assert.equal(m.bitfield_size ?? 0, 0, `${struct.name}.${m.name}: no bit fields in events`);
      const type = this.resolve(m.type_id);
      const nested = type.kind === "STRUCT" ? type.name : undefined;
      return [m.name, m.bits_offset / 8, this.sizeOf(m.type_id), nested];
    });
  }
}

function isStruct(value: unknown): value is CStruct {
  return typeof value === "object" && value !== null && "members" in value && "offsets" in value;
}

function isEnum(value: unknown): value is CEnum {
  return typeof value === "object" && value !== null && "values" in value && "name" in value;
}

/** The struct and enum tags `bpf/<file>` declares. */
async function declaredIn(file: string): Promise<{ structs: string[]; enums: string[] }> {
  const text = await Deno.readTextFile(`${ROOT}bpf/${file}`);
  const tags = (kind: string) =>
    [...text.matchAll(new RegExp(`^${kind} (\\w+) \\{`, "gm"))].map((m) => m[1]);
  return { structs: tags("struct"), enums: tags("enum") };
}

/** The C name of each drop reason's counter: DROP_<COUNTER>, but for the ring's own name. */
function dropReasonName(counter: string): string {
  return counter === "ring_lost" ? "DROP_RINGBUF_FULL" : `DROP_${counter.toUpperCase()}`;
}

function enumValues(btf: Btf, name: string): { [name: string]: number } {
  const t = btf.named(["ENUM", "ENUM64"], name);
  assert.ok(
    t,
    `enum ${name} is not in build/bpf/${btf.object}.bpf.o's BTF: clang drops unused types; ` +
      `keep it with BTF_ANCHOR (bpf/common.h) in its header`,
  );
  return Object.fromEntries(t.values!.map((v) => [v.name, v.val]));
}

for (const { object, module, kernelOnly } of PROBES) {
  const structs = Object.values(module).filter(isStruct);
  const enums = Object.values(module).filter(isEnum);
  const source = `src/probes/${object}_event.ts`;

  Deno.test(`every struct ${source} mirrors has bpf/${object}.h's members, offsets and sizes`, async () => {
    const btf = await Btf.read(object);
    for (const layout of structs) {
      const struct = btf.named(["STRUCT"], layout.name);
      assert.ok(
        struct,
        `struct ${layout.name} is not in build/bpf/${object}.bpf.o's BTF: clang drops types ` +
          `no code or map uses; keep it with BTF_ANCHOR (bpf/common.h) in bpf/${object}.h`,
      );
      assert.deepEqual(
        layout.members.map((m) => [m.name, m.offset, m.size, m.struct?.name]),
        btf.members(struct),
        `struct ${layout.name}: ${source} (actual) against bpf/${object}.h (expected)`,
      );
      assert.equal(layout.size, struct.size, `sizeof(struct ${layout.name})`);
    }
  });

  Deno.test(`every enum ${source} mirrors has bpf/${object}.h's values, drop reasons included`, async () => {
    const btf = await Btf.read(object);
    for (const mirror of enums) {
      assert.deepEqual(
        mirror.values,
        enumValues(btf, mirror.name),
        `enum ${mirror.name}: ${source} (actual) against bpf/${object}.h (expected)`,
      );
    }
    // Every probe counts drops by enum drop_reason (bpf/common.h), read as DROP_REASONS.
    assert.deepEqual(
      {
        ...Object.fromEntries(DROP_REASONS.map((counter, i) => [dropReasonName(counter), i])),
        DROP_REASONS: DROP_REASONS.length,
      },
      enumValues(btf, "drop_reason"),
      "enum drop_reason: DROP_REASONS in src/probes/drops.ts (actual) against bpf/common.h",
    );
  });

  Deno.test(`every struct and enum bpf/${object}.h declares is mirrored in ${source} or kernel-only`, async () => {
    const declared = await declaredIn(`${object}.h`);
    const mirrored = new Set([...structs, ...enums].map((t) => t.name));
    for (const name of [...declared.structs, ...declared.enums]) {
      assert.ok(
        mirrored.has(name) || kernelOnly.includes(name),
        `bpf/${object}.h declares ${name}, which ${source} does not mirror: add its layout ` +
          `there, or name it kernel-only in src/probes/layout_test.ts`,
      );
    }
  });
}

/**
 * The `bash` probe: every line an interactive bash reads, from a uretprobe on readline.
 *
 * Where readline lives is read from the ELF file: bash usually carries its own copy; when it
 * links libreadline.so instead, the probe goes on the library and the kernel side keeps only
 * tasks named `bash` (python and gdb link libreadline too). `readline_internal_teardown` is
 * preferred to `readline`: it returns the same line, and also for the readline call already
 * waiting at the prompt when we attach, which a probe on `readline` misses.
 */
import { bootToRealtimeOffsetNs } from "../../ffi/libc.ts";
import { UserError, whyUnreadable } from "../errors.ts";
import type { ProbeStage, StageContext, StageDef } from "../pipeline/stage.ts";
import { openBpfObject } from "../system/bpf_objects.ts";
import { definedFunctions, ElfError, neededLibraries } from "../system/elf.ts";
import { systemUserNames } from "../system/users.ts";
import {
  BASH_CMD_MAX,
  BASH_SETTINGS_LAYOUT,
  bashRecord,
  decodeBashEvent,
  DecodeError,
} from "./bash_event.ts";
import { startReading } from "./drops.ts";

/** Options of a `bash` probe. */
export interface BashConfig {
  /** The bash executable to probe. */
  binary: string;
  /** Longest command kept, in bytes (the kernel captures up to 16384). */
  max_cmd_bytes: number;
}

const READLINE_FUNCS = ["readline_internal_teardown", "readline"] as const;
const LIBRARY_DIRS = [
  "/lib/x86_64-linux-gnu",
  "/usr/lib/x86_64-linux-gnu",
  "/lib64",
  "/usr/lib64",
  "/lib",
  "/usr/lib",
];

/** Where the uretprobe goes. */
export interface ReadlineTarget {
  binary: string;
  func: string;
  /** The probe is on a shared library, so the kernel must keep only bash's calls. */
  shared: boolean;
}

/** Finds the file and function to probe for `bash` (its own readline, or libreadline's). */
export function findReadline(bashPath: string, read = Deno.readFileSync): ReadlineTarget {
  let bytes: Uint8Array;
  try {
    bytes = read(bashPath);
  } catch (e) {
    throw new UserError(`bash probe: cannot read ${bashPath}: ${whyUnreadable(bashPath, e)}`, 2);
  }
  let own: Set<string>;
  try {
    own = definedFunctions(bytes, READLINE_FUNCS);
  } catch (e) {
    if (!(e instanceof ElfError)) throw e;
    throw new UserError(`bash probe: ${bashPath} is not a bash executable (${e.message})`, 2);
  }
  const func = READLINE_FUNCS.find((f) => own.has(f));
  if (func) return { binary: bashPath, func, shared: false };
  for (const soname of neededLibraries(bytes).filter((n) => n.startsWith("libreadline.so"))) {
    for (const dir of LIBRARY_DIRS) {
      const path = `${dir}/${soname}`;
      let lib: Uint8Array;
      try {
        lib = read(path);
      } catch {
        continue;
      }
      let found: Set<string>;
      try {
        found = definedFunctions(lib, READLINE_FUNCS);
      } catch {
        continue; // not a usable library: keep looking
      }
      const libFunc = READLINE_FUNCS.find((f) => found.has(f));
      if (libFunc) return { binary: path, func: libFunc, shared: true };
    }
  }
  throw new UserError(
    `bash probe: ${bashPath} neither defines readline nor links a libreadline.so that does ` +
      `(set probes.<name>.binary to an interactive bash)`,
    2,
  );
}

export const bashProbe: StageDef<BashConfig> = {
  type: "bash",
  kind: "probe",
  // CAP_SYS_ADMIN: a perf uprobe needs it again since Linux 6.16 (docs/capabilities.md).
  capabilities: ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN"],
  describe: "Commands typed into interactive bash shells (uretprobe on readline).",
  schema: {
    binary: {
      type: "string",
      default: "/bin/bash",
      doc: "the bash to watch (its own readline, or the libreadline.so it links)",
    },
    max_cmd_bytes: {
      type: "integer",
      default: BASH_CMD_MAX,
      min: 1,
      max: BASH_CMD_MAX,
      doc:
        "longest command kept, in bytes; longer ones are cut at a character boundary and flagged",
    },
  },
  example: { binary: "/bin/bash", max_cmd_bytes: 4096 },

  explain(config) {
    let where: string;
    try {
      const t = findReadline(config.binary);
      where = `uretprobe ${t.binary}:${t.func}${t.shared ? " (only tasks named bash)" : ""}`;
    } catch (e) {
      where = `uretprobe on readline in ${config.binary} (not resolvable here: ${
        (e as Error).message
      })`;
    }
    return {
      details: [
        `${where}; program handle_readline in build/bpf/bash.bpf.o`,
        `ring buffer events, 256 KiB`,
      ],
      reads: [config.binary, "/etc/passwd"],
    };
  },

  build(config, ctx) {
    return attach(config, ctx);
  },
};

/** Opens, configures, loads and attaches the bash object, then starts reading its ring. */
function attach(config: BashConfig, ctx: StageContext): ProbeStage {
  const target = findReadline(config.binary);
  const users = systemUserNames();
  const recordContext = {
    host: ctx.host,
    bootToRealtimeNs: bootToRealtimeOffsetNs(),
    userName: (uid: number) => users.name(uid),
    maxCmdBytes: config.max_cmd_bytes,
  };

  const stack = new DisposableStack(); // closes ring, then link, then object
  try {
    const obj = stack.use(openBpfObject("bash"));
    const settings = obj.map(".rodata").initialValue();
    if (settings.length !== BASH_SETTINGS_LAYOUT.size) {
      throw new Error(
        `bash .rodata is ${settings.length} bytes, not ${BASH_SETTINGS_LAYOUT.size}: rebuild`,
      );
    }
    new DataView(settings.buffer, settings.byteOffset)
      .setUint32(BASH_SETTINGS_LAYOUT.require_bash_comm, target.shared ? 1 : 0, true);
    obj.load();
    const link = stack.use(
      obj.program("handle_readline").attachUprobe({
        binary: target.binary,
        func: target.func,
        retprobe: true,
      }),
    );
    const ring = stack.use(obj.ringBuffer("events", (view, offset, length) => {
      let record;
      try {
        record = bashRecord(decodeBashEvent(view, offset, length), recordContext);
      } catch (e) {
        if (!(e instanceof DecodeError)) throw e;
        ctx.counters.add("decode_errors"); // warned about, rate limited, by the loss watch
        ctx.log.debug(`${ctx.name}: ${e.message}`);
        return;
      }
      ctx.emit(record);
    }, {
      // Per drain, not per record: follow wall-clock steps (NTP) at negligible cost.
      onBatchEnd: () => recordContext.bootToRealtimeNs = bootToRealtimeOffsetNs(),
    }));
    const reading = startReading(ring, obj.map("drops"), ctx);

    return {
      attached: [link.description],
      push() {}, // a probe has no inputs
      async flush(reason) {
        // At shutdown the reader stops after a final drain; otherwise just drain now.
        if (reason === "shutdown") await ring.stop();
        else ring.drain();
      },
      async close() {
        await reading.stop();
        stack.dispose();
      },
    };
  } catch (e) {
    stack.dispose();
    throw e;
  }
}

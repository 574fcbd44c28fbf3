/**
 * The `bash` probe: every line an interactive bash reads, from a uretprobe on readline.
 *
 * Where readline lives is read from the ELF file: bash usually carries its own copy; when it
 * links libreadline.so instead, the probe goes on the library and the kernel side keeps only
 * tasks named `bash` (python and gdb link libreadline too). `readline_internal_teardown` is
 * preferred to `readline`: it returns the same line, and also for the readline call already
 * waiting at the prompt when we attach, which a probe on `readline` misses.
 *
 * The uretprobe is a uprobe_multi link where the kernel has them (6.6 and later): unlike the
 * perf uprobe libbpf 1.1 creates, it needs no CAP_SYS_ADMIN (docs/capabilities.md). Older
 * kernels get the perf uprobe.
 */
import { LibbpfError } from "../../ffi/errors.ts";
import { bootToRealtimeOffsetNs } from "../../ffi/libc.ts";
import type { BpfLink } from "../../ffi/link.ts";
import type { BpfObject } from "../../ffi/object.ts";
import { BPF_TRACE_UPROBE_MULTI } from "../../ffi/uprobe_multi.ts";
import { UserError, whyUnreadable } from "../errors.ts";
import type { ProbeStage, StageContext, StageDef } from "../pipeline/stage.ts";
import { openBpfObject } from "../system/bpf_objects.ts";
import {
  definedFunctions,
  ElfError,
  functionFileOffset,
  neededLibraries,
  symbolAddress,
} from "../system/elf.ts";
import { systemUserNames } from "../system/users.ts";
import {
  BASH_CMD_MAX,
  BASH_SETTINGS,
  bashProcessRecord,
  bashRecord,
  decodeBashEvent,
  DecodeError,
} from "./bash_event.ts";
import { COMMANDS_MAP } from "./commands.ts";
import { COMMON_DROPS, DECODE_ERRORS, decodeFailures, startReading } from "./drops.ts";
import { hashMapFill } from "./map_fill.ts";
import { settingsView } from "./sections.ts";

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
  /**
   * The function's file offset, for a uprobe_multi link; undefined when the file defines it
   * twice (the perf uprobe then lets libbpf decide).
   */
  offset?: number;
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
  if (func) return { binary: bashPath, func, shared: false, offset: fileOffset(bytes, func) };
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
      if (libFunc) {
        return { binary: path, func: libFunc, shared: true, offset: fileOffset(lib, libFunc) };
      }
    }
  }
  throw new UserError(
    `bash probe: ${bashPath} neither defines readline nor links a libreadline.so that does ` +
      `(set probes.<name>.binary to an interactive bash)`,
    2,
  );
}

/**
 * Where a command ends, in the bash executable itself (never in libreadline): the entry of
 * `parse_command`, with the addresses that let the kernel read `$?` there. Undefined when the
 * bash does not export parse_command (then a command ends when the next one starts, and its
 * exit code is -1); `exitValueAddr` 0 when it does not export last_command_exit_value.
 */
export interface CommandEndTarget {
  binary: string;
  offset: number;
  parseCommandAddr: number;
  exitValueAddr: number;
}

export function findCommandEnd(
  bashPath: string,
  read = Deno.readFileSync,
): CommandEndTarget | undefined {
  try {
    const bytes = read(bashPath);
    const parseCommandAddr = symbolAddress(bytes, "parse_command");
    const offset = fileOffset(bytes, "parse_command");
    if (parseCommandAddr === undefined || offset === undefined) return undefined;
    const exitValueAddr = symbolAddress(bytes, "last_command_exit_value") ?? 0;
    return { binary: bashPath, offset, parseCommandAddr, exitValueAddr };
  } catch {
    return undefined; // findReadline says what is wrong with the file
  }
}

/** `func`'s file offset, or undefined when the file defines it at two places. */
function fileOffset(bytes: Uint8Array, func: string): number | undefined {
  try {
    return functionFileOffset(bytes, func);
  } catch (e) {
    if (e instanceof ElfError) return undefined;
    throw e;
  }
}

export const bashProbe: StageDef<BashConfig> = {
  type: "bash",
  kind: "probe",
  // No CAP_SYS_ADMIN: the uprobe_multi link does without it. Only the perf uprobe used before
  // Linux 6.6 needs it, on kernels with the 2025 backport (docs/capabilities.md).
  capabilities: ["CAP_BPF", "CAP_PERFMON"],
  bpfObject: "bash",
  // pid -> the typed command (bpf/commands.h): netflow and dns stamp cmd_id from it.
  provides: [COMMANDS_MAP],
  hostPaths: { binary: "/host/usr/bin/bash" },
  drops: COMMON_DROPS,
  losses: [DECODE_ERRORS],
  checks: [{
    what: "readline",
    run(config) {
      const t = findReadline(config.binary);
      return `${t.func} in ${t.binary}${t.shared ? " (shared libreadline)" : ""}`;
    },
  }, {
    what: "command ends",
    run(config) {
      const end = findCommandEnd(config.binary);
      if (!end) {
        throw new Error(
          `${config.binary} exports no parse_command: a command ends when the next begins`,
        );
      }
      return `parse_command in ${end.binary}` +
        (end.exitValueAddr ? ", $? from last_command_exit_value" : ", no $? (exit_code -1)");
    },
  }],
  describe: "Commands typed into interactive bash shells (uretprobe on readline), with cmd_id.",
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
      where = `uretprobe ${t.binary}:${t.func}${t.shared ? " (only tasks named bash)" : ""}, ` +
        `a uprobe_multi link (a perf uprobe before Linux 6.6)`;
    } catch (e) {
      where = `uretprobe on readline in ${config.binary} (not resolvable here: ${
        (e as Error).message
      })`;
    }
    const end = findCommandEnd(config.binary);
    return {
      details: [
        `${where}; program handle_readline in build/bpf/bash.bpf.o`,
        end
          ? `uprobe ${end.binary}:parse_command (a command ends; its $?): handle_parse_command`
          : `no parse_command in ${config.binary}: a command ends when the next begins`,
        `tp_btf sched_process_fork, sched_process_exec, sched_process_exit: a command's ` +
        `processes (map commands, pid -> cmd_id)`,
        `ring buffer events, 256 KiB`,
      ],
      reads: [config.binary, "/etc/passwd"],
    };
  },

  build(config, ctx) {
    return attach(config, ctx);
  },
};

/**
 * The bash object, loaded, with its uprobes attached (readline's return, parse_command's
 * entry) and its process tracepoints: the uprobes as uprobe_multi links, or, when the kernel
 * refuses that (before 6.6 the attach type does not exist), as perf uprobes. A program loaded
 * for uprobe_multi cannot take a perf uprobe, so the fallback loads the object again.
 */
function loadAndAttach(
  target: ReadlineTarget,
  end: CommandEndTarget | undefined,
  ctx: StageContext,
): { obj: BpfObject; links: BpfLink[] } {
  const links: BpfLink[] = [];
  const closeAll = (obj?: BpfObject) => {
    for (const link of links.splice(0)) link.close();
    obj?.close();
  };
  let obj: BpfObject | undefined;
  try {
    const offset = target.offset;
    if (offset === undefined) throw new ElfError(`no single ${target.func} in ${target.binary}`);
    obj = openConfigured(target, end);
    const readline = obj.program("handle_readline");
    readline.setExpectedAttachType(BPF_TRACE_UPROBE_MULTI);
    obj.program("handle_parse_command").setExpectedAttachType(BPF_TRACE_UPROBE_MULTI);
    obj.load();
    links.push(readline.attachUprobeMulti({ ...target, offset, retprobe: true }));
    ctx.log.debug(`${ctx.name}: ${links[0].description} at file offset 0x${offset.toString(16)}`);
    if (end) {
      links.push(
        obj.program("handle_parse_command").attachUprobeMulti({
          binary: end.binary,
          func: "parse_command",
          offset: end.offset,
          retprobe: false,
        }),
      );
    }
    attachProcessTracepoints(obj, links);
    return { obj, links };
  } catch (e) {
    closeAll(obj);
    if (!(e instanceof LibbpfError || e instanceof ElfError)) throw e;
    ctx.log.debug(`${ctx.name}: no uprobe_multi link (${e.message}); using a perf uprobe`);
  }
  obj = openConfigured(target, end);
  try {
    obj.load();
    links.push(obj.program("handle_readline").attachUprobe({ ...target, retprobe: true }));
    ctx.log.debug(`${ctx.name}: ${links[0].description} (perf uprobe)`);
    if (end) {
      links.push(
        obj.program("handle_parse_command").attachUprobe({
          binary: end.binary,
          func: "parse_command",
          retprobe: false,
        }),
      );
    }
    attachProcessTracepoints(obj, links);
    return { obj, links };
  } catch (e) {
    closeAll(obj);
    throw e;
  }
}

/** The tracepoints that follow a command's processes. */
function attachProcessTracepoints(obj: BpfObject, links: BpfLink[]): void {
  for (const name of ["handle_fork", "handle_exec", "handle_exit"]) {
    links.push(obj.program(name).attach());
  }
}

/** The bash object opened, its settings written (not loaded). */
function openConfigured(target: ReadlineTarget, end: CommandEndTarget | undefined): BpfObject {
  const obj = openBpfObject("bash");
  try {
    const view = settingsView(obj, BASH_SETTINGS);
    const S = BASH_SETTINGS.offsets;
    view.setUint32(S.require_bash_comm, target.shared ? 1 : 0, true);
    view.setBigUint64(S.parse_command_addr, BigInt(end?.parseCommandAddr ?? 0), true);
    view.setBigUint64(S.exit_value_addr, BigInt(end?.exitValueAddr ?? 0), true);
    if (!end) obj.program("handle_parse_command").setAutoload(false);
    return obj;
  } catch (e) {
    obj.close();
    throw e;
  }
}

/** Opens, configures, loads and attaches the bash object, then starts reading its ring. */
function attach(config: BashConfig, ctx: StageContext): ProbeStage {
  const target = findReadline(config.binary);
  const end = findCommandEnd(config.binary);
  if (!end) ctx.log.warn(`${ctx.name}: ${config.binary} exports no parse_command: exit codes -1`);
  const users = systemUserNames();
  const recordContext = {
    host: ctx.host,
    bootToRealtimeNs: bootToRealtimeOffsetNs(),
    userName: (uid: number) => users.name(uid),
    maxCmdBytes: config.max_cmd_bytes,
  };

  const stack = new DisposableStack(); // closes ring, then link, then object
  try {
    const { obj, links } = loadAndAttach(target, end, ctx);
    stack.use(obj);
    for (const link of links) stack.use(link);
    const decodeFailed = decodeFailures(ctx, DecodeError);
    const ring = stack.use(obj.ringBuffer("events", (view, offset, length) => {
      try {
        const event = decodeBashEvent(view, offset, length);
        // What a command's processes did goes only to the stages that join it (command_activity).
        if (event.kind === "line") ctx.emit(bashRecord(event, recordContext));
        else ctx.emitSide(bashProcessRecord(event, recordContext));
      } catch (e) {
        decodeFailed(e);
      }
    }, {
      // Per drain, not per record: follow wall-clock steps (NTP) at negligible cost.
      onBatchEnd: () => recordContext.bootToRealtimeNs = bootToRealtimeOffsetNs(),
    }));
    // How many processes are in a command now, and how many shells are watched: a full LRU
    // map forgets the oldest (map_fill_commands near 1 says so).
    const reading = startReading(ring, obj.map("drops"), ctx, [
      hashMapFill(obj.map(COMMANDS_MAP)),
      hashMapFill(obj.map("shells")),
    ]);
    const commandsFd = obj.map(COMMANDS_MAP).fd;
    ctx.sharedMaps.provide(COMMANDS_MAP, commandsFd);

    return {
      attached: links.map((l) => l.description),
      push() {}, // a probe has no inputs
      async flush(reason) {
        // At shutdown the reader stops after a final drain; otherwise just drain now.
        if (reason === "shutdown") await ring.stop();
        else ring.drain();
      },
      async close() {
        ctx.sharedMaps.withdraw(COMMANDS_MAP, commandsFd);
        await reading.stop();
        stack.dispose();
      },
    };
  } catch (e) {
    stack.dispose();
    throw e;
  }
}

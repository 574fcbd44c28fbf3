/**
 * The deployment files follow from the probe registry: the systemd unit and the DaemonSet
 * grant exactly the capabilities the default pipeline's probes declare (their `StageDef`s, which
 * docs/capabilities.md's table is generated from), the unit passes
 * `systemd-analyze verify` and runs the flags `--explain` prints, every Kubernetes manifest
 * type-checks against the Kubernetes API types (kubernetes-types 1.30.0), no container is
 * privileged, RBAC only reads pods, services and endpointslices, and the ConfigMap holds the
 * default pipeline.
 *
 * `deno run -R -W -E test/deploy_test.ts` regenerates
 * deploy/kubernetes/configmap.yaml from pipeline.yaml.
 */
import assert from "node:assert/strict";
import { isMap, isScalar, parse, parseAllDocuments, parseDocument, stringify } from "yaml";
import { output, ROOT, shellWords, tempPipeline } from "./_run_command.ts";
import { findInPath } from "./_server_process.ts";
import { capabilitiesOf, defaultPipelineProbes } from "./_default_probes.ts";
import { PROBES } from "../src/probes/mod.ts";
import { RUNTIME_ENV, RUNTIME_FLAGS } from "../src/pipeline/permissions.ts";

const UNIT = `${ROOT}deploy/systemd/ebpf-collector.service`;
const K8S = `${ROOT}deploy/kubernetes/`;
const CONFIGMAP = `${K8S}configmap.yaml`;
const CONTAINERFILE = `${ROOT}deploy/Containerfile`;
/** Where the unit, the image and the DaemonSet put the pipeline and the bundle. */
const ETC_PIPELINE = "/etc/ebpf-collector/pipeline.yaml";
const BUNDLE = "/opt/ebpf-collector/ebpf-collector.js";

/** The union of the capabilities the default pipeline's probes declare, sorted. */
function defaultPipelineCapabilities(): string[] {
  return capabilitiesOf(defaultPipelineProbes());
}

/** The settings the cluster variant adds to each stage of a type, in this order. */
const CLUSTER_SETTINGS: Record<string, [section: string, key: string, value: string][]> = {
  // The host files probes read (their defs' hostPaths), mounted under /host by daemonset.yaml.
  ...Object.fromEntries(
    [...PROBES.values()].map((d) => [
      d.type,
      Object.entries(d.hostPaths ?? {}).map(([key, path]) => ["probes", key, path]),
    ]),
  ),
  // The host's cgroup tree (the pod's own /sys/fs/cgroup shows only its cgroup namespace), and
  // pod names from the API server for this node's pods.
  container: [
    ["transforms", "cgroup", "/host/sys/fs/cgroup"],
    ["transforms", "kubernetes", "true"],
    ["transforms", "node_name", "${NODE_NAME}"],
  ],
};

/**
 * The cluster variant of a pipeline: CLUSTER_SETTINGS added to its stages. Each setting is a
 * line inserted after the stage's `type:` line, so the file's comments and layout stay as they
 * are (a YAML round trip moves comments about); a stage written in flow style, or one that
 * already has the key, is set through the YAML document instead.
 */
export function clusterPipeline(text: string): string {
  const stages = parse(text) as Record<string, Record<string, { type?: string }> | undefined>;
  for (const section of ["probes", "transforms"]) {
    for (const [name, stage] of Object.entries(stages[section] ?? {})) {
      const settings = (CLUSTER_SETTINGS[stage.type ?? ""] ?? []).filter(([s]) => s === section);
      for (const [, key, value] of settings.toReversed()) {
        text = withSetting(text, [section, name], key, value);
      }
    }
  }
  return text;
}

/** `text` with `key: value` set in the map at `path`, as a new line after its `type:` line. */
function withSetting(text: string, path: string[], key: string, value: string): string {
  const doc = parseDocument(text);
  const map = doc.getIn(path, true);
  const typePair = isMap(map) && !map.flow && !map.has(key)
    ? map.items.find((p) => isScalar(p.key) && p.key.value === "type")
    : undefined;
  if (!typePair || !isScalar(typePair.key) || !isScalar(typePair.value)) {
    doc.setIn([...path, key], parse(value));
    return doc.toString({ lineWidth: 100 });
  }
  const keyStart = typePair.key.range![0];
  const indent = keyStart - (text.lastIndexOf("\n", keyStart) + 1);
  const lineEnd = text.indexOf("\n", typePair.value.range![1]);
  const at = lineEnd === -1 ? text.length : lineEnd;
  return `${text.slice(0, at)}\n${" ".repeat(indent)}${key}: ${value}${text.slice(at)}`;
}

/** deploy/kubernetes/configmap.yaml as generated from pipeline.yaml (its text). */
export function configMapText(
  pipelineText: string = Deno.readTextFileSync(`${ROOT}pipeline.yaml`),
): string {
  const pipeline = clusterPipeline(pipelineText);
  const configMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: "ebpf-collector-pipeline",
      namespace: "ebpf-collector",
      labels: { "app.kubernetes.io/name": "ebpf-collector" },
    },
    data: { "pipeline.yaml": pipeline },
  };
  return "# Generated from pipeline.yaml by `deno run -R -W -E " +
    "test/deploy_test.ts`: do not edit.\n" +
    "# The default pipeline, with the probes reading the host's bash and cgroup v2 root\n" +
    "# (mounted under /host by daemonset.yaml) and container transforms asking Kubernetes.\n" +
    stringify(configMap, { lineWidth: 0, blockQuote: "literal" });
}

if (import.meta.main) {
  Deno.writeTextFileSync(CONFIGMAP, configMapText());
  console.log(`wrote ${CONFIGMAP}`);
}

/** The unit's [Service] settings; a key given twice keeps its last value. */
function unitSettings(): Map<string, string> {
  const settings = new Map<string, string>();
  let section = "";
  for (const line of Deno.readTextFileSync(UNIT).split("\n")) {
    const header = line.match(/^\[(\w+)\]$/);
    if (header) section = header[1];
    const kv = line.match(/^(\w+)=(.*)$/);
    if (kv && section === "Service") settings.set(kv[1], kv[2]);
  }
  return settings;
}

/** The flags `--explain` prints for the default pipeline installed at `installedAt`. */
async function explainedFlags(pipelineText: string, installedAt: string): Promise<string[]> {
  const path = tempPipeline(pipelineText);
  const out = await output(Deno.execPath(), [
    "run",
    "--quiet",
    "--no-prompt",
    "-P",
    // The cluster pipeline's ${NODE_NAME} (the DaemonSet sets it from spec.nodeName).
    "--allow-env=LOG_TOKENS,LOG_STREAM,EBPF_*,NODE_NAME",
    "src/main.ts",
    "--explain",
    "--pipeline",
    path,
  ], { env: { NODE_NAME: "node-a" } });
  assert.equal(out.code, 0, `--explain failed: ${out.stderr}`);
  const last = out.stdout.trim().split("\n").at(-1)!.trim();
  const words = await shellWords(last);
  const run = words.indexOf("run"), script = words.indexOf("src/main.ts");
  assert.ok(run > 0 && script > run, `unexpected last line of --explain: ${last}`);
  assert.deepEqual(words.slice(script), ["src/main.ts", "--pipeline", path]);
  return words.slice(run + 1, script).map((w) => w.replaceAll(path, installedAt));
}

/** deno's permission, V8 and no-fetch flags among `words` (what --explain derives), sorted. */
function permissionFlags(words: string[]): string[] {
  return words.filter((w) => /^--((allow|deny)-|v8-flags=|cached-only$)/.test(w)).sort();
}

Deno.test("deno.json's tasks run with the flags and environment --explain prints", () => {
  const tasks = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks;
  for (const task of ["run", "record", "top"]) {
    const words = tasks[task].split(" ");
    for (const flag of RUNTIME_FLAGS) assert.ok(words.includes(flag), `${task}: ${flag}`);
    for (const [name, value] of Object.entries(RUNTIME_ENV)) {
      assert.ok(words.slice(0, words.indexOf("deno")).includes(`${name}=${value}`), task);
    }
  }
  // Tests and benches load pipelines with user regexes: they need the engine as well.
  for (const task of ["test", "bench", "bench:micro"]) {
    assert.match(tasks[task], /--v8-flags=\S*--enable-experimental-regexp-engine/, task);
  }
});

Deno.test("the default pipeline's probes declare the capabilities the deploy files grant", () => {
  const caps = defaultPipelineCapabilities();
  assert.ok(caps.includes("CAP_BPF"), "the kernel probes need CAP_BPF");
  for (const c of caps) assert.match(c, /^CAP_[A-Z_]+$/);
});

Deno.test("systemd unit grants exactly the probes' capabilities, with hardening", () => {
  const s = unitSettings();
  const expected = defaultPipelineCapabilities();
  assert.deepEqual(s.get("AmbientCapabilities")?.split(/\s+/).sort(), expected);
  assert.deepEqual(s.get("CapabilityBoundingSet")?.split(/\s+/).sort(), expected);
  const hardening: Record<string, string> = {
    DynamicUser: "yes",
    NoNewPrivileges: "yes",
    ProtectSystem: "strict",
    ProtectHome: "yes",
    PrivateTmp: "yes",
    PrivateDevices: "yes",
    ProtectKernelTunables: "yes",
    ProtectKernelModules: "yes",
    ProtectControlGroups: "yes",
    RestrictNamespaces: "yes",
    SystemCallArchitectures: "native",
    StateDirectory: "ebpf-collector",
  };
  for (const [key, value] of Object.entries(hardening)) assert.equal(s.get(key), value, key);
  assert.equal(s.get("User"), undefined, "no fixed user: DynamicUser picks one that is not root");
  assert.deepEqual(
    s.get("RestrictAddressFamilies")?.split(/\s+/).sort(),
    ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"],
  );
  assert.match(s.get("ExecReload") ?? "", /kill -HUP \$MAINPID$/);
  assert.match(s.get("MemoryMax") ?? "", /^\d+M$/);
  assert.match(s.get("Environment") ?? "", /DENO_NO_UPDATE_CHECK=1/);
});

Deno.test("the unit and the image run the bundle with exactly the flags --explain prints", async () => {
  const explained = permissionFlags(
    await explainedFlags(Deno.readTextFileSync(`${ROOT}pipeline.yaml`), ETC_PIPELINE),
  );
  const exec = unitSettings().get("ExecStart")!.split(" ");
  assert.equal(exec[0], "/usr/bin/deno");
  assert.deepEqual(exec.slice(-3), [BUNDLE, "--pipeline", ETC_PIPELINE]);
  assert.deepEqual(permissionFlags(exec), explained, "the unit's ExecStart");

  const text = Deno.readTextFileSync(CONTAINERFILE).replaceAll("\\\n", "");
  const json = (instruction: string): string[] =>
    JSON.parse(text.match(new RegExp(`^${instruction} (\\[.*\\])$`, "m"))![1]);
  const entrypoint = [...json("ENTRYPOINT"), ...json("CMD")];
  assert.deepEqual(entrypoint.slice(-3), [BUNDLE, "--pipeline", ETC_PIPELINE]);
  assert.deepEqual(permissionFlags(entrypoint), explained, "the image's ENTRYPOINT");
});

Deno.test({
  name: `systemd-analyze verify accepts the unit${
    findInPath("systemd-analyze") ? "" : " [skipped: systemd-analyze not installed]"
  }`,
  ignore: !findInPath("systemd-analyze"),
  async fn() {
    // verify checks that ExecStart's program exists (the bundle is only its argument): where
    // deno is not at /usr/bin/deno, a copy of the unit names this test's deno instead.
    let unit = Deno.readTextFileSync(UNIT);
    const dir = Deno.makeTempDirSync({ prefix: "ebpf-unit-" });
    try {
      if (!findInPath("deno")?.startsWith("/usr/bin/")) {
        unit = unit.replace("ExecStart=/usr/bin/deno", `ExecStart=${Deno.execPath()}`);
      }
      Deno.writeTextFileSync(`${dir}/ebpf-collector.service`, unit);
      const out = await new Deno.Command("systemd-analyze", {
        args: ["verify", `${dir}/ebpf-collector.service`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, text);
      // An unknown or misspelled key is only a warning ("Unknown key ..., ignoring"): none.
      assert.equal(text.trim(), "", `systemd-analyze verify printed:\n${text}`);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

/** Every document of every manifest, with the file it came from. */
function manifests(): { file: string; doc: Record<string, unknown> }[] {
  const all: { file: string; doc: Record<string, unknown> }[] = [];
  for (const entry of [...Deno.readDirSync(K8S)].sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.name.endsWith(".yaml")) continue;
    for (const d of parseAllDocuments(Deno.readTextFileSync(K8S + entry.name))) {
      assert.deepEqual(d.errors, [], `${entry.name}: YAML errors`);
      all.push({ file: entry.name, doc: d.toJS() });
    }
  }
  return all;
}

/** The kubernetes-types type of each kind we ship. */
const KIND_TYPES: Record<string, [module: string, type: string]> = {
  Namespace: ["core/v1", "Namespace"],
  ServiceAccount: ["core/v1", "ServiceAccount"],
  ConfigMap: ["core/v1", "ConfigMap"],
  ClusterRole: ["rbac/v1", "ClusterRole"],
  ClusterRoleBinding: ["rbac/v1", "ClusterRoleBinding"],
  DaemonSet: ["apps/v1", "DaemonSet"],
};

Deno.test("every Kubernetes manifest type-checks against kubernetes-types 1.30.0", async () => {
  const docs = manifests();
  assert.deepEqual(
    [...new Set(docs.map((d) => d.doc.kind as string))].sort(),
    Object.keys(KIND_TYPES).sort(),
  );
  // Each document becomes an object literal `satisfies` its type, so a misspelled or misplaced
  // key is an error too (excess property check), not only a wrong type. The file lives outside
  // the project so that the project's lock file and node_modules stay as they are.
  const imports = Object.entries(KIND_TYPES).map(([kind, [module, type]]) =>
    `import type { ${type} as ${kind} } from "npm:kubernetes-types@1.30.0/${module}";`
  );
  const checks = docs.map(({ file, doc }, i) =>
    `// ${file}\nexport const doc${i} = ${JSON.stringify(doc, null, 2)} satisfies ${doc.kind};`
  );
  const dir = Deno.makeTempDirSync({ prefix: "ebpf-k8s-types-" });
  try {
    Deno.writeTextFileSync(`${dir}/manifests.ts`, [...imports, ...checks].join("\n") + "\n");
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--quiet", `${dir}/manifests.ts`],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, `deno check: ${new TextDecoder().decode(out.stderr)}`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("no container is privileged; each holds exactly the probes' capabilities", () => {
  const expected = defaultPipelineCapabilities().map((c) => c.replace(/^CAP_/, ""));
  const workloads = manifests().filter((m) => m.doc.kind === "DaemonSet");
  assert.equal(workloads.length, 1);
  for (const { doc } of workloads) {
    // deno-lint-ignore no-explicit-any
    const pod = (doc as any).spec.template.spec;
    assert.equal(pod.hostPID, false, "hostPID: pids come from the kernel");
    assert.equal(pod.hostNetwork, true, "hostNetwork: iter/tcp sees its own netns only");
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      const sc = c.securityContext;
      assert.equal(sc.privileged, false, `${c.name}: privileged`);
      assert.equal(sc.allowPrivilegeEscalation, false, `${c.name}: allowPrivilegeEscalation`);
      assert.equal(sc.readOnlyRootFilesystem, true, `${c.name}: readOnlyRootFilesystem`);
      assert.deepEqual(sc.capabilities.drop, ["ALL"]);
      assert.deepEqual([...sc.capabilities.add].sort(), expected);
      const hostMounts = new Set(
        pod.volumes.filter((v: { hostPath?: unknown }) => v.hostPath).map((v: { name: string }) =>
          v.name
        ),
      );
      for (const m of c.volumeMounts) {
        if (hostMounts.has(m.name) && m.name !== "state") {
          assert.equal(m.readOnly, true, `${c.name}: host mount ${m.name} must be read-only`);
        }
      }
      // Each host file the default pipeline's probes read is mounted, read-only, where the
      // ConfigMap's pipeline points them.
      for (const probe of defaultPipelineProbes()) {
        for (const path of Object.values(PROBES.get(probe.type)!.hostPaths ?? {})) {
          const mount = c.volumeMounts.find((m: { mountPath: string }) =>
            path === m.mountPath || path.startsWith(`${m.mountPath}/`)
          );
          assert.ok(mount && hostMounts.has(mount.name), `${c.name}: no host mount for ${path}`);
          assert.equal(mount.readOnly, true, `${c.name}: ${path} must be read-only`);
        }
      }
      assert.ok(c.resources.limits.memory, `${c.name}: memory limit`);
      assert.ok(
        c.env.some((e: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }) =>
          e.name === "NODE_NAME" && e.valueFrom?.fieldRef?.fieldPath === "spec.nodeName"
        ),
        "NODE_NAME from spec.nodeName",
      );
    }
  }
});

Deno.test("RBAC grants only get, list and watch on pods, list and watch on services and endpointslices", () => {
  const roles = manifests().filter((m) => m.doc.kind === "ClusterRole" || m.doc.kind === "Role");
  assert.equal(roles.length, 1);
  // deno-lint-ignore no-explicit-any
  const rules = (roles[0].doc as any).rules;
  assert.deepEqual(rules, [
    { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] },
    // The remote end's identity (dst_k8s_*): Services and the pods their EndpointSlices name.
    { apiGroups: [""], resources: ["services"], verbs: ["list", "watch"] },
    { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
  ]);
});

Deno.test("the ConfigMap holds the default pipeline, cluster variant (regenerate: see top)", () => {
  assert.equal(
    Deno.readTextFileSync(CONFIGMAP),
    configMapText(),
    "deploy/kubernetes/configmap.yaml is not pipeline.yaml's cluster variant: regenerate it with " +
      "deno run -R -W -E test/deploy_test.ts",
  );
});

Deno.test("the DaemonSet runs the bundle with exactly the flags --explain prints for its pipeline", async () => {
  const [ds] = manifests().filter((m) => m.doc.kind === "DaemonSet");
  // deno-lint-ignore no-explicit-any
  const command: string[] = (ds.doc as any).spec.template.spec.containers[0].command;
  assert.deepEqual(command.slice(-3), [BUNDLE, "--pipeline", ETC_PIPELINE]);
  const [cm] = manifests().filter((m) => m.doc.kind === "ConfigMap");
  // deno-lint-ignore no-explicit-any
  const pipeline = (cm.doc as any).data["pipeline.yaml"];
  const explained = await explainedFlags(pipeline, ETC_PIPELINE);
  assert.deepEqual(permissionFlags(command), permissionFlags(explained));
  // deno-lint-ignore no-explicit-any
  const env: { name: string; value?: string }[] = (ds.doc as any).spec.template.spec.containers[0]
    .env;
  for (const [name, value] of Object.entries(RUNTIME_ENV)) {
    assert.ok(env.some((e) => e.name === name && e.value === value), `env ${name}=${value}`);
  }
});

Deno.test("every file the Containerfile copies comes from a documented build step", () => {
  const steps: Record<string, string> = {
    // scripts/package.sh bundle (deno task bundle): the collector with its BPF objects inside.
    "build/ebpf-collector.js": "scripts/package.sh",
    "pipeline.yaml": "pipeline.yaml",
  };
  const copies = [...Deno.readTextFileSync(CONTAINERFILE).matchAll(/^COPY\s+(.+)$/gm)]
    .map((m) => m[1].split(/\s+/).filter((w) => !w.startsWith("--")).slice(0, -1))
    .flat();
  assert.ok(copies.length > 0, "the Containerfile copies something");
  const deployDoc = Deno.readTextFileSync(`${ROOT}docs/deploy.md`);
  for (const source of copies) {
    const producer = steps[source];
    assert.ok(producer, `COPY ${source}: no known build step produces it`);
    Deno.statSync(`${ROOT}${producer}`); // the step (or source file) exists in the repository
    assert.ok(deployDoc.includes(source), `docs/deploy.md does not say how ${source} is made`);
  }
});

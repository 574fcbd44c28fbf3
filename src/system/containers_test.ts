import assert from "node:assert/strict";
import { type CgroupSource, containerIdOfPath, ContainerResolver } from "./containers.ts";

const A = "4f2a1c9e".repeat(8); // 64 hex digits
const B = "0123456789abcdef".repeat(4);

Deno.test("containerIdOfPath() reads each runtime's systemd-driver scope", () => {
  assert.equal(containerIdOfPath(`/system.slice/docker-${A}.scope`), A);
  assert.equal(containerIdOfPath(`/machine.slice/libpod-${A}.scope`), A);
  assert.equal(
    containerIdOfPath(
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod3f1e2d4c_9b8a_4c5d_8e7f_0a1b2c3d4e5f.slice/cri-containerd-${A}.scope`,
    ),
    A,
  );
  assert.equal(
    containerIdOfPath(
      `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podabc.slice/crio-${A}.scope`,
    ),
    A,
  );
});

Deno.test("containerIdOfPath() reads cgroupfs-driver paths: /docker/<id>, kubepods, libpod_parent", () => {
  assert.equal(containerIdOfPath(`/docker/${A}`), A);
  assert.equal(
    containerIdOfPath(`/kubepods/burstable/pod3f1e2d4c-9b8a-4c5d-8e7f-0a1b2c3d4e5f/${A}`),
    A,
  );
  assert.equal(containerIdOfPath(`/kubepods/pod1234/${A}`), A); // guaranteed QoS: no class level
  assert.equal(containerIdOfPath(`/libpod_parent/libpod-${A}`), A);
});

Deno.test("containerIdOfPath() takes the innermost container: sub-cgroups and docker in docker", () => {
  assert.equal(containerIdOfPath(`/machine.slice/libpod-${A}.scope/container`), A);
  assert.equal(containerIdOfPath(`/system.slice/docker-${A}.scope/init.scope`), A);
  assert.equal(containerIdOfPath(`/docker/${A}/docker/${B}`), B);
  assert.equal(containerIdOfPath(`/ebpf-test.slice/docker-${A}.scope/`), A); // trailing slash
});

Deno.test("containerIdOfPath() gives nothing outside containers and for near misses", () => {
  for (
    const path of [
      "/",
      "",
      "/init.scope",
      "/system.slice/sshd.service",
      "/user.slice/user-1000.slice/session-4.scope",
      "/kubepods.slice/kubepods-burstable.slice", // a pod's QoS level, not a container
      `/machine.slice/libpod-conmon-${A}.scope`, // podman's monitor, outside the container
      `/system.slice/crio-conmon-${A}.scope`, // CRI-O's monitor
      `/docker/${A.slice(1)}`, // 63 digits
      `/docker/${A}0`, // 65 digits
      `/docker/${A.toUpperCase()}`, // runtimes write lower case
      `/system.slice/docker-${A}.service`,
      `/system.slice/podman-${A}.scope`,
    ]
  ) {
    assert.equal(containerIdOfPath(path), undefined, path);
  }
});

/** A cgroup tree in memory; records what the resolver asked of it. */
class FakeCgroups implements CgroupSource {
  walks = 0;
  pathLookups = 0;
  constructor(public tree: Map<bigint, string>, public byHandle = false) {}
  pathOf(id: bigint): string | null | undefined {
    if (!this.byHandle) return undefined;
    this.pathLookups++;
    return this.tree.get(id) ?? null;
  }
  *walk() {
    this.walks++;
    for (const [id, path] of this.tree) yield { id, path };
  }
  close() {}
}

function resolver(source: CgroupSource, maxEntries = 100, clock = { ms: 0 }) {
  return new ContainerResolver(source, { maxEntries, rescanIntervalMs: 1000, now: () => clock.ms });
}

Deno.test("ContainerResolver walks once on a miss, then answers containers and non-containers from its cache", () => {
  const tree = new Map([
    [10n, "/system.slice"],
    [11n, `/system.slice/docker-${A}.scope`],
    [12n, `/docker/${B}`],
    [13n, "/user.slice"],
  ]);
  const source = new FakeCgroups(tree);
  const clock = { ms: 0 };
  const r = resolver(source, 100, clock);

  assert.equal(r.lookup(11n), A);
  assert.equal(r.lookup(12n), B); // found by the same walk
  assert.equal(r.lookup(11n), A);
  assert.equal(source.walks, 1);
  clock.ms = 5000;
  assert.equal(r.lookup(13n), undefined); // not a container: a second walk, then cached
  assert.equal(r.lookup(13n), undefined);
  assert.equal(source.walks, 2);
  assert.deepEqual(r.stats, { hits: 3, misses: 2, evictions: 0, scans: 2, deferred: 0 });
});

Deno.test("ContainerResolver rate-limits walks: a miss within the interval is deferred, then retried", () => {
  const clock = { ms: 0 };
  const tree = new Map([[5n, "/init.scope"]]);
  const source = new FakeCgroups(tree);
  const r = resolver(source, 100, clock);
  assert.equal(r.lookup(5n), undefined); // walk 1

  tree.set(20n, `/kubepods/besteffort/pod1/${A}`); // a container starts after the walk
  clock.ms = 500;
  assert.equal(r.lookup(20n), undefined);
  assert.equal(source.walks, 1);
  assert.equal(r.stats.deferred, 1);
  clock.ms = 1000;
  assert.equal(r.lookup(20n), A); // the next walk finds it
  assert.equal(source.walks, 2);
});

Deno.test("ContainerResolver remembers a cgroup that is gone (older than the newest seen) as no container", () => {
  const clock = { ms: 0 };
  const source = new FakeCgroups(new Map([[50n, "/system.slice"]]));
  const r = resolver(source, 100, clock);

  assert.equal(r.lookup(7n), undefined); // below 50 and not there: removed before the walk
  clock.ms = 10_000;
  assert.equal(r.lookup(7n), undefined);
  assert.equal(source.walks, 1, "no second walk for a cgroup known to be gone");
  assert.equal(r.lookup(99n), undefined); // newer than anything seen: may be new, so not cached
  clock.ms = 20_000;
  r.lookup(99n);
  assert.equal(source.walks, 3);
});

Deno.test("ContainerResolver looks ids up one by one when the source can, without walking", () => {
  const source = new FakeCgroups(new Map([[11n, `/system.slice/docker-${A}.scope`]]), true);
  const r = resolver(source);

  assert.equal(r.lookup(11n), A);
  assert.equal(r.lookup(12n), undefined); // gone
  assert.equal(r.lookup(11n), A);
  assert.equal(r.lookup(12n), undefined);
  assert.equal(source.pathLookups, 2);
  assert.equal(source.walks, 0);
});

Deno.test("ContainerResolver keeps at most maxEntries ids, evicting the least recently used", () => {
  const tree = new Map<bigint, string>();
  for (let i = 1n; i <= 1000n; i++) tree.set(i, `/docker/${i.toString(16).padStart(64, "0")}`);
  const source = new FakeCgroups(tree, true);
  const r = resolver(source, 10);

  for (let i = 1n; i <= 1000n; i++) r.lookup(i);
  r.lookup(995n); // recently used: survives the next ones
  for (let i = 1001n; i <= 1009n; i++) r.lookup(i);

  assert.equal(r.size, 10);
  assert.equal(r.stats.evictions, 999);
  const lookups = source.pathLookups;
  assert.equal(r.lookup(995n), "3e3".padStart(64, "0"));
  assert.equal(source.pathLookups, lookups, "995 was still cached");
  r.lookup(996n);
  assert.equal(source.pathLookups, lookups + 1, "996 had been evicted");
});

Deno.test("new ContainerResolver() rejects a maxEntries that is not a positive integer", () => {
  const source = new FakeCgroups(new Map());
  assert.throws(() => resolver(source, 0), RangeError);
  assert.throws(() => resolver(source, 1.5), RangeError);
});

/**
 * The ring-buffer reader against a real BPF ring: records produced by a BPF program
 * (test/bpf/ring_gen.bpf.c, run with BPF_PROG_TEST_RUN) must arrive in order, intact, across
 * many wrap-arounds, and loss must be counted exactly.
 */
import assert from "node:assert/strict";
import { BpfObject } from "../../ffi/object.ts";
import { kernelTest, objectPath } from "./_kernel.ts";

const NEEDS = { objects: ["test/ring_gen"] };
const RING_SIZE = 16 * 1024;

/** Runs the generator: `count` records from `firstSeq`, payload length seq % sizeMod. Returns failures. */
function generate(obj: BpfObject, count: number, firstSeq: number, sizeMod: number): number {
  let failed = 0;
  for (let done = 0; done < count; done += 512) { // the program writes at most 512 per run
    const args = new Uint32Array([Math.min(512, count - done), firstSeq + done, sizeMod, 0]);
    obj.program("gen").testRun(new Uint8Array(args.buffer));
    failed += args[3];
  }
  return failed;
}

/** The generator object, loaded. */
function loadGenerator(): BpfObject {
  const obj = BpfObject.open(objectPath("test/ring_gen"));
  obj.load();
  return obj;
}

/** Collects (seq, payload-ok) from each record. */
function collector() {
  const seen: number[] = [];
  const corrupt: number[] = [];
  const handler = (view: DataView, offset: number, length: number) => {
    const seq = view.getUint32(offset, true), len = view.getUint32(offset + 4, true);
    if (length !== 8 + len) corrupt.push(seq);
    for (let i = 0; i < len; i++) {
      if (view.getUint8(offset + 8 + i) !== (seq & 0xff)) {
        corrupt.push(seq);
        break;
      }
    }
    seen.push(seq);
  };
  return { seen, corrupt, handler };
}

kernelTest(
  "RingBuffer.drain() delivers every record in order across many wrap-arounds",
  NEEDS,
  () => {
    using obj = loadGenerator();
    const { seen, corrupt, handler } = collector();
    using ring = obj.ringBuffer("events", handler);
    let seq = 0, bytes = 0;
    for (let round = 0; round < 200; round++) {
      const count = 40; // at most 40 * (8 + 8 + 200) bytes: under the 16 KiB ring
      assert.equal(generate(obj, count, seq, 201), 0, `round ${round} overflowed the ring`);
      for (let s = seq; s < seq + count; s++) bytes += (8 + 8 + (s % 201) + 7) & ~7;
      seq += count;
      ring.drain();
    }
    assert.ok(
      bytes > 50 * RING_SIZE,
      `only ${bytes} bytes went through; the test must wrap the ring`,
    );
    assert.equal(seen.length, seq);
    assert.deepEqual(seen, Array.from({ length: seq }, (_, i) => i));
    assert.deepEqual(corrupt, []);
  },
);

kernelTest(
  "RingBuffer keeps what fitted when the ring overflows, and the loss is exact",
  NEEDS,
  () => {
    using obj = loadGenerator();
    const { seen, corrupt, handler } = collector();
    using ring = obj.ringBuffer("events", handler);
    const produced = 2000;
    const failed = generate(obj, produced, 0, 1); // 16-byte records: 2000 do not fit in 16 KiB
    assert.ok(failed > 0, "the ring should have overflowed");
    ring.drain();
    assert.equal(seen.length + failed, produced);
    assert.deepEqual(seen, Array.from({ length: seen.length }, (_, i) => i)); // the first ones, in order
    assert.deepEqual(corrupt, []);
    // After draining, the ring has room again.
    assert.equal(generate(obj, 100, produced, 1), 0);
    ring.drain();
    assert.equal(seen.at(-1), produced + 99);
  },
);

kernelTest(
  "RingBuffer.run() delivers records as they come and stop() drains the rest",
  NEEDS,
  async () => {
    using obj = loadGenerator();
    const { seen, handler } = collector();
    let batches = 0;
    using ring = obj.ringBuffer("events", handler, { onBatchEnd: () => batches++ });
    const running = ring.run();
    generate(obj, 50, 0, 64);
    for (let i = 0; i < 200 && seen.length < 50; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(seen.length, 50, "the running reader should wake on new records");
    generate(obj, 25, 50, 64); // produced just before stop: the final drain must deliver them
    await ring.stop();
    await running;
    assert.deepEqual(seen, Array.from({ length: 75 }, (_, i) => i));
    assert.ok(batches >= 1);
  },
);

kernelTest(
  "RingBuffer.drain() after close() throws instead of touching unmapped memory",
  NEEDS,
  () => {
    using obj = loadGenerator();
    const ring = obj.ringBuffer("events", () => {});
    ring.close();
    ring.close(); // idempotent
    assert.throws(() => ring.drain(), /closed/);
  },
);

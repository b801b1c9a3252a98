/**
 * Splitting a request's operators across workers (`src/runtime/split.ts`), in one thread: the ranges
 * a "helper" and the lead take are driven by hand, and the shared outputs must equal, bit for bit,
 * what the operators give unsplit (`runOpsHere`, the pipeline's own loop). The refusal of a box must
 * be the unsplit refusal (same message and field, the box's index in the whole request), and a stop
 * must stop every range.
 */
import { describe, expect, it } from 'vitest';
import { CancelledError, InvalidInputError } from '../../src/errors.js';
import type { Boxes, FeatureMap, Pooled } from '../../src/ops/index.js';
import { toLayout } from '../../src/ops/index.js';
import { V1_OPERATORS } from '../../src/ops/registry.js';
import { runOpsHere, type OpsParams } from '../../src/core/pipeline.js';
import type { RoiTimings } from '../../src/core/results.js';
import {
  DONE,
  HELPED,
  YIELD,
  rangeCount,
  runRanges,
  SharedArena,
  shareOps,
  sharedPooled,
  splitOps,
  type SplitShare,
} from '../../src/runtime/split.js';
import { randomMap } from '../support/fixtures.js';

const timings = (): RoiTimings => ({ decode: 0, backbone: 0, pool: 0, align: 0, warp: 0 });

/** `K` boxes inside a `w × h` image (some crossing its edge), from a fixed seed. */
function boxesFor(K: number, w: number, h: number): Boxes {
  const data = new Float32Array(5 * K);
  for (let k = 0; k < K; k++) {
    const x1 = ((k * 37) % (w + 20)) - 10;
    const y1 = ((k * 53) % (h + 20)) - 10;
    data.set([0, x1, y1, x1 + 1 + ((k * 11) % (w / 2)), y1 + 1 + ((k * 7) % (h / 2))], 5 * k);
  }
  return { data, count: K };
}

/** Bytes of two outputs equal (NaN-safe, -0 vs 0 told apart). */
function sameBits(a: Pooled | undefined, b: Pooled | undefined): void {
  expect(a?.shape).toEqual(b?.shape);
  const bytes = (p: Pooled | undefined) => Buffer.from((p as Pooled).data.slice().buffer);
  expect(bytes(a).equals(bytes(b))).toBe(true);
}

const ALL: OpsParams['ops'] = ['pool', 'align', 'warp'];
const params = (over: Partial<OpsParams> = {}): OpsParams => ({
  ops: ALL,
  spatialScale: 1 / 4,
  outputSize: [3, 5],
  samplingRatio: 2,
  aligned: true,
  mode: 'avg',
  ...over,
});

/** Runs a share the way two workers might: a helper takes `helperRanges` ranges first, the lead the rest. */
function runShared(share: SplitShare, helperRanges: number, lead = true): void {
  let boxes = 0;
  if (helperRanges > 0) {
    runRanges(share, true, () => {
      // Yield once the helper has started `helperRanges` ranges' worth of boxes (each op counts each box).
      if (++boxes === helperRanges * share.rangeBoxes * share.params.ops.length) {
        Atomics.store(share.control, YIELD, 1);
      }
      return false;
    });
  }
  if (lead) runRanges(share, false);
}

describe('split ranges of boxes', () => {
  const cases: [string, FeatureMap, Partial<OpsParams>][] = [
    ['NCHW, 16 channels, sampling 2', randomMap([1, 16, 12, 16], 3), {}],
    [
      'NHWC, 6 channels (padded lanes), adaptive sampling',
      toLayout(randomMap([1, 6, 12, 16], 4), 'NHWC'),
      { samplingRatio: 0 },
    ],
    ['NCHW, max mode, not aligned', randomMap([1, 8, 12, 16], 5), { mode: 'max', aligned: false }],
    ['NCHW, onnx_max mode', randomMap([1, 8, 12, 16], 6), { mode: 'onnx_max' }],
  ];
  it.each(cases)(
    '%s: every op equals the unsplit run bit for bit, however the ranges fall',
    async (_n, fm, over) => {
      const boxes = boxesFor(300, 64, 48);
      const p = params(over);
      const unsplit = await runOpsHere(fm, boxes, p, timings());
      for (const helperRanges of [0, 1, 3, 8]) {
        const share = shareOps(fm, boxes, p, 2);
        expect(share.ranges).toBe(8);
        runShared(share, helperRanges);
        expect(Atomics.load(share.control, DONE)).toBe(share.ranges);
        expect(Atomics.load(share.control, HELPED)).toBe(helperRanges);
        const split = sharedPooled(share);
        for (const op of ALL) sameBits(split[op], unsplit[op]);
      }
    },
  );

  it('the lead runner: helpers announced by the lead, outputs and timings filled', async () => {
    const fm = randomMap([1, 16, 12, 16], 7);
    const boxes = boxesFor(257, 64, 48);
    const p = params();
    const unsplit = await runOpsHere(fm, boxes, p, timings());
    let announced: SplitShare | undefined;
    // The "helper" starts as soon as it is announced and takes three ranges; the lead takes the rest.
    const run = splitOps((share) => {
      announced = share;
      runShared(share, 3, false);
    }, 2);
    const t = timings();
    const split = await run.run(fm, boxes, p, t);
    run.release();
    expect(Atomics.load((announced as SplitShare).control, HELPED)).toBe(3);
    expect(Atomics.load((announced as SplitShare).control, DONE)).toBe(8);
    for (const op of ALL) sameBits(split[op], unsplit[op]);
    for (const op of ALL) expect(t[op]).toBeGreaterThan(0);
  });

  it('a box the kernels refuse gives the unsplit error (its index in the whole request)', async () => {
    const fm = randomMap([1, 4, 200, 200], 8);
    // Box 150 is 100 cells wide into one output cell: an adaptive grid of 100 > 64.
    const boxes = boxesFor(300, 64, 48);
    boxes.data.set([0, 0, 0, 100, 100], 5 * 150);
    const p = params({ ops: ['align'], spatialScale: 1, outputSize: [1, 1], samplingRatio: 0 });
    const unsplit = await runOpsHere(fm, boxes, p, timings()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(unsplit).toBeInstanceOf(InvalidInputError);
    expect((unsplit as Error).message).toMatch(/^boxes\[150\]/);
    const run = splitOps((share) => runRanges(share, true), 2);
    const split = await run.run(fm, boxes, p, timings()).then(
      () => undefined,
      (e: unknown) => e,
    );
    run.release();
    expect(split).toBeInstanceOf(InvalidInputError);
    expect((split as InvalidInputError).message).toBe((unsplit as InvalidInputError).message);
    expect((split as InvalidInputError).field).toBe((unsplit as InvalidInputError).field);
  });

  it('a stop reaches every range: the helper takes no more, the lead throws CancelledError', async () => {
    const fm = randomMap([1, 8, 12, 16], 9);
    const boxes = boxesFor(300, 64, 48);
    let helperRan = -1;
    let stopped = false;
    const stop = {
      shouldStop: () => stopped,
      check: () => {
        if (stopped) throw new CancelledError();
      },
    };
    const run = splitOps((share) => {
      stopped = true; // the client went away as the helper started
      helperRan = runRanges(share, true, () => stopped).ranges;
    }, 2);
    await expect(run.run(fm, boxes, params(), timings(), stop)).rejects.toBeInstanceOf(CancelledError);
    run.release();
    expect(helperRan).toBe(1); // it took one range, stopped at its first box, and took no other
  });

  it('the kernels write into a given array (a range of a shared output): the same values, no array of their own', () => {
    const fm = randomMap([1, 8, 12, 16], 12);
    const boxes = boxesFor(40, 64, 48);
    const p = { spatialScale: 1 / 4, outputSize: [3, 5] as [number, number], samplingRatio: 2 };
    for (const op of ALL) {
      const run = V1_OPERATORS[op].run;
      const fresh = run(fm, boxes, p);
      const shared = new Float32Array(new SharedArrayBuffer(4 * (fresh.data.length + 30)));
      const into = shared.subarray(10, 10 + fresh.data.length);
      const written = run(fm, boxes, { ...p, into });
      expect(written.data).toBe(into);
      sameBits(written, fresh);
      expect(shared.subarray(0, 10).every((v) => v === 0)).toBe(true); // nothing outside its range
      expect(() => run(fm, boxes, { ...p, into: shared })).toThrow(InvalidInputError);
    }
  });

  it('the arena reuses one shared buffer from request to request (shared memory prompts no collection)', () => {
    const arena = new SharedArena();
    const first = arena.take(4 << 20);
    expect(() => arena.take(1)).toThrow(/in use/);
    arena.release();
    expect(arena.take(3 << 20)).toBe(first); // smaller: the same buffer
    arena.release();
    const larger = arena.take(5 << 20);
    expect(larger).not.toBe(first);
    arena.release();
    expect(arena.take(1 << 20)).not.toBe(larger); // over twice too large: replaced, not pinned
    arena.discard(); // a helper may still write there: never handed out again
    const fresh = arena.take(1 << 20);
    arena.release();
    expect(arena.take(1 << 20)).toBe(fresh);
    arena.release();
    // Two requests through one arena: the second reads none of the first's values.
    const fm = randomMap([1, 8, 12, 16], 13);
    const boxes = boxesFor(100, 64, 48);
    const a = shareOps(fm, boxes, params(), 2, arena);
    runShared(a, 0);
    arena.release();
    const b = shareOps(randomMap([1, 8, 12, 16], 14), boxes, params(), 2, arena);
    expect(b.fm.data.buffer).toBe(a.fm.data.buffer);
    runShared(b, 2);
    arena.release();
  });

  it('cuts K boxes into about four ranges per worker, each of at least 32 boxes', () => {
    expect(rangeCount(1000, 2)).toBe(8);
    expect(rangeCount(1000, 16)).toBe(32);
    expect(rangeCount(64, 4)).toBe(2);
    expect(rangeCount(1, 4)).toBe(1);
  });
});

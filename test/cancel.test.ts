/**
 * The cancel flag (src/cancel.ts) and the kernels' `shouldStop`: a stop request or a passed time limit
 * stops the work at the next box with a CancelledError, and the flag tells how many boxes had started.
 */
import { describe, expect, it } from 'vitest';
import {
  boxesStarted,
  CLIENT_GONE,
  newCancelFlag,
  requestStop,
  RUN,
  stopReason,
  taskStop,
  TIMED_OUT,
} from '../src/cancel.js';
import { CancelledError } from '../src/errors.js';
import { runKernel, type KernelTask } from '../src/oip/kernel-task.js';
import {
  multiScaleRoi,
  multiScaleRotatedRoiAlign,
  psRoiAlign,
  psRoiPool,
  roiAlign,
  roiPool,
  roiWarp,
  rotatedRoiAlign,
  toCanonicalBoxes,
  toRotatedBoxes,
} from '../src/ops/index.js';
import { randomMap } from './support/fixtures.js';

const fm = randomMap([1, 3, 8, 8]);
const boxes = toCanonicalBoxes(
  Array.from({ length: 10 }, (_, k) => [k % 3, 0, 8, 8 - (k % 2)]),
  { format: 'xyxy', batchSize: 1, field: 'boxes' },
);

/** The same boxes turned (10 rows `(b, cx, cy, w, h, angle)`) and a two-level pyramid of `fm`. */
const rotated = toRotatedBoxes(
  Array.from({ length: 10 }, (_, k) => [0, 4, 4, 8 - (k % 3), 6, 15 * k]),
  { batchSize: 1, field: 'boxes' },
);
const pyramid = [fm, randomMap([1, 3, 4, 4], 2)];

describe('kernels stop at the next box', () => {
  const ops = {
    pool: (shouldStop?: () => boolean) => roiPool(fm, boxes, { spatialScale: 1, shouldStop }),
    align: (shouldStop?: () => boolean) => roiAlign(fm, boxes, { spatialScale: 1, shouldStop }),
    warp: (shouldStop?: () => boolean) => roiWarp(fm, boxes, { spatialScale: 1, shouldStop }),
    // The issue 13 kernels (C = 3 splits into 1×1 bins for the ps ones), and the pyramid that runs
    // them level by level (the level rules put the boxes on both levels): each level's kernel checks
    // before each of its boxes.
    ps_align: (shouldStop?: () => boolean) =>
      psRoiAlign(fm, boxes, { spatialScale: 1, outputSize: 1, shouldStop }),
    ps_pool: (shouldStop?: () => boolean) =>
      psRoiPool(fm, boxes, { spatialScale: 1, outputSize: 1, shouldStop }),
    rotated_align: (shouldStop?: () => boolean) =>
      rotatedRoiAlign(fm, rotated, { spatialScale: 1, shouldStop }),
    'multiscale ps_pool': (shouldStop?: () => boolean) =>
      multiScaleRoi(
        'ps_pool',
        pyramid,
        [1, 0.5],
        boxes,
        { outputSize: 1, shouldStop },
        { canonicalBoxSize: 4, canonicalLevel: 0 },
      ).output,
    'multiscale rotated_align': (shouldStop?: () => boolean) =>
      multiScaleRotatedRoiAlign(
        pyramid,
        [1, 0.5],
        rotated,
        { shouldStop },
        { canonicalBoxSize: 3.2, canonicalLevel: 0 },
      ).output,
  };

  it.each(Object.entries(ops))(
    '%s: CancelledError once shouldStop says so, after exactly that box',
    (_op, run) => {
      let calls = 0;
      expect(() => run(() => ++calls === 4)).toThrow(CancelledError);
      expect(calls).toBe(4);
      // Never asked to stop: one check per box, and the same result as without the check.
      calls = 0;
      const out = run(() => (calls++, false));
      expect(calls).toBe(boxes.count);
      expect(out.data).toEqual(run().data);
    },
  );
});

describe('taskStop', () => {
  it('counts boxes, and stops once the HTTP thread asks; the first reason wins', () => {
    const flag = newCancelFlag();
    const stop = taskStop(flag);
    expect(stop.shouldStop()).toBe(false);
    expect(stop.shouldStop()).toBe(false);
    expect(boxesStarted(flag)).toBe(2);
    expect(requestStop(flag, CLIENT_GONE)).toBe(true);
    expect(requestStop(flag, TIMED_OUT)).toBe(false);
    expect(stopReason(flag)).toBe(CLIENT_GONE);
    expect(stop.shouldStop()).toBe(true);
    expect(() => stop.check()).toThrow(CancelledError);
  });

  it('records TIMED_OUT itself once its time is up (a limit of 0 ms: already up)', () => {
    const flag = newCancelFlag();
    const stop = taskStop(flag, -1);
    expect(stopReason(flag)).toBe(RUN);
    expect(() => stop.check()).toThrow(CancelledError);
    expect(stopReason(flag)).toBe(TIMED_OUT);
  });

  it('without a flag never stops', () => {
    const stop = taskStop(undefined, -1);
    expect(stop.shouldStop()).toBe(false);
    expect(() => stop.check()).not.toThrow();
  });
});

describe('/v2 kernel tasks pass shouldStop to their kernels', () => {
  const features = {
    encoding: 'base64' as const,
    shape: [...fm.shape] as [number, number, number, number],
    layout: 'NCHW' as const,
    data: Buffer.from(fm.data.buffer, fm.data.byteOffset, fm.data.byteLength).toString('base64'),
  };
  const tasks: KernelTask[] = [
    { op: 'ps_align', features, boxes, spatialScale: 1, outputSize: [1, 1], samplingRatio: 2 },
    { op: 'ps_pool', features, boxes, spatialScale: 1, outputSize: [1, 1], samplingRatio: 2 },
    {
      op: 'rotated_align',
      features,
      boxes: rotated,
      spatialScale: 1,
      outputSize: [2, 2],
      samplingRatio: 2,
      aligned: true,
      clockwise: false,
    },
    {
      op: 'multiscale_align',
      features: [features],
      boxes,
      spatialScales: [1],
      outputSize: [2, 2],
      samplingRatio: 2,
      aligned: false,
      mapping: {},
    },
  ];
  it.each(tasks.map((t) => [t.op, t] as const))(
    '%s: CancelledError after the box shouldStop stops',
    (_op, task) => {
      let calls = 0;
      expect(() =>
        runKernel(
          task,
          () => undefined,
          () => ++calls === 3,
        ),
      ).toThrow(CancelledError);
      expect(calls).toBe(3);
    },
  );
});

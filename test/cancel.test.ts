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
import { roiAlign, roiPool, roiWarp, toCanonicalBoxes } from '../src/ops/index.js';
import { randomMap } from './support/fixtures.js';

const fm = randomMap([1, 3, 8, 8]);
const boxes = toCanonicalBoxes(
  Array.from({ length: 10 }, (_, k) => [k % 3, 0, 8, 8 - (k % 2)]),
  { format: 'xyxy', batchSize: 1, field: 'boxes' },
);

describe('kernels stop at the next box', () => {
  const ops = {
    pool: (shouldStop?: () => boolean) => roiPool(fm, boxes, { spatialScale: 1, shouldStop }),
    align: (shouldStop?: () => boolean) => roiAlign(fm, boxes, { spatialScale: 1, shouldStop }),
    warp: (shouldStop?: () => boolean) => roiWarp(fm, boxes, { spatialScale: 1, shouldStop }),
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

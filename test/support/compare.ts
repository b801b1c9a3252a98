/** Comparing computed arrays with expected ones (kernels against references, oracles, the API). */
import { expect } from 'vitest';

/** Largest |a[i] - b[i]| (a NaN on either side counts as Infinity); fails on a length mismatch. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/**
 * How far `actual` is from `expected` relative to `expected`'s scale: max |a − e| / max |e|, with the
 * scale itself (check it is not ~0, else any relative bound passes).
 */
export function relativeMaxDiff(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
): { relative: number; scale: number } {
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  return { relative: maxAbsDiff(actual, expected) / scale, scale };
}

/** Index of the first value that differs (bitwise, -0 == 0), or -1; fails on a length mismatch. */
export function firstMismatch(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

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

/** Index of the first value that differs (bitwise, -0 == 0), or -1; fails on a length mismatch. */
export function firstMismatch(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

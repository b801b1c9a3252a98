/**
 * Feature-map checks and layout conversion. Shapes are logical `[N, C, H, W]` whatever the layout.
 */
import { InvalidInputError } from '../errors.js';
import type { FeatureMap, Layout } from './types.js';

/**
 * Checks that `fm.shape` is 4 positive integers, that `fm.layout` is `'NCHW'` or `'NHWC'` and that
 * `fm.data.length` is `N * C * H * W`. Errors name `${field}.shape`, `${field}.layout`, `${field}.data`.
 */
export function assertFeatureShape(fm: FeatureMap, field = 'features'): void {
  const s = fm.shape;
  if (!Array.isArray(s) || s.length !== 4 || !s.every((d) => Number.isInteger(d) && d > 0)) {
    throw new InvalidInputError(
      `${field}.shape must be [N, C, H, W] with positive integers, got ${JSON.stringify(s)}`,
      `${field}.shape`,
      '[N, C, H, W], positive integers',
    );
  }
  if (fm.layout !== 'NCHW' && fm.layout !== 'NHWC') {
    throw new InvalidInputError(
      `${field}.layout must be 'NCHW' or 'NHWC', got ${String(fm.layout)}`,
      `${field}.layout`,
      "'NCHW' or 'NHWC'",
    );
  }
  const size = s[0] * s[1] * s[2] * s[3];
  if (!(fm.data instanceof Float32Array) || fm.data.length !== size) {
    throw new InvalidInputError(
      `${field}.data must hold N*C*H*W = ${size} float32 values, got ${fm.data?.length}`,
      `${field}.data`,
      `${size} float32 values`,
    );
  }
}

/**
 * Refuses NaN and ±Infinity in a user-supplied feature map (the kernels assume finite values: a zero
 * weight times Infinity would be NaN). Names the first bad value by flat index and by `(n, c, y, x)`.
 */
export function assertFiniteFeatures(fm: FeatureMap, field = 'features'): void {
  assertFeatureShape(fm, field);
  const d = fm.data;
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    // `v - v` is 0 for finite v and NaN for NaN or ±Infinity: one test per value.
    if (v - v !== 0) {
      const [, C, H, W] = fm.shape;
      let n: number, c: number, y: number, x: number;
      if (fm.layout === 'NCHW') {
        x = i % W;
        y = Math.floor(i / W) % H;
        c = Math.floor(i / (W * H)) % C;
        n = Math.floor(i / (W * H * C));
      } else {
        c = i % C;
        x = Math.floor(i / C) % W;
        y = Math.floor(i / (C * W)) % H;
        n = Math.floor(i / (C * W * H));
      }
      throw new InvalidInputError(
        `${field}.data[${i}] is ${v} (n=${n}, c=${c}, y=${y}, x=${x}); feature maps must be finite`,
        `${field}.data[${i}]`,
        'a finite number',
      );
    }
  }
}

/** Returns `fm` in `layout`: the same object when it already is, otherwise a transposed copy. */
export function toLayout(fm: FeatureMap, layout: Layout): FeatureMap {
  if (fm.layout === layout) return fm;
  const [N, C, H, W] = fm.shape;
  const src = fm.data;
  const dst = new Float32Array(src.length);
  const HW = H * W;
  for (let n = 0; n < N; n++) {
    const base = n * C * HW;
    if (layout === 'NHWC') {
      // dst[n][p][c] = src[n][c][p], p = y * W + x
      for (let c = 0; c < C; c++) {
        const s0 = base + c * HW;
        for (let p = 0, d = base + c; p < HW; p++, d += C) dst[d] = src[s0 + p];
      }
    } else {
      for (let c = 0; c < C; c++) {
        const d0 = base + c * HW;
        for (let p = 0, s = base + c; p < HW; p++, s += C) dst[d0 + p] = src[s];
      }
    }
  }
  return { data: dst, shape: fm.shape, layout };
}

/**
 * Rendering primitives for the visual diffs: channel reductions of pooled tensors, difference statistics,
 * nearest-upscaled heatmaps and colour bars as raw RGB rasters, and PNG encoding. Pure functions of data;
 * the sheet layout is in `render-sheet.ts`.
 *
 * Shapes are logical: pooled `[K, C, PH, PW]`, feature map `[N, C, H, W]`, whatever `layout` stores.
 */
import sharp, { type Sharp } from 'sharp';
import { colormapLut, colormapIndex, type ColormapName } from './colormap.js';
import type { FeatureMap, Pooled } from '../ops/types.js';

/**
 * An 8-bit RGB raster the pictures are drawn on, row-major `[height, width, 3]` in a Buffer. (Not the
 * backbone's `RgbImage`, `src/backbone/input.ts`: the decoded input image, its pixels in `rgb`.)
 */
export interface Raster {
  data: Buffer;
  width: number;
  height: number;
}

/**
 * Which channel a heatmap shows: a channel index `0 <= c < C`, or a reduction over all channels:
 * `mean`, `meanabs` (mean of absolute values) or `max`.
 */
export type ChannelSelect = number | 'mean' | 'meanabs' | 'max';

/** A 4-D tensor as ops produce/consume it: logical `[A, C, Y, X]`, `data` in `layout` order. */
interface Tensor4 {
  data: Float32Array;
  shape: readonly [number, number, number, number];
  layout: 'NCHW' | 'NHWC';
}

/** Strides `(a, c, y, x)` of a logical `[A, C, Y, X]` tensor stored in `layout`. */
function strides(t: Tensor4): [number, number, number, number] {
  const [, C, Y, X] = t.shape;
  return t.layout === 'NCHW' ? [C * Y * X, Y * X, X, 1] : [Y * X * C, 1, X * C, C];
}

/**
 * Reduces one item `a` of a `[A, C, Y, X]` tensor over channels → `[Y * X]` (row-major).
 * `channel`: an index (that channel), `mean`, `meanabs` (mean of |v|) or `max`.
 */
function reduceItem(t: Tensor4, a: number, channel: ChannelSelect): Float32Array {
  const [, C, Y, X] = t.shape;
  const [sa, sc, sy, sx] = strides(t);
  const out = new Float32Array(Y * X);
  for (let y = 0; y < Y; y++) {
    for (let x = 0; x < X; x++) {
      const base = a * sa + y * sy + x * sx;
      let v: number;
      if (typeof channel === 'number') {
        v = t.data[base + channel * sc];
      } else if (channel === 'max') {
        v = -Infinity;
        for (let c = 0; c < C; c++) v = Math.max(v, t.data[base + c * sc]);
      } else {
        v = 0;
        for (let c = 0; c < C; c++)
          v += channel === 'meanabs' ? Math.abs(t.data[base + c * sc]) : t.data[base + c * sc];
        v = C > 0 ? v / C : 0;
      }
      out[y * X + x] = v;
    }
  }
  return out;
}

/** Pooled output of box `k` reduced over channels: `[K, C, PH, PW]` → `[PH * PW]`. */
export function reducePooled(pooled: Pooled, k: number, channel: ChannelSelect): Float32Array {
  return reduceItem(pooled, k, channel);
}

/** Feature map of batch item `n` reduced over channels: `[N, C, H, W]` → `[H * W]`. */
export function reduceFeatureMap(features: FeatureMap, n: number, channel: ChannelSelect): Float32Array {
  return reduceItem(features, n, channel);
}

/**
 * Per-cell difference map of box `k` between two pooled outputs of equal shape `[K, C, PH, PW]` →
 * `[PH * PW]`: the per-channel absolute difference `|a - b|`, then reduced like the value panels
 * (a channel index → that channel's `|a - b|`; `mean` and `meanabs` → mean over channels of `|a - b|`;
 * `max` → max over channels of `|a - b|`). Reducing *after* the difference means channels whose
 * differences cancel in a mean still show up.
 */
export function reduceDifference(a: Pooled, b: Pooled, k: number, channel: ChannelSelect): Float32Array {
  assertSameShape(a, b);
  const [, C, PH, PW] = a.shape;
  const [aa, ac, ay, ax] = strides(a);
  const [ba, bc, by, bx] = strides(b);
  const out = new Float32Array(PH * PW);
  const channels = typeof channel === 'number' ? [channel] : Array.from({ length: C }, (_, c) => c);
  for (let y = 0; y < PH; y++) {
    for (let x = 0; x < PW; x++) {
      let sum = 0;
      let max = 0;
      for (const c of channels) {
        const d = Math.abs(
          a.data[k * aa + c * ac + y * ay + x * ax] - b.data[k * ba + c * bc + y * by + x * bx],
        );
        sum += d;
        if (d > max) max = d;
      }
      out[y * PW + x] = channel === 'max' ? max : channels.length > 0 ? sum / channels.length : 0;
    }
  }
  return out;
}

function assertSameShape(a: Pooled, b: Pooled): void {
  if (a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`render: pooled shapes differ: [${a.shape.join(', ')}] vs [${b.shape.join(', ')}]`);
  }
}

/** How far apart two ops' outputs are. */
export interface PairStats {
  /** Mean over all values of `|a - b|`. */
  meanAbs: number;
  /** Max over all values of `|a - b|`. */
  maxAbs: number;
  /** `‖a − b‖₂ / ‖a‖₂`; 0 when both are all zeros, `null` when only `a` is (undefined ratio). */
  relL2: number | null;
}

/**
 * Difference statistics between two pooled outputs of equal shape `[K, C, PH, PW]`, over all channels and
 * cells of box `k`, or of all boxes when `k` is omitted. Accumulates in float64.
 */
export function pairStats(a: Pooled, b: Pooled, k?: number): PairStats {
  assertSameShape(a, b);
  const [K, C, PH, PW] = a.shape;
  const [aa, ac, ay, ax] = strides(a);
  const [ba, bc, by, bx] = strides(b);
  const from = k ?? 0;
  const to = k === undefined ? K : k + 1;
  let sumAbs = 0;
  let maxAbs = 0;
  let sumSq = 0;
  let normSq = 0;
  let count = 0;
  for (let i = from; i < to; i++) {
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < PH; y++) {
        for (let x = 0; x < PW; x++) {
          const va = a.data[i * aa + c * ac + y * ay + x * ax];
          const d = va - b.data[i * ba + c * bc + y * by + x * bx];
          sumAbs += Math.abs(d);
          if (Math.abs(d) > maxAbs) maxAbs = Math.abs(d);
          sumSq += d * d;
          normSq += va * va;
          count++;
        }
      }
    }
  }
  const relL2 = normSq > 0 ? Math.sqrt(sumSq / normSq) : sumSq === 0 ? 0 : null;
  return { meanAbs: count > 0 ? sumAbs / count : 0, maxAbs, relL2 };
}

/** `[min, max]` over all finite values of the arrays; `[0, 0]` when there are none. */
export function valueRange(...arrays: Float32Array[]): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (const values of arrays) {
    for (const v of values) {
      if (!Number.isFinite(v)) continue;
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  return min <= max ? [min, max] : [0, 0];
}

/**
 * A `[rows, cols]` grid of values as a heatmap: each value becomes a `cell × cell` block (nearest
 * upscaling, so every output cell stays visible), coloured on the scale `[min, max]` with `colormap`.
 * Result size `cols*cell × rows*cell`.
 */
export function heatmapImage(
  values: Float32Array,
  rows: number,
  cols: number,
  options: { min: number; max: number; cell?: number; colormap?: ColormapName },
): Raster {
  const { min, max, cell = 1, colormap = 'viridis' } = options;
  const lut = colormapLut(colormap);
  const width = cols * cell;
  const height = rows * cell;
  const data = Buffer.alloc(width * height * 3);
  const rowBytes = width * 3;
  // Colour each value once, fill its cell across the first pixel row of the block, then copy that row
  // down the block: a per-pixel colormap lookup made the heatmaps a visible part of a sheet's cost.
  for (let r = 0; r < rows; r++) {
    const first = r * cell * rowBytes;
    for (let c = 0; c < cols; c++) {
      const li = colormapIndex(values[r * cols + c], min, max) * 3;
      let o = first + c * cell * 3;
      for (let i = 0; i < cell; i++, o += 3) {
        data[o] = lut[li];
        data[o + 1] = lut[li + 1];
        data[o + 2] = lut[li + 2];
      }
    }
    for (let i = 1; i < cell; i++) data.copy(data, first + i * rowBytes, first, first + rowBytes);
  }
  return { data, width, height };
}

/** A vertical colour bar `width × height`, high end at the top. */
export function colorbarImage(width: number, height: number, colormap: ColormapName = 'viridis'): Raster {
  const lut = colormapLut(colormap);
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    const li = colormapIndex(height - 1 - y, 0, Math.max(1, height - 1)) * 3;
    for (let o = y * width * 3; o < (y + 1) * width * 3; o += 3) {
      data[o] = lut[li];
      data[o + 1] = lut[li + 1];
      data[o + 2] = lut[li + 2];
    }
  }
  return { data, width, height };
}

/** sharp input options for a raw RGB raster. */
export function rawInput(image: Raster): { raw: { width: number; height: number; channels: 3 } } {
  return { raw: { width: image.width, height: image.height, channels: 3 } };
}

/** PNG bytes of an RGB raster. */
export async function toPng(image: Raster): Promise<Buffer> {
  return sharp(image.data, rawInput(image)).png({ compressionLevel: 6 }).toBuffer();
}

/** Decodes a sharp pipeline's output to an RGB raster (alpha flattened onto white). */
export async function toRgb(pipeline: Sharp): Promise<Raster> {
  const { data, info } = await pipeline
    .flatten({ background: '#ffffff' })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

/** Short human number: 3 significant digits, exponent outside `[1e-3, 1e4)`. */
export function formatNumber(value: number): string {
  if (value === 0) return '0';
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1e4 || abs < 1e-3) return value.toExponential(2);
  return String(Number(value.toPrecision(3)));
}

/**
 * Box formats, validation and scaling: the one place where user boxes become canonical `[K, 5]` rows
 * `(b, x1, y1, x2, y2)`. Validate once here; the kernels only re-check the batch index against the map.
 */
import { InvalidInputError } from '../errors.js';
import type { Box, Boxes } from './types.js';

/** The accepted box formats, in the order the API lists them. */
export const BOX_FORMATS = ['xyxy', 'xywh', 'cxcywh', 'yxyx'] as const;

/**
 * Accepted box formats at the edge:
 * - `xyxy`: `(x1, y1, x2, y2)`, corners (canonical);
 * - `xywh`: `(x, y, w, h)`, top-left corner and size;
 * - `cxcywh`: `(cx, cy, w, h)`, centre and size;
 * - `yxyx`: `(y1, x1, y2, x2)`, corners, y first: TensorFlow's `crop_and_resize` / Object Detection API order.
 */
export type BoxFormat = (typeof BOX_FORMATS)[number];

/**
 * C's `round`: half away from zero (`cRound(2.5) = 3`, `cRound(-2.5) = -3`). `Math.round` rounds
 * half up (`Math.round(-2.5) = -2`), which is not what Caffe, torchvision or ONNX Runtime do.
 */
export function cRound(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}

export interface CanonicalBoxOptions {
  /** Format of the 4 coordinates of each row. Default `'xyxy'`. */
  format?: BoxFormat;
  /** `N` of the feature map: batch indices must satisfy `0 <= b < batchSize`. */
  batchSize: number;
  /** Field name used in error messages. Default `'boxes'`. */
  field?: string;
}

const FORMAT_NAMES: Record<BoxFormat, readonly string[]> = {
  xyxy: ['x1', 'y1', 'x2', 'y2'],
  xywh: ['x', 'y', 'w', 'h'],
  cxcywh: ['cx', 'cy', 'w', 'h'],
  yxyx: ['y1', 'x1', 'y2', 'x2'],
};

/** Converts the 4 coordinates of one row to `xyxy` and writes `(b, x1, y1, x2, y2)` at `data[5k]`. */
function writeRow(
  data: Float32Array,
  k: number,
  b: number,
  coords: readonly number[],
  start: number,
  format: BoxFormat,
  field: string,
): void {
  const names = FORMAT_NAMES[format];
  for (let j = 0; j < 4; j++) {
    const v = coords[start + j];
    if (typeof v !== 'number' || !Number.isFinite(v) || !Number.isFinite(Math.fround(v))) {
      throw new InvalidInputError(
        `${field}[${start + j}] (${names[j]}) must be a finite number that fits float32, got ${String(v)}`,
        `${field}[${start + j}]`,
        'a finite number within float32 range (|v| < 3.4e38)',
      );
    }
  }
  const a = coords[start];
  const c = coords[start + 1];
  const d = coords[start + 2];
  const e = coords[start + 3];
  let x1: number, y1: number, x2: number, y2: number;
  if (format === 'xyxy' || format === 'yxyx') {
    const yFirst = format === 'yxyx';
    [x1, y1, x2, y2] = yFirst ? [c, a, e, d] : [a, c, d, e];
    // Index of x2 / y2 within the row, to name the value the user wrote.
    const [ix2, iy2] = yFirst ? [start + 3, start + 2] : [start + 2, start + 3];
    if (x2 < x1) {
      throw new InvalidInputError(
        `${field}: x2 (${x2}) is smaller than x1 (${x1})`,
        `${field}[${ix2}]`,
        'x2 >= x1',
      );
    }
    if (y2 < y1) {
      throw new InvalidInputError(
        `${field}: y2 (${y2}) is smaller than y1 (${y1})`,
        `${field}[${iy2}]`,
        'y2 >= y1',
      );
    }
  } else {
    if (d < 0) {
      throw new InvalidInputError(
        `${field}: width ${d} is negative`,
        `${field}[${start + 2}]`,
        'a width >= 0',
      );
    }
    if (e < 0) {
      throw new InvalidInputError(
        `${field}: height ${e} is negative`,
        `${field}[${start + 3}]`,
        'a height >= 0',
      );
    }
    if (format === 'xywh') {
      [x1, y1, x2, y2] = [a, c, a + d, c + e];
    } else {
      [x1, y1, x2, y2] = [a - d / 2, c - e / 2, a + d / 2, c + e / 2];
    }
    if (![x1, y1, x2, y2].every((v) => Number.isFinite(Math.fround(v)))) {
      throw new InvalidInputError(
        `${field}: the box corners overflow float32`,
        field,
        'corners within float32 range (|v| < 3.4e38)',
      );
    }
  }
  const o = 5 * k;
  data[o] = b;
  data[o + 1] = x1;
  data[o + 2] = y1;
  data[o + 3] = x2;
  data[o + 4] = y2;
}

/**
 * Checks a box's batch index (an integer `0 <= b < batchSize`) and returns it; the error names `field`.
 * `batchSize` Infinity when N is not known yet: only `b >= 0`, an integer, is checked (N comes later).
 * Shared by the axis-aligned and the rotated box checks.
 */
export function checkBatchIndex(b: unknown, batchSize: number, field: string): number {
  // `batchSize` Infinity: N is not known yet (a feature map checked before it is decoded).
  if (!Number.isFinite(batchSize) && (typeof b !== 'number' || !Number.isInteger(b) || b < 0)) {
    throw new InvalidInputError(
      `${field} is ${String(b)}, not a batch index (an integer >= 0, the image the box is on)`,
      field,
      'an integer batch index b >= 0',
    );
  }
  if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b >= batchSize) {
    throw new InvalidInputError(
      // "N" is the feature map's batch or the number of images sent: say both, the box names neither.
      `${field} is ${String(b)}, but the batch has N = ${batchSize} (the feature map's N, or the number of ` +
        `images sent): use 0 to ${batchSize - 1}`,
      field,
      `an integer batch index 0 <= b < ${batchSize}`,
    );
  }
  return b;
}

/**
 * Converts box rows to canonical `Boxes` (`[K, 5]` rows `(b, x1, y1, x2, y2)`, float32).
 *
 * Each row is either 4 numbers (batch index 0) or 5 numbers with the batch index first. Rows are
 * checked once here: finite numbers within float32 range, `x2 >= x1`, `y2 >= y1` (widths and heights
 * `>= 0` for `xywh` / `cxcywh`), integer `0 <= b < batchSize`. Errors name the row, e.g. `boxes[3]`, and
 * the value, e.g. `boxes[3][2]`. An empty list is valid (`count = 0`).
 *
 * @example toCanonicalBoxes([[10, 20, 30, 40]], { format: 'xywh', batchSize: 1 }) // → (0, 10, 20, 40, 60)
 */
export function toCanonicalBoxes(rows: readonly (readonly number[])[], opts: CanonicalBoxOptions): Boxes {
  const format = opts.format ?? 'xyxy';
  const field = opts.field ?? 'boxes';
  if (!Array.isArray(rows)) {
    throw new InvalidInputError(
      `${field} must be an array of box rows`,
      field,
      'an array of [4] or [5] number rows',
    );
  }
  const data = new Float32Array(rows.length * 5);
  for (let k = 0; k < rows.length; k++) {
    const row = rows[k];
    const rowField = `${field}[${k}]`;
    if (!Array.isArray(row) || (row.length !== 4 && row.length !== 5)) {
      throw new InvalidInputError(
        `${rowField} must have 4 numbers (${FORMAT_NAMES[format].join(', ')}) or 5 (b, ${FORMAT_NAMES[format].join(', ')})`,
        rowField,
        `4 or 5 numbers`,
      );
    }
    const hasBatch = row.length === 5;
    const b = hasBatch ? checkBatchIndex(row[0], opts.batchSize, `${rowField}[0]`) : 0;
    if (!hasBatch) checkBatchIndex(0, opts.batchSize, `${rowField}`);
    writeRow(data, k, b, row, hasBatch ? 1 : 0, format, rowField);
  }
  return { data, count: rows.length };
}

/**
 * Turns normalized boxes (coordinates as fractions of a `width × height` frame) into pixels: x × width,
 * y × height, batch indices kept. The product is rounded to float32, as a float32
 * `boxes * [W, H, W, H]` in PyTorch or NumPy does (the fractions are float32 already, so the result is
 * the correctly rounded float32 product of the two).
 *
 * @example denormalizeBoxes(toCanonicalBoxes([[0.25, 0.5, 0.75, 1]], { batchSize: 1 }), 640, 480)
 *   // → (0, 160, 240, 480, 480)
 */
export function denormalizeBoxes(boxes: Boxes, width: number, height: number): Boxes {
  return scaleBoxes(boxes, width, height);
}

/**
 * Converts per-image box lists to canonical `Boxes`: list `i` holds the 4-number rows of image `i`
 * (batch index `i`). Same validation as `toCanonicalBoxes`; errors name e.g. `boxes[1][3][2]`.
 */
export function boxesFromPerImage(
  lists: readonly (readonly (readonly number[])[])[],
  opts: { format?: BoxFormat; field?: string } = {},
): Boxes {
  const format = opts.format ?? 'xyxy';
  const field = opts.field ?? 'boxes';
  let total = 0;
  for (let i = 0; i < lists.length; i++) {
    if (!Array.isArray(lists[i])) {
      throw new InvalidInputError(
        `${field}[${i}] must be a list of boxes`,
        `${field}[${i}]`,
        'an array of box rows',
      );
    }
    total += lists[i].length;
  }
  const data = new Float32Array(total * 5);
  let k = 0;
  for (let i = 0; i < lists.length; i++) {
    for (let j = 0; j < lists[i].length; j++) {
      const row = lists[i][j];
      const rowField = `${field}[${i}][${j}]`;
      if (!Array.isArray(row) || row.length !== 4) {
        throw new InvalidInputError(
          `${rowField} must have 4 numbers (${FORMAT_NAMES[format].join(', ')})`,
          rowField,
          '4 numbers',
        );
      }
      writeRow(data, k++, i, row, 0, format, rowField);
    }
  }
  return { data, count: total };
}

/**
 * Scales box coordinates by `factorX` on x and `factorY` on y (e.g. after resizing the image; the two
 * differ when each side was rounded to whole pixels on its own). Batch indices are kept. Coordinates
 * are rounded to float32 like every `Boxes`.
 */
export function scaleBoxes(boxes: Boxes, factorX: number, factorY: number = factorX): Boxes {
  for (const [factor, name] of [
    [factorX, 'scaleX'],
    [factorY, 'scaleY'],
  ] as const) {
    if (!Number.isFinite(factor) || factor <= 0) {
      throw new InvalidInputError(
        `scale factor ${name} must be a finite number > 0, got ${factor}`,
        'scale',
        'a number > 0',
      );
    }
  }
  const data = new Float32Array(boxes.count * 5);
  for (let k = 0; k < boxes.count; k++) {
    const o = 5 * k;
    data[o] = boxes.data[o];
    data[o + 1] = boxes.data[o + 1] * factorX;
    data[o + 2] = boxes.data[o + 2] * factorY;
    data[o + 3] = boxes.data[o + 3] * factorX;
    data[o + 4] = boxes.data[o + 4] * factorY;
  }
  return { data, count: boxes.count };
}

/** Largest finite float32, `(2 - 2^-23) · 2^127 ≈ 3.4028235e38`. */
export const FLOAT32_MAX = 3.4028234663852886e38;

const COORD_NAMES = ['b', 'x1', 'y1', 'x2', 'y2'] as const;

/** A number for a message: 7 significant digits (float32 holds ~7.2), so a float32 `1e36` reads `1e+36`. */
const short = (v: number): string => String(Number(v.toPrecision(7)));

/**
 * Checks that every box corner times `spatialScale` (the feature coordinate, computed in float32 by
 * all three operators) stays finite. A finite box times a large scale can overflow float32; the
 * kernels would then read Infinity/NaN geometry, so refuse it and say which product overflowed (not
 * "the box is Infinity": the box itself is fine). The error names the row (`boxes[k]`) and the corner
 * (`x2`), not a column index: rows may or may not start with a batch index, and `xywh` / `cxcywh`
 * corners are computed, so a canonical column index would point at the wrong number of the request.
 *
 * @param spatialScale already float32-rounded (`resolveSpatialScale`).
 * @throws InvalidInputError naming `boxes[k]`, the corner and its value, `spatialScale` and the bound.
 */
export function assertScaledBoxes(boxes: Boxes, spatialScale: number, field = 'boxes'): void {
  const d = boxes.data;
  const s = Math.fround(spatialScale);
  for (let k = 0; k < boxes.count; k++) {
    for (let j = 1; j < 5; j++) {
      const v = d[5 * k + j];
      if (!Number.isFinite(Math.fround(Math.fround(v) * s))) {
        const bound = short(FLOAT32_MAX);
        throw new InvalidInputError(
          `${field}[${k}]: ${COORD_NAMES[j]} × spatialScale = ${short(v)} × ${short(s)} = ${short(v * s)} ` +
            `overflows float32 (feature coordinates must stay within ±${bound}); use a smaller spatialScale`,
          `${field}[${k}]`,
          `box corners × spatialScale within ±${bound} (float32)`,
        );
      }
    }
  }
}

/** Row `k` of `boxes` as an object. */
export function boxAt(boxes: Boxes, k: number): Box {
  const o = 5 * k;
  const d = boxes.data;
  return { b: d[o], x1: d[o + 1], y1: d[o + 2], x2: d[o + 3], y2: d[o + 4] };
}

/**
 * Checks `boxes` against a feature map with `batchSize` images (the kernels call this: `Boxes` can be
 * built by hand). Names the first bad row.
 */
export function assertBoxes(boxes: Boxes, batchSize: number, field = 'boxes'): void {
  if (!Number.isInteger(boxes.count) || boxes.count < 0 || boxes.data.length < boxes.count * 5) {
    throw new InvalidInputError(
      `${field} has count ${boxes.count} but ${boxes.data.length} values`,
      field,
      'count * 5 values (b, x1, y1, x2, y2)',
    );
  }
  const d = boxes.data;
  for (let k = 0; k < boxes.count; k++) {
    const o = 5 * k;
    checkBatchIndex(d[o], batchSize, `${field}[${k}][0]`);
    for (let j = 1; j < 5; j++) {
      if (!Number.isFinite(d[o + j])) {
        throw new InvalidInputError(
          `${field}[${k}][${j}] is ${d[o + j]}`,
          `${field}[${k}][${j}]`,
          'a finite number',
        );
      }
    }
    if (d[o + 3] < d[o + 1] || d[o + 4] < d[o + 2]) {
      throw new InvalidInputError(
        `${field}[${k}] is not ordered: (${d[o + 1]}, ${d[o + 2]}, ${d[o + 3]}, ${d[o + 4]})`,
        `${field}[${k}]`,
        'x2 >= x1 and y2 >= y1',
      );
    }
  }
}

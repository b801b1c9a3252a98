/**
 * Shared types of the operator core. Shapes are always written in the logical NCHW order
 * (`[N, C, H, W]` in, `[K, C, PH, PW]` out) whatever the memory layout.
 */

/** Memory layout of a 4-D tensor: channels-first (torchvision/ONNX) or channels-last (TF). */
export type Layout = 'NCHW' | 'NHWC';

/** A float32 feature map. `shape` is logical `[N, C, H, W]`; `data` is in `layout` order. */
export interface FeatureMap {
  data: Float32Array;
  shape: readonly [number, number, number, number];
  layout: Layout;
}

/**
 * Canonical boxes: `count` rows of `(b, x1, y1, x2, y2)`, row-major `[K, 5]`, absolute input-image
 * pixels, `x2 >= x1`, `y2 >= y1`, `0 <= b < N`. Float32 like the peers' RoI tensors, so that
 * scaling by `spatialScale` rounds exactly as theirs does.
 */
export interface Boxes {
  data: Float32Array;
  count: number;
}

/** A pooled output, logical shape `[K, C, PH, PW]`, `data` in `layout` order. */
export interface Pooled {
  data: Float32Array;
  shape: [number, number, number, number];
  layout: Layout;
}

/** How RoI Align / RoI Warp reduce the samples of one bin. See `roi_align.ts`. */
export type AlignMode = 'avg' | 'max' | 'onnx_max';

/** A half-open axis-aligned rectangle `[x1, x2) × [y1, y2)` in input-image pixels. */
export interface Rect {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** One canonical box row, as returned by `boxAt`. */
export interface Box extends Rect {
  /** Batch index into the feature map, `0 <= b < N`. */
  b: number;
}

/**
 * What the pipelines (`./pipeline.ts`) produce, structured-cloneable so that results cross the worker
 * boundary (their buffers are transferred): the RoI result, the features result, their stage timings,
 * and the context the worker hands a pipeline.
 */
import type { Backbone } from '../backbone/index.js';
import type { DecodedImage } from '../imaging/decode.js';
import type { BoxCoverage } from '../ops/coverage.js';
import type { RotatedBoxCoverage } from '../ops/coverage-rotated.js';
import { ROI_OPS, type ComparedOp, type RoiOp } from '../ops/registry.js';
import type { Boxes, FeatureMap, Pooled } from '../ops/types.js';
import type { RoiWarning } from '../warnings.js';
import type { RoiLimits, RoiParams } from './task.js';

/** Stages timed by the pipeline and the encoders (the `Server-Timing` names, the metrics' `stage`). */
export const STAGES: readonly Stage[] = ['decode', 'backbone', ...ROI_OPS, 'encode'];
/** `decode`, `backbone`, one per `/v1` operator (the registry's names), `encode`. */
export type Stage = 'decode' | 'backbone' | RoiOp | 'encode';

/**
 * Milliseconds per stage: RoI Pool, Align and Warp always (0 when they did not run), the other `/v1`
 * operators (ps_align, ps_pool, rotated_align) when they ran.
 */
export type RoiTimings = {
  decode: number;
  backbone: number;
  /** Wait for a worker, set by the pool (`src/runtime/pool.ts`) on the way back; never by the pipeline. */
  queue?: number;
} & Record<ComparedOp, number> &
  Partial<Record<RoiOp, number>>;

/**
 * The decoded image, when the input was one: {@link DecodedImage}'s sizes, scales and format without its
 * pixels (one declaration of those fields, not two to keep in step). Coordinates of the ops are in
 * `width × height`, the size after the optional `MAX_IMAGE_SIDE` resize.
 */
export type ImageInfo = Omit<DecodedImage, 'rgb'>;

/** Where the feature map came from and how it maps onto the image. */
export interface FeatureMapInfo {
  /** Logical `[N, C, H, W]`. */
  shape: [number, number, number, number];
  /** Backbone stride in pixels; `1 / spatialScale` for user features. */
  stride: number;
  /** Feature cells per (resized) image pixel, as used by the operators (float32-rounded by them). */
  spatialScale: number;
  /** `input` for user features, else the backbone name. */
  source: 'input' | 'backbone';
  backbone: string | null;
  /** What ran the backbone: the tfjs backend (`tensorflow`, `wasm`, `cpu`) or `onnxruntime`; null for user features. */
  backend: string | null;
  /**
   * A pyramid (a list of maps, or `pyramid: true`): every level, finest first (`shape`, `stride` and
   * `spatialScale` above are the first's). Absent with one map.
   */
  levels?: { level: number; shape: [number, number, number, number]; stride: number; spatialScale: number }[];
}

/** Everything one RoI request produces (structured-cloneable; its buffers are transferred). */
export interface RoiResult {
  /** Parameters used, defaults filled in; `spatialScale` resolved (1/stride for images). */
  params: RoiParams & { spatialScale: number };
  /** null for features input; with `images`, the first image. */
  image: ImageInfo | null;
  /** With `images`: each image, in order (`image` is the first). */
  images?: ImageInfo[];
  /** The decoded RGB pixels `[height, width, 3]` (HWC) of the resized image; only if `task.includeImage`. */
  rgb: Uint8Array | null;
  /**
   * The feature map the operators read, `[N, C, H, W]` in its own layout; only if `task.includeImage`
   * (the diff pictures draw it as a heatmap).
   */
  features?: FeatureMap;
  featureMap: FeatureMapInfo;
  /** Canonical boxes `[K, 5]` in input-image pixels (before any resize); normalized boxes × the frame. */
  boxes: Boxes;
  /** The boxes the operators ran on: x × `image.scaleX`, y × `image.scaleY` (the same object when both are 1). */
  opBoxes: Boxes;
  /** One output per requested op, `[K, C, PH, PW]`, NCHW. */
  outputs: Partial<Record<RoiOp, Pooled>>;
  /** One entry per box, in the operators' frame (resized image pixels); rotated boxes' have `rotated`. */
  coverage: (BoxCoverage | RotatedBoxCoverage)[];
  /** With a pyramid: the level `k` (stride `2^k`) each box was pooled from; null with one map. */
  levels?: number[] | null;
  /** Non-fatal warnings: the task's, then those about the boxes (see `src/warnings.ts`). */
  warnings: RoiWarning[];
  timings: RoiTimings;
}

/** Result of `POST /v1/features`. */
export interface FeaturesResult {
  image: ImageInfo;
  featureMap: FeatureMapInfo;
  /** `[1, C, H, W]` in NCHW order. */
  features: FeatureMap;
  timings: Pick<RoiTimings, 'decode' | 'backbone'>;
}

/** What the worker hands the pipeline: its backbone (loaded lazily) and the limits. */
export interface PipelineContext {
  /** Resolves once the worker's backbone is loaded and warmed; rejects if it failed to load. */
  backbone(): Promise<Backbone>;
  /** tfjs backend name in this worker. */
  backend(): string | null;
  limits: RoiLimits;
}

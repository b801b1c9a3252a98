/**
 * The typed task of the RoI work, known to every caller (HTTP routes, the `/v2` handler, the CLI) and to
 * the worker: the input as a caller gives it ({@link RoiInput}), the checked task that travels to the
 * worker ({@link RoiTask}), its parameters and the limits it is checked against. No HTTP here: the
 * routes turn their bodies into a {@link RoiInput} (`routes/v1/schemas/request.ts`), `/v2` builds its
 * tasks from typed values (`src/oip/models.ts`).
 */
import type { Config } from '../config.js';
import { BOX_FORMATS } from '../ops/boxes.js';
import type { LevelMapping } from '../ops/multiscale.js';
import type { RotatedBoxes } from '../ops/rotated_roi_align.js';
import type { RoiOp } from '../ops/registry.js';
import type { AlignMode, Boxes, FeatureMap, Layout } from '../ops/types.js';
import type { RoiWarning } from '../warnings.js';

export type { RoiOp };

/** `boxFormat` of `/v1`: the upright formats, or `cxcywha` for rotated boxes (cx, cy, w, h, angle). */
export const ROI_BOX_FORMATS = [...BOX_FORMATS, 'cxcywha'] as const;
export type RoiBoxFormat = (typeof ROI_BOX_FORMATS)[number];

/** The most pyramid levels one request may send (`/v1` `features`, `/v2` `features_0` … `features_7`). */
export const MAX_LEVELS = 8;
/** The most images one request may send (`/v1` `images`). */
export const MAX_IMAGES = 8;

/**
 * One RoI request as its caller has it, defaults filled in, nothing decoded: what {@link prepareRoi}
 * (`src/core/prepare.ts`) checks and turns into a {@link RoiTask}. Exactly one of `image` and
 * `features`. Errors name these fields as `/v1` spells them (`image`, `boxes`, `spatialScale`).
 */
export interface RoiInput {
  /** An encoded image: bytes (a file), or base64 text (JSON). */
  image: Uint8Array | string | undefined;
  /** Several encoded images (instead of `image`): a box's batch index picks its image. */
  images?: readonly (Uint8Array | string)[];
  /** A feature map as sent (base64 with its stored shape, or `.npy` bytes); a list: a pyramid, finest first. */
  features: FeaturesInput | readonly FeaturesInput[] | undefined;
  /**
   * Rows of 4 numbers in `boxFormat`, or 5 with the batch index first; `cxcywha`: 5 (cx, cy, w, h, angle)
   * or 6 with the batch index first.
   */
  boxes: readonly (readonly number[])[];
  boxFormat: RoiBoxFormat;
  /** Rotated boxes: the angle turns clockwise (mmcv's flag). Default false. */
  clockwise?: boolean;
  /** With a pyramid: how boxes pick their level. Default torchvision's rule, 224, 4. */
  levelMapping?: LevelMapping;
  /** With `image`: pool from the backbone's pyramid. Default false. */
  pyramid?: boolean;
  /** Coordinates are fractions of the frame. */
  normalized: boolean;
  /** Operators to run (duplicates ignored; run in the canonical order). */
  ops: readonly RoiOp[];
  /** `PH = PW`, or `[PH, PW]`. */
  outputSize: number | readonly [number, number];
  samplingRatio: number;
  aligned: boolean;
  mode: AlignMode;
  /** Required with `features` (a list with a list of maps), absent with `image` (the backbone sets 1 / stride). */
  spatialScale: number | readonly number[] | undefined;
  /** Longest image side after resizing (capped by `MAX_IMAGE_SIDE`); only with `image`. */
  maxSide: number | undefined;
  /** `[width, height]` of the image the features came from; only with `features`. */
  imageSize: readonly [number, number] | undefined;
}

/**
 * The defaults of a RoI request's optional parameters, one place for every caller that fills them in:
 * `/v1`'s schemas (`routes/v1/schemas/request.ts`) and the CLI (`src/cli/roi.ts`). The default `ops`
 * is `COMPARED_OPS` (`src/ops/registry.ts`).
 */
export const ROI_DEFAULTS = {
  boxFormat: 'xyxy',
  clockwise: false,
  pyramid: false,
  normalized: false,
  outputSize: 7,
  samplingRatio: 2,
  aligned: true,
  mode: 'avg',
  /** Memory order of a feature map. */
  layout: 'NCHW',
} as const satisfies Partial<Record<keyof RoiInput, unknown>> & { layout: Layout };

/** Parameters actually used, all defaults filled in (echoed in responses). */
export interface RoiParams {
  ops: RoiOp[];
  boxFormat: RoiBoxFormat;
  /** Rotated boxes: the angle turns clockwise. Default false. */
  clockwise?: boolean;
  /** With a pyramid (a list of maps, or `pyramid`): the level rule. */
  levelMapping?: LevelMapping;
  /** With `image`: pool from the backbone's pyramid. Default false. */
  pyramid?: boolean;
  /** A pyramid of maps as sent: one scale per map, finest first (`spatialScale` is then the first). */
  spatialScales?: number[];
  /** Boxes are fractions of the frame; the pipeline turns them into pixels once the frame is known. */
  normalized: boolean;
  /** `[PH, PW]`. */
  outputSize: [number, number];
  samplingRatio: number;
  aligned: boolean;
  mode: AlignMode;
  /** Given with `features`; with `image` the worker fills in 1 / stride. */
  spatialScale: number | undefined;
  /** `[width, height]`, only with `features`. */
  imageSize: [number, number] | undefined;
  /**
   * Longest image side after resizing: the request's `maxSide` capped by `MAX_IMAGE_SIDE`, or the cap
   * alone; undefined when neither is set, and with `features`.
   */
  maxSide: number | undefined;
}

/** Limits a {@link RoiTask} is checked against (from {@link Config}). */
export interface RoiLimits {
  maxBoxes: number;
  maxOutputValues: number;
  maxOutputSide: number;
  maxSamplingGrid: number;
  /** `MAX_WORK`: the work budget of one request (`src/core/work-budget.ts`). */
  maxWork: number;
  maxImagePixels: number;
  maxImageSide: number | undefined;
}

/**
 * A feature map as the client sent it, decoded and checked in the worker (`decodeRoiTask`,
 * `src/core/decode-task.ts`): base64 text from JSON, with its stored `shape`; or a multipart `.npy` file's bytes.
 */
export type FeaturesInput =
  | {
      encoding: 'base64';
      /** As stored, in `layout` order (see {@link logicalShape}). */
      shape: [number, number, number, number];
      layout: Layout;
      data: string;
    }
  | { encoding: 'npy'; bytes: Uint8Array; layout: Layout };

/**
 * A unit of work for the pool, structured-cloneable (its buffers are transferred, not copied).
 * Exactly one of `image` and `features` is set. The inputs travel as they were sent: base64
 * decoding, `.npy` parsing and the finiteness check of a feature map grow with the body and run in
 * the worker, never on the HTTP thread.
 */
export interface RoiTask {
  /** The encoded image: a file part's bytes, or base64 text from JSON (decoded in the worker). */
  image: Uint8Array | string | undefined;
  /** Several encoded images (`images`), each run through the backbone on its own; boxes' `b` picks one. */
  images?: (Uint8Array | string)[];
  /** The user's feature map as sent (decoded and checked in the worker); a pyramid's finest level. */
  features: FeaturesInput | undefined;
  /** A pyramid as sent: every level, finest first (`features` is the first). */
  levelFeatures?: FeaturesInput[];
  /** Rotated boxes (`boxFormat: cxcywha`) as sent; `boxes` are then their upright bounding boxes. */
  rotated?: RotatedBoxes;
  /**
   * Canonical `[K, 5]` boxes in input-image pixels (before any resize); with `params.normalized`, in
   * fractions of the frame (the pipeline converts them once it knows the image size). With a feature
   * map, the batch indices are checked against its `N` in the worker, once it is decoded.
   */
  boxes: Boxes;
  params: RoiParams;
  /** Return the decoded (and resized) RGB image in the result (the diff pictures need it). */
  includeImage: boolean;
  /** Warnings found while preparing (the pipeline adds those that need the image or the outputs). */
  warnings: RoiWarning[];
}

/** A {@link RoiTask} with its inputs decoded and checked: what the pipeline runs (in the worker). */
export interface DecodedRoiTask extends Omit<RoiTask, 'image' | 'images' | 'features' | 'levelFeatures'> {
  /** Encoded image bytes (decoded by sharp in the pipeline). */
  image: Uint8Array | undefined;
  /** Several images' bytes (`images`). */
  images?: Uint8Array[];
  /** A user feature map, checked finite and consistent with its shape. */
  features: FeatureMap | undefined;
  /** A pyramid's maps, finest first, each checked like `features` (the first is `features`). */
  levelFeatures?: FeatureMap[];
}

/**
 * The logical `[N, C, H, W]` of a task's feature map when it is known without decoding (JSON
 * features carry their shape; a `.npy` file's is in its header, read in the worker): undefined otherwise.
 */
export function knownFeatureShape(task: RoiTask): [number, number, number, number] | undefined {
  const f = task.features;
  return f?.encoding === 'base64' ? logicalShape(f.shape, f.layout) : undefined;
}

/**
 * The channel count the operators will see, when known before any work: the feature map's (see
 * {@link knownFeatureShape}; a pyramid's levels all have the first's), or for an image the loaded
 * backbone's output channels, its pyramid's with `pyramid: true` (the built-in pyramid has 64, the
 * net 256); undefined otherwise. Routes use it to refuse a request early (a channel index, an array
 * encoding too large). The position-sensitive ops output fewer (`outputValueCount` counts them).
 */
export function knownChannels(
  task: RoiTask,
  backbone: { outputChannels: number; pyramid?: { channels: number } } | undefined,
): number | undefined {
  if (task.features) return knownFeatureShape(task)?.[1];
  if (!backbone) return undefined;
  if (task.params.pyramid) return backbone.pyramid?.channels;
  return backbone.outputChannels;
}

/** Picks the {@link RoiLimits} out of a {@link Config}. */
export function limitsFrom(config: Config): RoiLimits {
  return {
    maxBoxes: config.maxBoxes,
    maxOutputValues: config.maxOutputValues,
    maxOutputSide: config.maxOutputSide,
    maxSamplingGrid: config.maxSamplingGrid,
    maxWork: config.maxWork,
    maxImagePixels: config.maxImagePixels,
    maxImageSide: config.maxImageSide,
  };
}

/**
 * The logical `[N, C, H, W]` of an array stored with `shape` in `layout` order: NCHW as is, NHWC
 * `[N, H, W, C]` → `[N, C, H, W]`.
 */
export function logicalShape(
  shape: readonly [number, number, number, number],
  layout: Layout,
): [number, number, number, number] {
  const [n, a, b, c] = shape;
  return layout === 'NHWC' ? [n, c, a, b] : [n, a, b, c];
}

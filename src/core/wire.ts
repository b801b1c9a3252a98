/**
 * The JSON bodies the core's encoders write (`./encode.ts`, `src/imaging/diff-body.ts`), as plain types.
 * Their zod schemas, which the OpenAPI document is generated from, live on the HTTP side
 * (`routes/v1/schemas/`), where a compile-time check proves each body validates against its schema.
 */
import type { ChannelSelect } from '../imaging/render.js';
import type { BoxCoverage } from '../ops/coverage.js';
import type { RotatedBoxCoverage } from '../ops/coverage-rotated.js';
import type { RoiBoxFormat } from './task.js';
import type { CellOp, ComparedOp, RoiOp } from '../ops/registry.js';
import type { AlignMode } from '../ops/types.js';
import type { OutputDtype } from '../tensors/float16.js';
import type { RoiWarning } from '../warnings.js';
import type { FeatureMapInfo, ImageInfo } from './results.js';

/** A tensor in JSON: base64 of its little-endian values, or (`encoding: "array"`) a number array. */
export interface TensorJson {
  shape: number[];
  dtype: OutputDtype;
  data: string | number[];
}

/** A box row `(b, x1, y1, x2, y2)`. */
export type BoxRow = [number, number, number, number, number];

/** Milliseconds per stage (0 when a stage did not run), `encode` and `total` included. */
export type TimingsJson = { decode: number; backbone: number; encode: number; total: number } & Record<
  ComparedOp,
  number
> &
  Partial<Record<RoiOp, number>>;

/** The parameters used, defaults filled in (`echoedParams`). */
export interface EchoedParams {
  ops: RoiOp[];
  boxFormat: RoiBoxFormat;
  /** Rotated boxes: the angle turns clockwise. */
  clockwise: boolean;
  normalized: boolean;
  outputSize: [number, number];
  samplingRatio: number;
  aligned: boolean;
  mode: AlignMode;
  spatialScale: number;
  imageSize: [number, number] | null;
  maxSide: number | null;
  format: 'json' | 'npy' | 'safetensors';
  encoding: 'base64' | 'array';
}

/** The JSON body of `POST /v1/roi`. */
export interface RoiResponseBody {
  params: EchoedParams & { dtype: OutputDtype };
  image: ImageInfo | null;
  /** With `images`: each image (`image` is the first). */
  images?: ImageInfo[];
  featureMap: FeatureMapInfo;
  boxes: BoxRow[];
  outputs: Partial<Record<RoiOp, TensorJson>>;
  coverage: (BoxCoverage | RotatedBoxCoverage)[];
  /** With a pyramid: each box's level; null with one map. */
  levels: number[] | null;
  warnings: RoiWarning[];
  timings: TimingsJson;
}

/** The JSON body of `POST /v1/features`. */
export interface FeaturesResponseBody {
  features: { shape: [number, number, number, number]; layout: 'NCHW'; dtype: 'float32'; data: string };
  featureMap: FeatureMapInfo;
  image: ImageInfo;
  timings: { decode: number; backbone: number; encode: number };
}

/** How far apart two ops' outputs are. */
export interface PairStatsJson {
  meanAbs: number;
  maxAbs: number;
  relL2: number | null;
}

/** Per pair of ops, keyed `"a-b"` (`pairKey`, the registry's `DIFF_PAIRS`). */
export type PairsJson = Record<string, PairStatsJson>;

/** Min, median and max. */
export interface SpreadJson {
  min: number;
  median: number;
  max: number;
}

/** How one op's read areas compare with the boxes, over all boxes. */
export interface OpSummaryJson {
  iou: SpreadJson;
  gainedFraction: SpreadJson;
  lostFraction: SpreadJson;
  iouHistogram: number[];
}

/** The JSON body of `POST /v1/diff` (`format: "json"`). */
export interface DiffResponseBody {
  params: Omit<EchoedParams, 'format' | 'encoding'> & {
    maxBoxes: number;
    channel: ChannelSelect;
    format: 'json';
  };
  image: ImageInfo | null;
  featureMap: FeatureMapInfo;
  boxes: BoxRow[];
  boxesShown: number;
  coverage: BoxCoverage[];
  differences: { box: number; pairs: PairsJson }[];
  differencesAll: { pairs: PairsJson };
  summary: { boxes: number } & Record<CellOp, OpSummaryJson>;
  images: { sheet: string; overlay: string | null; rows: string[]; featureHeatmap: string };
  notes: string[];
  warnings: RoiWarning[];
  timings: TimingsJson;
}

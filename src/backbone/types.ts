/**
 * The backbone's interface and its loading options, apart from `index.ts` (which loads one) so that the
 * implementations (`builtin-backbone.ts`, `user-backbones.ts`) need not import the module that imports
 * them (no import circle).
 */
import type { FeatureMap } from '../ops/types.js';
import type { BackboneDescription } from './builtin.js';
import type { BackboneLimits, RgbImage } from './input.js';
import type { EngineChoice } from './onnx-engine.js';

export interface Backbone {
  /** `builtin-inception-s16` or `user:<dir name>`. */
  name: string;
  /** Output stride: features are `ceil(H / stride) × ceil(W / stride)`. */
  stride: number;
  /** Output channels C. */
  channels: number;
  /** The largest input it takes; {@link Backbone.extract} refuses anything beyond. */
  limits: BackboneLimits;
  /** What runs it: tfjs (on the backend `describe()` names) or ONNX Runtime. */
  engine: 'tfjs' | 'onnx';
  /**
   * Runs the backbone. `image.rgb` is `[H, W, 3]` uint8.
   * @returns `{ data, shape: [1, C, H', W'], layout: 'NHWC' }`, `H' = ceil(H / stride)` for the built-in net.
   * @throws InvalidInputError (field `image`) for inconsistent sizes, an aspect ratio over `limits`, or a
   *   size a fixed-input model cannot take; TooLargeError over the side or pixel limit.
   */
  extract(image: RgbImage): Promise<FeatureMap>;
  /** Layers, shapes, parameters, multiply-adds, stride and receptive field. */
  describe(): BackboneDescription;
  /** Its feature pyramid (`pyramid: true`), when it has one: the built-in net's FPN. */
  pyramid?: BackbonePyramid;
  /**
   * The network as an ONNX model (`GET /v1/backbone/model.onnx`): the built-in net exported with its
   * weights; null for a user tfjs model.
   */
  onnxModel(): Uint8Array | null;
  /** One small forward pass so the first request does not pay kernel set-up. */
  warmup(): Promise<void>;
  /** Frees the model's weights. */
  dispose(): void;
}

/** A backbone's feature pyramid: several maps of one image, finest first, one channel count. */
export interface BackbonePyramid {
  /** Stride of each level, finest first (powers of two; the built-in pyramid: 8, 16, 32). */
  strides: readonly number[];
  /** Channels of every level. */
  channels: number;
  /**
   * Runs the backbone and its pyramid head; the same input checks as {@link Backbone.extract}.
   * @returns one NHWC map `[1, C, ceil(H / stride), ceil(W / stride)]` per level, finest first
   */
  extract(image: RgbImage): Promise<FeatureMap[]>;
}

export interface LoadBackboneOptions {
  /** Directory with a tfjs `model.json` + shards. Default: undefined, the built-in backbone. */
  modelDir?: string;
  /** User models: layer/node name to read. Default: the model's only output. */
  outputNode?: string;
  /** Expected output stride; checked against a probe pass for user models. Default 16. */
  stride?: number;
  /** User models: the range RGB 0..255 is mapped to linearly. Default `[0, 1]`. */
  inputRange?: [number, number];
  /** Refuse (413) images larger than this at the backbone. Default `DEFAULT_MAX_INPUT_PIXELS` (4096²). */
  maxInputPixels?: number;
  /** Refuse (413) images with a longer side. Default `DEFAULT_MAX_INPUT_SIDE`. */
  maxInputSide?: number;
  /** Refuse (400) images with a larger aspect ratio. Default `DEFAULT_MAX_INPUT_ASPECT`. */
  maxInputAspect?: number;
  /** Built-in net: weight seed. Default `BUILTIN_SEED`. */
  seed?: number;
  /** `BACKBONE_ENGINE`: `auto` (default), `tfjs` or `onnx`; see `chooseEngine`. */
  engine?: EngineChoice;
  /** ONNX Runtime intra-op threads per session (`BACKBONE_THREADS`). Default 1. */
  onnxThreads?: number;
  /** User ONNX models: per-channel mean after /255 (`BACKBONE_MEAN`). */
  mean?: readonly [number, number, number];
  /** User ONNX models: per-channel std (`BACKBONE_STD`). */
  std?: readonly [number, number, number];
  /** User ONNX models: zero-pad bottom/right to a multiple of this (`BACKBONE_SIZE_DIVISIBILITY`). */
  sizeDivisibility?: number;
  /** User ONNX models: each output's stride, finest first (`BACKBONE_STRIDES`); default inferred. */
  strides?: readonly number[];
  /**
   * Built-in net on the `onnx` engine: the model ONNX Runtime runs instead of the export of the same
   * weights. Only for tests of the start-up agreement check (a model that disagrees must be refused).
   */
  onnxModelForTest?: Uint8Array;
}

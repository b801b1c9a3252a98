/**
 * The backbone: RGB pixels `[H, W, 3]` → feature map `[1, C, ceil(H/stride), ceil(W/stride)]` (NHWC from
 * tfjs, NCHW from ONNX Runtime), and for pyramid backbones one map per level. Either the built-in net
 * (`builtin.ts`, run by `builtin_backbone.ts` on tfjs or ONNX Runtime) or a user's model from a local
 * directory (`user_backbones.ts`: tfjs `model.json` or ONNX `model.onnx`). This file holds the
 * interface and `loadBackbone`; the shared input checks are `input.ts`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { FeatureMap } from '../ops/types.js';
import { BUILTIN_STRIDE, type BackboneDescription } from './builtin.js';
import { builtinBackbone } from './builtin_backbone.js';
import {
  DEFAULT_MAX_INPUT_ASPECT,
  DEFAULT_MAX_INPUT_PIXELS,
  DEFAULT_MAX_INPUT_SIDE,
  type BackboneLimits,
  type RgbImage,
} from './input.js';
import type { EngineChoice } from './onnx_engine.js';
import { currentBackend, initTensorFlow } from './tf.js';
import { userBackbone, userOnnxBackbone } from './user_backbones.js';
import { USER_ONNX_FILE } from './user_onnx.js';

export type { BackboneDescription, LayerDescription } from './builtin.js';
export type { PyramidDescription, PyramidLevelDescription } from './pyramid.js';
export { CONV1_FILTERS } from './builtin.js';
export { currentBackend, initTensorFlow, getTf, type TensorFlowBackend, type BackendChoice } from './tf.js';
export type { EngineChoice } from './onnx_engine.js';

export * from './input.js';

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
  /** Refuse (413) images larger than this at the backbone. Default {@link DEFAULT_MAX_INPUT_PIXELS} (4096²). */
  maxInputPixels?: number;
  /** Refuse (413) images with a longer side. Default {@link DEFAULT_MAX_INPUT_SIDE}. */
  maxInputSide?: number;
  /** Refuse (400) images with a larger aspect ratio. Default {@link DEFAULT_MAX_INPUT_ASPECT}. */
  maxInputAspect?: number;
  /** Built-in net: weight seed. Default {@link BUILTIN_SEED}. */
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

/**
 * Loads the backbone; initialises the tfjs backend (`auto`) first if nobody has.
 *
 * @param opts.modelDir - User model directory; default the built-in net.
 * @param opts.outputNode - User model output; default its only output.
 * @param opts.stride - Expected stride, default 16.
 * @param opts.inputRange - User model input range, default `[0, 1]`.
 * @param opts.maxInputPixels - Backbone pixel limit, default 4096².
 * @param opts.maxInputSide - Backbone side limit, default 8192.
 * @param opts.maxInputAspect - Backbone aspect-ratio limit, default 32.
 * @param opts.seed - Built-in weight seed, default {@link BUILTIN_SEED}.
 * @throws Error with a clear message when a user model is missing, malformed, does not output a rank-4
 *   tensor, or its stride differs from `opts.stride` (main.ts refuses to start).
 */
export async function loadBackbone(opts: LoadBackboneOptions = {}): Promise<Backbone> {
  if (currentBackend() === undefined) await initTensorFlow({ backend: 'auto' });
  const stride = opts.stride ?? BUILTIN_STRIDE;
  const limits: BackboneLimits = {
    maxPixels: opts.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS,
    maxSide: opts.maxInputSide ?? DEFAULT_MAX_INPUT_SIDE,
    maxAspect: opts.maxInputAspect ?? DEFAULT_MAX_INPUT_ASPECT,
  };
  for (const [name, value] of Object.entries(limits)) {
    if (!(value >= 1)) throw new Error(`Backbone limit ${name} must be >= 1, got ${value}`);
  }
  if (opts.modelDir === undefined) return builtinBackbone(stride, limits, opts);
  // model.onnx runs on ONNX Runtime, model.json on tfjs; with both, BACKBONE_ENGINE=tfjs picks model.json.
  const engine = opts.engine ?? 'auto';
  const hasOnnx = existsSync(join(opts.modelDir, USER_ONNX_FILE));
  if (hasOnnx && engine !== 'tfjs') return userOnnxBackbone(opts.modelDir, opts, limits);
  if (engine === 'onnx')
    throw new Error(
      `BACKBONE_ENGINE=onnx needs ${join(opts.modelDir, USER_ONNX_FILE)}; that directory has none (a tfjs model.json runs with BACKBONE_ENGINE=auto or tfjs)`,
    );
  return userBackbone(opts.modelDir, opts.outputNode, stride, opts.inputRange ?? [0, 1], limits);
}

/**
 * The backbone: RGB pixels `[H, W, 3]` → feature map `[1, C, ceil(H/stride), ceil(W/stride)]` (NHWC data).
 * Either the built-in net (see `builtin.ts`) or a user's tfjs model from a local directory.
 */
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { InvalidInputError, TooLargeError } from '../errors.js';
import type { FeatureMap } from '../ops/types.js';
import {
  BUILTIN_CHANNELS,
  BUILTIN_NETWORK,
  BUILTIN_SEED,
  BUILTIN_STRIDE,
  buildLayersModel,
  describeNetwork,
  networkWeights,
  type BackboneDescription,
} from './builtin.js';
import {
  PYRAMID_CHANNELS,
  PYRAMID_NETWORK,
  PYRAMID_OUTPUTS,
  PYRAMID_STRIDES,
  describePyramid,
} from './pyramid.js';
import {
  chooseEngine,
  checkedSession,
  type OrtSession,
  rgbToInput,
  runSession,
  type EngineChoice,
} from './onnx_engine.js';
import { exportOnnx } from './onnx_export.js';
import { currentBackend, initTensorFlow, tf } from './tf.js';
import { loadUserModel } from './user_model.js';
import { loadUserOnnx, USER_ONNX_FILE } from './user_onnx.js';

export type { BackboneDescription, LayerDescription } from './builtin.js';
export type { PyramidDescription, PyramidLevelDescription } from './pyramid.js';
export { CONV1_FILTERS } from './builtin.js';
export { currentBackend, initTensorFlow, getTf, type TensorFlowBackend, type BackendChoice } from './tf.js';
export type { EngineChoice } from './onnx_engine.js';

/** RGB pixels, `[height, width, 3]` row-major, as produced by `decodeImage`. */
export interface RgbImage {
  rgb: Uint8Array;
  width: number;
  height: number;
}

/**
 * The largest input a backbone is given, checked before it runs (and, through {@link checkBackboneInput},
 * before the image is even decoded). Pixels alone are not enough: tfjs-wasm's convolutions abort on
 * extreme shapes inside the pixel limit (16000000×1 corrupts the module's memory, and every later
 * call in that thread fails or crashes the process), so the side lengths and the aspect ratio are
 * bounded too.
 */
export interface BackboneLimits {
  /** width × height at most this. */
  maxPixels: number;
  /** max(width, height) at most this. */
  maxSide: number;
  /** max(width, height) / min(width, height) at most this. */
  maxAspect: number;
  /** A user model with a fixed input size takes only `[width, height]`. Default: any size. */
  fixedSize?: [number, number];
}

/** Default {@link BackboneLimits.maxPixels}: 4096² (a 4096² image takes ~11 s and ~1.3 GB on wasm). */
export const DEFAULT_MAX_INPUT_PIXELS = 4096 * 4096;
/** Default {@link BackboneLimits.maxSide}: 8192 (8192×2048 and 2048×8192 were checked to run on wasm). */
export const DEFAULT_MAX_INPUT_SIDE = 8192;
/** Default {@link BackboneLimits.maxAspect}: 32 (an 8192×256 strip is still a useful picture). */
export const DEFAULT_MAX_INPUT_ASPECT = 32;

/** Sizes of an image on its way to the backbone: as sent (after EXIF orientation) and after resizing. */
export interface InputSize {
  width: number;
  height: number;
  /** Default `width`. */
  originalWidth?: number;
  /** Default `height`. */
  originalHeight?: number;
}

/**
 * The largest `maxSide` that brings an `ow × oh` image within the backbone's pixel and side limits,
 * with the resize's own rounding (`decodeImage`: each side `round(side × maxSide / longer side)`), for
 * the 413 message.
 */
export function fittingMaxSide(ow: number, oh: number, limits: BackboneLimits): number {
  const long = Math.max(ow, oh);
  const fits = (m: number) => {
    const s = m / long;
    return Math.max(1, Math.round(ow * s)) * Math.max(1, Math.round(oh * s)) <= limits.maxPixels;
  };
  let m = Math.min(limits.maxSide, long, Math.floor(long * Math.sqrt(limits.maxPixels / (ow * oh))));
  while (m > 1 && !fits(m)) m--;
  return Math.max(1, m);
}

/**
 * Refuses an image the backbone must not be given, naming the field `image`.
 *
 * @param limits - the backbone's limits
 * @param size - the size the backbone would get, and the size as sent when it was resized
 * @throws InvalidInputError (400) over the aspect ratio (resizing does not change it);
 *   TooLargeError (413) over the side or pixel limit (a smaller `maxSide` fixes these)
 */
export function checkBackboneInput(limits: BackboneLimits, size: InputSize): void {
  const { width, height } = size;
  const ow = size.originalWidth ?? width;
  const oh = size.originalHeight ?? height;
  const resized = ow !== width || oh !== height;
  const shown = `${ow}×${oh}${resized ? ` (${width}×${height} after resizing)` : ''}`;
  if (limits.fixedSize && (width !== limits.fixedSize[0] || height !== limits.fixedSize[1])) {
    const [fw, fh] = limits.fixedSize;
    throw new InvalidInputError(
      `The backbone model takes ${fw}×${fh} images, got ${shown}`,
      'image',
      `a ${fw}×${fh} image`,
    );
  }
  const long = Math.max(width, height);
  const short = Math.min(width, height);
  if (long > limits.maxAspect * short) {
    throw new InvalidInputError(
      `The image is ${shown}: its aspect ratio ${+(long / short).toPrecision(4)}:1 is over the backbone's limit of ${limits.maxAspect}:1; crop it, or pad it to a squarer shape`,
      'image',
      `an image whose longer side is at most ${limits.maxAspect} times its shorter side`,
    );
  }
  if (long > limits.maxSide) {
    throw new TooLargeError(
      `The image is ${shown}: its longer side is over the backbone's limit of ${limits.maxSide} pixels; send maxSide: ${limits.maxSide} (or less) to have it shrunk, boxes staying in its pixels, or resize it`,
      'image',
      `width and height at most ${limits.maxSide} pixels`,
    );
  }
  if (width * height > limits.maxPixels) {
    throw new TooLargeError(
      `The image is ${shown}: ${width * height} pixels, over the backbone's limit of ${limits.maxPixels}; send maxSide: ${fittingMaxSide(ow, oh, limits)} (or less) to have it shrunk, boxes staying in its pixels, or resize it`,
      'image',
      `at most ${limits.maxPixels} pixels`,
    );
  }
}

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

/** No limits: for the engine check's own small probe image. */
const UNLIMITED: BackboneLimits = { maxPixels: Infinity, maxSide: Infinity, maxAspect: Infinity };

/** Reference input the descriptions are given for: `[224, 224]` (the classic ImageNet size). */
export const REFERENCE_INPUT: [number, number] = [224, 224];
/** The built-in net's input mapping: RGB/255 − 0.5, so each value lies in [−0.5, 0.5]. */
export const BUILTIN_INPUT_RANGE: [number, number] = [-0.5, 0.5];

/** Why the tfjs backend in use was chosen, and tfjs-node's load error if it was tried and failed. */
function backendFacts(): { backendReason: string; tfjsNodeError: string | null } {
  const selected = currentBackend();
  return {
    backendReason: selected?.reason ?? `tfjs backend ${tf.getBackend()} (set outside initTensorFlow)`,
    tfjsNodeError: selected?.tfjsNodeError ?? null,
  };
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

/** A `BACKBONE_DIR` holding `model.onnx` (see `user_onnx.ts`): one map, or a pyramid finest first. */
async function userOnnxBackbone(
  modelDir: string,
  opts: LoadBackboneOptions,
  limits: BackboneLimits,
): Promise<Backbone> {
  const engine = opts.engine ?? 'auto';
  const model = await loadUserOnnx({
    modelDir,
    mean: opts.mean,
    std: opts.std,
    sizeDivisibility: opts.sizeDivisibility,
    strides: opts.strides,
    stride: opts.stride,
    threads: opts.onnxThreads ?? 1,
    engineReason: `onnx: ${engine === 'onnx' ? 'configured (BACKBONE_ENGINE=onnx)' : 'auto'}: BACKBONE_DIR holds ${USER_ONNX_FILE}`,
  });
  const levels = async (image: RgbImage) => {
    checkImage(image, limits);
    return model.run(image);
  };
  // Without the pyramid, image requests read the finest level (the first output).
  const extract = async (image: RgbImage) => (await levels(image))[0];
  return {
    name: model.name,
    stride: model.strides[0],
    channels: model.channels,
    limits,
    engine: 'onnx',
    extract,
    pyramid:
      model.strides.length > 1
        ? { strides: model.strides, channels: model.channels, extract: levels }
        : undefined,
    describe: () => model.describe({ backend: tf.getBackend(), ...backendFacts() }),
    onnxModel: () => model.bytes,
    warmup: async () => {
      await extract({ rgb: new Uint8Array(64 * 64 * 3), width: 64, height: 64 });
    },
    dispose: () => {
      model.release().catch(() => undefined);
    },
  };
}

/**
 * Refuses an image whose bytes do not match its size, or that is over the backbone's limits.
 * @throws InvalidInputError / TooLargeError naming the field `image`
 */
function checkImage(image: RgbImage, limits: BackboneLimits): void {
  const { rgb, width, height } = image;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width >= 1 && height >= 1)) {
    throw new InvalidInputError(
      `Image size must be positive integers, got ${width}×${height}`,
      'image',
      'width, height ≥ 1',
    );
  }
  if (rgb.length !== width * height * 3) {
    throw new InvalidInputError(
      `Image data has ${rgb.length} bytes, expected ${width}×${height}×3 = ${width * height * 3}`,
      'image',
      'RGB bytes [H, W, 3]',
    );
  }
  checkBackboneInput(limits, { width, height });
}

/** `[1, H, W, 3]` float32 input, each byte `v` mapped to `lo + v/255·(hi − lo)`. */
function toInput(image: RgbImage, range: [number, number], limits: BackboneLimits): tf.Tensor4D {
  checkImage(image, limits);
  const { rgb, width, height } = image;
  const [lo, hi] = range;
  const scale = (hi - lo) / 255;
  const data = new Float32Array(rgb.length);
  for (let i = 0; i < rgb.length; i++) data[i] = rgb[i] * scale + lo;
  return tf.tensor4d(data, [1, height, width, 3]);
}

async function readFeatures(output: tf.Tensor, name: string): Promise<FeatureMap> {
  try {
    if (output.rank !== 4)
      throw new Error(`${name}: output must be rank 4, got shape [${output.shape.join(', ')}]`);
    const [n, h, w, c] = output.shape;
    const data = (await output.data()) as Float32Array;
    return { data, shape: [n, c, h, w], layout: 'NHWC' };
  } finally {
    output.dispose();
  }
}

/**
 * The built-in net on the chosen engine. On `onnx` the tfjs model exists only for the start-up check:
 * both engines run a probe image and must agree within `ENGINE_TOLERANCE` of the feature scale, or
 * loading fails (the service refuses to start); then the tfjs model is disposed.
 */
async function builtinBackbone(
  stride: number,
  limits: BackboneLimits,
  opts: LoadBackboneOptions,
): Promise<Backbone> {
  if (stride !== BUILTIN_STRIDE) {
    throw new Error(`The built-in backbone has stride ${BUILTIN_STRIDE}; the configured stride is ${stride}`);
  }
  const seed = opts.seed ?? BUILTIN_SEED;
  const weights = networkWeights(BUILTIN_NETWORK, seed);
  const tfjsBackend = currentBackend() ?? {
    backend: tf.getBackend(),
    reason: backendFacts().backendReason,
    tfjsNodeError: null,
  };
  const { engine, reason: engineReason } = await chooseEngine(opts.engine ?? 'auto', tfjsBackend);
  const onnxBytes = () => exportOnnx(BUILTIN_NETWORK, weights, { seed });
  const model = buildLayersModel(BUILTIN_NETWORK, weights);
  const name = 'builtin-inception-s16';
  // `lim`: the configured limits, or none for the engine check's probe (a small fixed image that
  // must run even where MAX_IMAGE_PIXELS is set lower).
  const tfjsRun = async (image: RgbImage, lim: BackboneLimits = limits) =>
    readFeatures(
      // apply (not predict): predict slices the input into batches, an extra copy of the image.
      tf.tidy(() => model.apply(toInput(image, BUILTIN_INPUT_RANGE, lim), { training: false }) as tf.Tensor),
      name,
    );
  const tfjsExtract = (image: RgbImage) => tfjsRun(image);
  // The pyramid is a second model (the same weights for the shared layers), built when first asked
  // for: requests without `pyramid` never pay for it, and run exactly the model they always ran.
  let pyramidModel: tf.LayersModel | undefined;
  const pyramidWeights = () => networkWeights(PYRAMID_NETWORK, seed);
  const tfjsPyramid = async (image: RgbImage, lim: BackboneLimits = limits) => {
    pyramidModel ??= buildLayersModel(PYRAMID_NETWORK, pyramidWeights(), PYRAMID_OUTPUTS);
    const net = pyramidModel;
    const outputs = tf.tidy(
      () => net.apply(toInput(image, BUILTIN_INPUT_RANGE, lim), { training: false }) as tf.Tensor[],
    );
    // readFeatures disposes each; read them one by one so a failure still frees the rest.
    const maps: FeatureMap[] = [];
    try {
      for (const out of outputs) maps.push(await readFeatures(out, `${name} pyramid`));
    } finally {
      tf.dispose(outputs);
    }
    return maps;
  };
  const pyramid: BackbonePyramid = {
    strides: PYRAMID_STRIDES,
    channels: PYRAMID_CHANNELS,
    extract: (image) => tfjsPyramid(image),
  };
  let extract = tfjsExtract;
  let engineCheck: BackboneDescription['engineCheck'] = null;
  const sessions: OrtSession[] = [];
  if (engine === 'onnx') {
    const threads = opts.onnxThreads ?? 1;
    let checked: Awaited<ReturnType<typeof checkedSession>>;
    try {
      checked = await checkedSession(
        opts.onnxModelForTest ?? onnxBytes(),
        threads,
        async (probe) => [await tfjsRun(probe, UNLIMITED)],
        tf.getBackend(),
      );
    } catch (err) {
      throw new Error(`Built-in backbone on ONNX Runtime: ${(err as Error).message}`, { cause: err });
    } finally {
      // The tfjs model has done its part (the check); its weights need not stay in memory.
      model.dispose();
    }
    engineCheck = checked.check;
    const session = checked.session;
    sessions.push(session);
    extract = async (image: RgbImage) => {
      checkImage(image, limits);
      const [features] = await runSession(session, rgbToInput(image.rgb, image.width, image.height));
      return features;
    };
    // The pyramid's session is made, and checked against the tfjs pyramid, on first use (as above).
    let pyramidSession: Promise<OrtSession> | undefined;
    pyramid.extract = async (image: RgbImage) => {
      checkImage(image, limits);
      pyramidSession ??= checkedSession(
        exportOnnx(PYRAMID_NETWORK, pyramidWeights(), { seed, outputs: [...PYRAMID_OUTPUTS] }),
        threads,
        async (probe) => {
          try {
            return await tfjsPyramid(probe, UNLIMITED);
          } finally {
            pyramidModel?.dispose();
            pyramidModel = undefined;
          }
        },
        tf.getBackend(),
      ).then(
        (c) => {
          sessions.push(c.session);
          return c.session;
        },
        (err: unknown) => {
          pyramidSession = undefined;
          throw err;
        },
      );
      return runSession(await pyramidSession, rgbToInput(image.rgb, image.width, image.height));
    };
  }
  return {
    name,
    stride: BUILTIN_STRIDE,
    channels: BUILTIN_CHANNELS,
    limits,
    engine,
    extract,
    pyramid,
    describe: () => {
      const layers = describeNetwork(BUILTIN_NETWORK, REFERENCE_INPUT);
      const last = layers[layers.length - 1];
      return {
        name,
        backend: tf.getBackend(),
        ...backendFacts(),
        engine,
        engineReason,
        engineCheck,
        inputChannels: 3,
        outputChannels: BUILTIN_CHANNELS,
        stride: BUILTIN_STRIDE,
        receptiveField: last.receptiveField,
        totalParams: layers.reduce((sum, l) => sum + l.params, 0),
        totalMultiplyAdds: layers.reduce((sum, l) => sum + l.multiplyAdds, 0),
        referenceInput: REFERENCE_INPUT,
        inputNormalization:
          engine === 'onnx'
            ? 'RGB / 255 − 0.5 (each value in [−0.5, 0.5]); ONNX Runtime gets RGB / 255 NCHW, the − 0.5 is in the graph'
            : 'RGB / 255 − 0.5 (each value in [−0.5, 0.5]), NHWC',
        layers,
        pyramid: describePyramid(REFERENCE_INPUT),
      };
    },
    onnxModel: onnxBytes,
    warmup: async () => {
      await extract({ rgb: new Uint8Array(64 * 64 * 3), width: 64, height: 64 });
    },
    dispose: () => {
      // On `onnx` the base tfjs model went right after the start-up check.
      if (engine === 'tfjs') model.dispose();
      pyramidModel?.dispose();
      for (const session of sessions) session.release().catch(() => undefined);
    },
  };
}

async function userBackbone(
  modelDir: string,
  outputNode: string | undefined,
  stride: number,
  inputRange: [number, number],
  limits: BackboneLimits,
): Promise<Backbone> {
  if (!(Number.isInteger(stride) && stride >= 1))
    throw new Error(`Backbone stride must be an integer >= 1, got ${stride}`);
  const model = await loadUserModel(modelDir, outputNode);
  const name = `user:${basename(modelDir)}`;
  // Probe once: a size that is a multiple of the stride, or the model's fixed size.
  const probe = model.fixedInput ?? [stride * 16, stride * 16];
  let outShape: number[];
  try {
    const out = tf.tidy(() => model.run(tf.zeros([1, probe[0], probe[1], 3])));
    outShape = out.shape;
    out.dispose();
  } catch (err) {
    model.dispose();
    throw new Error(
      `Backbone model in ${modelDir}: probe pass on [1, ${probe[0]}, ${probe[1]}, 3] failed: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const refuse = (why: string): never => {
    model.dispose();
    throw new Error(`Backbone model in ${modelDir}: ${why}`);
  };
  if (outShape.length !== 4)
    refuse(`output must be rank 4 [1, H, W, C] (NHWC), got [${outShape.join(', ')}]`);
  const [, oh, ow, channels] = outShape;
  const expected = [probe[0] / stride, probe[1] / stride];
  // 'valid' padding may lose a row or column at the border; anything further off is another stride.
  if (Math.abs(oh - expected[0]) > 1 || Math.abs(ow - expected[1]) > 1) {
    const measured = (probe[0] / oh).toFixed(2);
    refuse(
      `output stride mismatch: input ${probe[0]}×${probe[1]} gives ${oh}×${ow} (stride ≈ ${measured}), ` +
        `the configured stride ${stride} expects ${expected[0]}×${expected[1]}`,
    );
  }
  // A fixed input size is one more limit, so an image of another size is refused before decoding too.
  const ownLimits: BackboneLimits = model.fixedInput
    ? { ...limits, fixedSize: [model.fixedInput[1], model.fixedInput[0]] }
    : limits;
  const extract = async (image: RgbImage) =>
    readFeatures(
      tf.tidy(() => model.run(toInput(image, inputRange, ownLimits))),
      name,
    );
  return {
    name,
    stride,
    channels,
    limits: ownLimits,
    engine: 'tfjs',
    extract,
    onnxModel: () => null,
    describe: () => {
      const layers = model.describeLayers(probe);
      return {
        name,
        backend: tf.getBackend(),
        ...backendFacts(),
        engine: 'tfjs' as const,
        engineReason: 'tfjs: a tfjs model (model.json) runs on tfjs',
        engineCheck: null,
        inputChannels: 3,
        outputChannels: channels,
        stride,
        receptiveField: layers.length ? layers[layers.length - 1].receptiveField : 0,
        totalParams: model.totalParams,
        totalMultiplyAdds: layers.reduce((sum, l) => sum + l.multiplyAdds, 0),
        referenceInput: probe,
        inputNormalization: `RGB mapped linearly from [0, 255] to [${inputRange[0]}, ${inputRange[1]}], NHWC`,
        layers,
      };
    },
    warmup: async () => {
      const [h, w] = model.fixedInput ?? [stride * 4, stride * 4];
      await extract({ rgb: new Uint8Array(h * w * 3), width: w, height: h });
    },
    dispose: () => model.dispose(),
  };
}

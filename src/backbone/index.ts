/**
 * The backbone: RGB pixels `[H, W, 3]` → feature map `[1, C, ceil(H/stride), ceil(W/stride)]` (NHWC data).
 * Either the built-in net (see `builtin.ts`) or a user's tfjs model from a local directory.
 */
import { basename } from 'node:path';
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
import { currentBackend, initTensorFlow, tf } from './tf.js';
import { loadUserModel } from './user_model.js';

export type { BackboneDescription, LayerDescription } from './builtin.js';
export { CONV1_FILTERS } from './builtin.js';
export { currentBackend, initTensorFlow, getTf, type TensorFlowBackend, type BackendChoice } from './tf.js';

/** RGB pixels, `[height, width, 3]` row-major, as produced by `decodeImage`. */
export interface RgbImage {
  rgb: Uint8Array;
  width: number;
  height: number;
}

export interface Backbone {
  /** `builtin-inception-s16` or `user:<dir name>`. */
  name: string;
  /** Output stride: features are `ceil(H / stride) × ceil(W / stride)`. */
  stride: number;
  /** Output channels C. */
  channels: number;
  /**
   * Runs the backbone. `image.rgb` is `[H, W, 3]` uint8.
   * @returns `{ data, shape: [1, C, H', W'], layout: 'NHWC' }`, `H' = ceil(H / stride)` for the built-in net.
   * @throws InvalidInputError (field `image`) for inconsistent sizes or a size a fixed-input model cannot take;
   *   TooLargeError over `maxInputPixels`.
   */
  extract(image: RgbImage): Promise<FeatureMap>;
  /** Layers, shapes, parameters, multiply-adds, stride and receptive field. */
  describe(): BackboneDescription;
  /** One small forward pass so the first request does not pay kernel set-up. */
  warmup(): Promise<void>;
  /** Frees the model's weights. */
  dispose(): void;
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
  /** Refuse (413) images larger than this at the backbone. Default 16_777_216 (4096²). */
  maxInputPixels?: number;
  /** Built-in net: weight seed. Default {@link BUILTIN_SEED}. */
  seed?: number;
}

/** Reference input the descriptions are given for: `[224, 224]` (the classic ImageNet size). */
export const REFERENCE_INPUT: [number, number] = [224, 224];
/** The built-in net's input mapping: RGB/255 − 0.5, so each value lies in [−0.5, 0.5]. */
export const BUILTIN_INPUT_RANGE: [number, number] = [-0.5, 0.5];
const DEFAULT_MAX_INPUT_PIXELS = 4096 * 4096;

/**
 * Loads the backbone; initialises the tfjs backend (`auto`) first if nobody has.
 *
 * @param opts.modelDir - User model directory; default the built-in net.
 * @param opts.outputNode - User model output; default its only output.
 * @param opts.stride - Expected stride, default 16.
 * @param opts.inputRange - User model input range, default `[0, 1]`.
 * @param opts.maxInputPixels - Backbone pixel limit, default 4096².
 * @param opts.seed - Built-in weight seed, default {@link BUILTIN_SEED}.
 * @throws Error with a clear message when a user model is missing, malformed, does not output a rank-4
 *   tensor, or its stride differs from `opts.stride` (main.ts refuses to start).
 */
export async function loadBackbone(opts: LoadBackboneOptions = {}): Promise<Backbone> {
  if (currentBackend() === undefined) await initTensorFlow({ backend: 'auto' });
  const stride = opts.stride ?? BUILTIN_STRIDE;
  const maxInputPixels = opts.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS;
  return opts.modelDir === undefined
    ? builtinBackbone(stride, maxInputPixels, opts.seed ?? BUILTIN_SEED)
    : userBackbone(opts.modelDir, opts.outputNode, stride, opts.inputRange ?? [0, 1], maxInputPixels);
}

/** `[1, H, W, 3]` float32 input, each byte `v` mapped to `lo + v/255·(hi − lo)`. */
function toInput(image: RgbImage, range: [number, number], maxInputPixels: number): tf.Tensor4D {
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
  if (width * height > maxInputPixels) {
    throw new TooLargeError(
      `Image ${width}×${height} is over the backbone limit of ${maxInputPixels} pixels; resize it (maxSide)`,
      'image',
      `at most ${maxInputPixels} pixels`,
    );
  }
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

function builtinBackbone(stride: number, maxInputPixels: number, seed: number): Backbone {
  if (stride !== BUILTIN_STRIDE) {
    throw new Error(`The built-in backbone has stride ${BUILTIN_STRIDE}; the configured stride is ${stride}`);
  }
  const model = buildLayersModel(BUILTIN_NETWORK, networkWeights(BUILTIN_NETWORK, seed));
  const name = 'builtin-inception-s16';
  const extract = async (image: RgbImage) =>
    readFeatures(
      // apply (not predict): predict slices the input into batches, an extra copy of the image.
      tf.tidy(
        () =>
          model.apply(toInput(image, BUILTIN_INPUT_RANGE, maxInputPixels), { training: false }) as tf.Tensor,
      ),
      name,
    );
  return {
    name,
    stride: BUILTIN_STRIDE,
    channels: BUILTIN_CHANNELS,
    extract,
    describe: () => {
      const layers = describeNetwork(BUILTIN_NETWORK, REFERENCE_INPUT);
      const last = layers[layers.length - 1];
      return {
        name,
        backend: tf.getBackend(),
        inputChannels: 3,
        outputChannels: BUILTIN_CHANNELS,
        stride: BUILTIN_STRIDE,
        receptiveField: last.receptiveField,
        totalParams: layers.reduce((sum, l) => sum + l.params, 0),
        totalMultiplyAdds: layers.reduce((sum, l) => sum + l.multiplyAdds, 0),
        referenceInput: REFERENCE_INPUT,
        inputNormalization: 'RGB / 255 − 0.5 (each value in [−0.5, 0.5]), NHWC',
        layers,
      };
    },
    warmup: async () => {
      await extract({ rgb: new Uint8Array(64 * 64 * 3), width: 64, height: 64 });
    },
    dispose: () => model.dispose(),
  };
}

async function userBackbone(
  modelDir: string,
  outputNode: string | undefined,
  stride: number,
  inputRange: [number, number],
  maxInputPixels: number,
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
  const extract = async (image: RgbImage) => {
    if (model.fixedInput && (image.height !== model.fixedInput[0] || image.width !== model.fixedInput[1])) {
      throw new InvalidInputError(
        `The backbone model takes ${model.fixedInput[1]}×${model.fixedInput[0]} images, got ${image.width}×${image.height}`,
        'image',
        `a ${model.fixedInput[1]}×${model.fixedInput[0]} image`,
      );
    }
    return readFeatures(
      tf.tidy(() => model.run(toInput(image, inputRange, maxInputPixels))),
      name,
    );
  };
  return {
    name,
    stride,
    channels,
    extract,
    describe: () => {
      const layers = model.describeLayers(probe);
      return {
        name,
        backend: tf.getBackend(),
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

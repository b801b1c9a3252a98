/**
 * What every backbone checks and shares: the input limits (checked from an image's header before it
 * is decoded, and again at the backbone), the RGB checks, the tfjs input tensor and output reading,
 * and the tfjs backend facts the descriptions report. Split from `index.ts` so that the built-in and
 * user backbones (`builtin-backbone.ts`, `user-backbones.ts`) import it without a cycle.
 */
import { InvalidInputError, TooLargeError } from '../errors.js';
import type { FeatureMap } from '../ops/types.js';
import { currentBackend, tf } from './tf.js';

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

/** No limits: for the engine check's own small probe image. */
export const UNLIMITED: BackboneLimits = { maxPixels: Infinity, maxSide: Infinity, maxAspect: Infinity };

/** Reference input the descriptions are given for: `[224, 224]` (the classic ImageNet size). */
export const REFERENCE_INPUT: [number, number] = [224, 224];
/** The built-in net's input mapping: RGB/255 − 0.5, so each value lies in [−0.5, 0.5]. */
export const BUILTIN_INPUT_RANGE: [number, number] = [-0.5, 0.5];

/** Why the tfjs backend in use was chosen, and tfjs-node's load error if it was tried and failed. */
export function backendFacts(): { backendReason: string; tfjsNodeError: string | null } {
  const selected = currentBackend();
  return {
    backendReason: selected?.reason ?? `tfjs backend ${tf.getBackend()} (set outside initTensorFlow)`,
    tfjsNodeError: selected?.tfjsNodeError ?? null,
  };
}

/**
 * Refuses an image whose bytes do not match its size, or that is over the backbone's limits.
 * @throws InvalidInputError / TooLargeError naming the field `image`
 */
export function checkImage(image: RgbImage, limits: BackboneLimits): void {
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
export function toInput(image: RgbImage, range: [number, number], limits: BackboneLimits): tf.Tensor4D {
  checkImage(image, limits);
  const { rgb, width, height } = image;
  const [lo, hi] = range;
  const scale = (hi - lo) / 255;
  const data = new Float32Array(rgb.length);
  for (let i = 0; i < rgb.length; i++) data[i] = rgb[i] * scale + lo;
  return tf.tensor4d(data, [1, height, width, 3]);
}

export async function readFeatures(output: tf.Tensor, name: string): Promise<FeatureMap> {
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

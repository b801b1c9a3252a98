/**
 * The limits of image requests that need the images' sizes (from their headers, before decoding):
 * the work budget of the backbone pass plus the ops on the map it will produce, one image or several
 * (`images`: the whole request against `MAX_WORK`), and the outputs against `MAX_OUTPUT_VALUES`.
 * Split from `pipeline.ts`, which calls these before decoding and before the backbone.
 */
import type { Backbone } from '../backbone/index.js';
import { TooLargeError } from '../errors.js';
import { readImageSize } from '../imaging/decode.js';
import { scaleBoxes } from '../ops/boxes.js';
import type { RotatedBoxes } from '../ops/rotated_roi_align.js';
import { checkOutputValues } from './prepare.js';
import type { PipelineContext } from './results.js';
import type { DecodedRoiTask, RoiLimits } from './task.js';
import {
  boxesInPixels,
  checkImagesWork,
  checkWork,
  estimateRoiWork,
  multiplyAddsPerPixel,
} from './work-budget.js';

/** The decoded (resized) image size and the factors boxes are scaled by to reach it. */
export interface ImageSize {
  width: number;
  height: number;
  /** Size as sent: the frame of the boxes (normalized boxes are fractions of it). */
  originalWidth: number;
  originalHeight: number;
  scaleX: number;
  scaleY: number;
}

const perPixel = new WeakMap<Backbone, number>();

/** The backbone's multiply-adds per input pixel (its description is built once per backbone). */
function backboneMultiplyAdds(backbone: Backbone, size: { width: number; height: number }) {
  let perPx = perPixel.get(backbone);
  if (perPx === undefined) {
    perPx = multiplyAddsPerPixel(backbone.describe());
    perPixel.set(backbone, perPx);
  }
  return { multiplyAddsPerPixel: perPx, width: size.width, height: size.height };
}

/** `POST /v1/features`: the budget of the backbone alone. */
export function checkBackboneWork(
  backbone: Backbone,
  size: { width: number; height: number },
  maxWork: number,
) {
  const work = backboneMultiplyAdds(backbone, size);
  const units = work.multiplyAddsPerPixel * work.width * work.height;
  if (units > maxWork) {
    throw new TooLargeError(
      `this image would cost ~${units.toExponential(1)} work units (backbone: ${work.width}×${work.height} px × ${Math.round(work.multiplyAddsPerPixel)} multiply-adds per pixel), over MAX_WORK=${maxWork.toExponential(1)}`,
      'image',
      'a smaller image',
    );
  }
}

/**
 * The work estimate of an image request, once its decoded size is known and before the backbone runs:
 * the backbone on `size` pixels plus the ops on the map it will produce (`ceil(side / stride)`), with
 * the boxes in the resized frame.
 */
function imageRoiWork(task: DecodedRoiTask, backbone: Backbone, size: ImageSize, limits: RoiLimits) {
  // A pyramid request: each box's ops costed on its level (the level mapping needs only the boxes), the
  // backbone with its pyramid head.
  const pyramid = task.params.pyramid ? backbone.pyramid : undefined;
  const stride = pyramid ? pyramid.strides[0] : backbone.stride;
  const mapShape = [
    1,
    pyramid ? pyramid.channels : backbone.channels,
    Math.ceil(size.height / stride),
    Math.ceil(size.width / stride),
  ] as const;
  const frame = [size.originalWidth, size.originalHeight] as const;
  const pixelBoxes = boxesInPixels(task.boxes, task.params.normalized, frame);
  const resized = size.scaleX !== 1 || size.scaleY !== 1;
  const boxes = resized ? scaleBoxes(pixelBoxes, size.scaleX, size.scaleY) : pixelBoxes;
  const backboneWork = backboneMultiplyAdds(backbone, size);
  const head = pyramid ? backbone.describe().pyramid : undefined;
  if (head) backboneWork.multiplyAddsPerPixel = multiplyAddsPerPixel({ ...backbone.describe(), ...head });
  // Each level's map is `ceil(side / stride)` (the backbone's pyramid crops to that; an upper bound).
  const levels = pyramid && {
    shapes: pyramid.strides.map(
      (t) => [1, pyramid.channels, Math.ceil(size.height / t), Math.ceil(size.width / t)] as const,
    ),
    scales: pyramid.strides.map((t) => 1 / t),
    levelMapping: task.params.levelMapping,
  };
  // Rotated boxes follow the image's resize as the pipeline scales them (their level is from w·h).
  const rotated = task.rotated && scaleRotated(task.rotated, size.scaleX, size.scaleY);
  return estimateRoiWork(boxes, mapShape, 1 / stride, task.params, limits, backboneWork, {
    pyramid: levels || undefined,
    rotated,
  });
}

/** The work budget of one image's request ({@link imageRoiWork} against `MAX_WORK`). */
export function checkImageRoiWork(
  task: DecodedRoiTask,
  backbone: Backbone,
  size: ImageSize,
  limits: RoiLimits,
): void {
  const { estimate, input } = imageRoiWork(task, backbone, size, limits);
  checkWork(estimate, input, limits.maxWork);
}

/**
 * The limits of a request with several images (`images`), checked on the whole request before any
 * image is decoded: every image's size from its header, then the outputs of all boxes against
 * `MAX_OUTPUT_VALUES` and every image's backbone pass plus its boxes' ops against `MAX_WORK` (each
 * image is checked again on its own as it runs, which the whole passing implies).
 *
 * @param tasks - one task per image (its image and the boxes that pick it), from `executeImages`
 * @throws TooLargeError naming `images` (or `boxes` for the outputs); the header errors of an image,
 *   field `image` (`executeImages` renames them `images[i]`), wrapped by `perImage`
 */
export async function checkImagesRequest(
  task: DecodedRoiTask,
  tasks: readonly DecodedRoiTask[],
  ctx: PipelineContext,
  perImage: <T>(i: number, run: () => Promise<T>) => Promise<T>,
): Promise<void> {
  const backbone = await ctx.backbone();
  const { params } = task;
  const channels = params.pyramid && backbone.pyramid ? backbone.pyramid.channels : backbone.channels;
  checkOutputValues(task.boxes.count, channels, params.outputSize, params.ops, ctx.limits);
  const estimates: ReturnType<typeof imageRoiWork>[] = [];
  for (const [i, one] of tasks.entries()) {
    const size = await perImage(i, () =>
      readImageSize(one.image as Uint8Array, {
        limitInputPixels: ctx.limits.maxImagePixels,
        maxSide: params.maxSide ?? ctx.limits.maxImageSide,
        field: 'image',
      }),
    );
    const scaled: ImageSize = {
      ...size,
      scaleX: size.width / size.originalWidth,
      scaleY: size.height / size.originalHeight,
    };
    estimates.push(imageRoiWork(one, backbone, scaled, ctx.limits));
  }
  checkImagesWork(estimates, ctx.limits.maxWork);
}

/** Rotated boxes in the resized image's frame: centres by each axis' factor, sizes by their geometric mean. */
export function scaleRotated(rotated: RotatedBoxes, sx: number, sy: number): RotatedBoxes {
  if (sx === 1 && sy === 1) return rotated;
  const data = Float32Array.from(rotated.data);
  const s = Math.sqrt(sx * sy);
  for (let k = 0; k < rotated.count; k++) {
    const o = 6 * k;
    data[o + 1] *= sx;
    data[o + 2] *= sy;
    data[o + 3] *= s;
    data[o + 4] *= s;
  }
  return { data, count: rotated.count };
}

/**
 * The work budget: a cost model that says, before any work is done, roughly how much CPU a request
 * will take, so that a 7 KB request asking for an hour of kernels is refused (413) instead of queued.
 *
 * Pure (no fastify, sharp or tfjs): the HTTP thread runs it for `features` input as soon as the shapes
 * are known, the worker runs it for `image` input right after decoding (once the map size is known),
 * before the backbone and the kernels.
 *
 * Each kernel's model (what one op reads on one map) is in `./kernel-work.ts`; here: a request's ops
 * on one map or a pyramid (each box on the level the level mapping gives it, each level with boxes as
 * one map), the backbone (multiply-adds per pixel · width · height, image input only), several images
 * (their sum), and the checks against `MAX_WORK` with messages naming what to reduce. So the default
 * `MAX_WORK` of 5e10 is roughly 10 to 30 seconds of one core (see `kernel-work.ts` for the units).
 */
import { TooLargeError } from '../errors.js';
import { denormalizeBoxes } from '../ops/boxes.js';
import { mapLevels, mapRotatedLevels } from '../ops/multiscale.js';
import { V1_OPERATORS, type RoiOp } from '../ops/registry.js';
import type { Boxes } from '../ops/types.js';
import {
  opOutputChannels,
  opWork,
  type OpsWorkInput,
  type OpWork,
  type PyramidWorkInput,
} from './kernel-work.js';

export {
  ALIGN_BIN_COST,
  alignWork,
  AXIS_SAMPLE_COST,
  OUTPUT_COST,
  paddedChannels,
  POOL_BIN_COST,
  poolWork,
  PS_TAP_COST,
  psAlignWork,
  psPoolWork,
  TAP_OVERHEAD,
  TAP_OVERHEAD_POOL,
  type OpsWorkInput,
  type OpWork,
  type PyramidWorkInput,
} from './kernel-work.js';

/** The whole estimate, by part; `total` is what {@link checkWork} compares with `MAX_WORK`. */
export interface WorkEstimate {
  total: number;
  backbone: number;
  ops: Partial<Record<RoiOp, OpWork>>;
}

/**
 * One op on a pyramid: the boxes grouped by the level the level mapping gives them (`mapLevels`, or
 * `mapRotatedLevels` for `rotated_align`: what `multiScaleRoi` runs), each group costed on its level's
 * map at its scale, copy-in included, and only levels that have boxes (the kernels skip the others;
 * with no box, the finest once). A pyramid the kernels will refuse (scales not consecutive powers of
 * two) is costed on its finest map: an upper bound of the grids and cells.
 */
function pyramidWork(op: RoiOp, input: OpsWorkInput, pyramid: PyramidWorkInput): OpWork {
  const { shapes, scales, levelMapping } = pyramid;
  const L = scales.length;
  const kMin = -Math.log2(scales[0]);
  const consecutive =
    L === shapes.length && Number.isInteger(kMin) && scales.every((x, i) => x === 2 ** -(kMin + i));
  const single: OpsWorkInput = { ...input, pyramid: undefined };
  if (!consecutive) return opWork(op, single);
  const levels =
    op === 'rotated_align' && input.rotated
      ? mapRotatedLevels(input.rotated, levelMapping, kMin, kMin + L - 1)
      : mapLevels(input.boxes, levelMapping, kMin, kMin + L - 1);
  const total: OpWork = { taps: 0, samples: 0, units: 0 };
  const K = input.boxes.count;
  for (let i = 0; i < L; i++) {
    const rows: number[] = [];
    for (let k = 0; k < K; k++) if (levels[k] === kMin + i) rows.push(k);
    if (rows.length === 0 && !(K === 0 && i === 0)) continue;
    const data = new Float32Array(5 * rows.length);
    rows.forEach((k, j) => data.set(input.boxes.data.subarray(5 * k, 5 * k + 5), 5 * j));
    const w = opWork(op, {
      ...single,
      boxes: { data, count: rows.length },
      mapShape: shapes[i],
      spatialScale: scales[i],
    });
    total.taps += w.taps;
    total.samples += w.samples;
    total.units += w.units;
  }
  return total;
}

/**
 * The backbone's multiply-adds per input pixel, from its description (multiply-adds at a reference
 * size). Convolutions cost in proportion to the pixels, so this scales to any size.
 */
export function multiplyAddsPerPixel(description: {
  totalMultiplyAdds: number;
  referenceInput: readonly [number, number];
}): number {
  const [h, w] = description.referenceInput;
  return description.totalMultiplyAdds / (h * w);
}

/**
 * The estimate of a request: the requested ops on the map, plus the backbone on `image` pixels when
 * the input is an image.
 *
 * @param input - the ops' shapes and parameters
 * @param backbone - image input only: the backbone's multiply-adds per pixel and the (resized) image size
 */
export function estimateWork(
  input: OpsWorkInput,
  backbone?: { multiplyAddsPerPixel: number; width: number; height: number },
): WorkEstimate {
  const ops: WorkEstimate['ops'] = {};
  for (const op of input.ops) {
    ops[op] = input.pyramid ? pyramidWork(op, input, input.pyramid) : opWork(op, input);
  }
  const backboneUnits = backbone ? backbone.multiplyAddsPerPixel * backbone.width * backbone.height : 0;
  const total = backboneUnits + Object.values(ops).reduce((sum, w) => sum + w.units, 0);
  return { total, backbone: backboneUnits, ops };
}

/**
 * The estimate of a RoI request from its parameters, with the {@link OpsWorkInput} it was made from
 * (which {@link checkWork} and {@link describeWork} read for their messages).
 *
 * @param params - the request's op parameters (`RoiParams` from `src/core/task.ts`)
 * @param limits - `maxSamplingGrid`
 */
export function estimateRoiWork(
  boxes: Boxes,
  mapShape: readonly [number, number, number, number],
  spatialScale: number,
  params: Pick<OpsWorkInput, 'ops' | 'outputSize' | 'samplingRatio' | 'aligned' | 'mode'>,
  limits: { maxSamplingGrid: number },
  backbone?: { multiplyAddsPerPixel: number; width: number; height: number },
  extra: Pick<OpsWorkInput, 'pyramid' | 'rotated'> = {},
): { estimate: WorkEstimate; input: OpsWorkInput } {
  const input: OpsWorkInput = {
    ...extra,
    boxes,
    mapShape,
    spatialScale,
    ops: params.ops,
    outputSize: params.outputSize,
    samplingRatio: params.samplingRatio,
    aligned: params.aligned,
    mode: params.mode,
    maxSamplingGrid: limits.maxSamplingGrid,
  };
  return { estimate: estimateWork(input, backbone), input };
}

/**
 * Estimates and checks a RoI request in one call: {@link estimateRoiWork} then {@link checkWork}.
 *
 * @param params - the request's op parameters (`RoiParams` from `src/core/task.ts`)
 * @param limits - `maxWork` (`MAX_WORK`) and `maxSamplingGrid`
 * @returns the estimate (for logs and `Server-Timing`-like reporting)
 * @throws TooLargeError (413) over `maxWork`
 */
export function checkRoiWork(
  boxes: Boxes,
  mapShape: readonly [number, number, number, number],
  spatialScale: number,
  params: Pick<OpsWorkInput, 'ops' | 'outputSize' | 'samplingRatio' | 'aligned' | 'mode'>,
  limits: { maxWork: number; maxSamplingGrid: number },
  backbone?: { multiplyAddsPerPixel: number; width: number; height: number },
  extra: Pick<OpsWorkInput, 'pyramid' | 'rotated'> = {},
): WorkEstimate {
  const { estimate, input } = estimateRoiWork(boxes, mapShape, spatialScale, params, limits, backbone, extra);
  checkWork(estimate, input, limits.maxWork);
  return estimate;
}

/**
 * The boxes in pixels of their frame, which is what the model counts in: boxes sent `normalized` are
 * fractions of it (a 0..1 box would otherwise look one pixel wide, and its cost vanish).
 *
 * @param frame - `[width, height]` of the frame: the image as sent, or for a feature map its
 *   `imageSize` (default: the area the map covers, `[W / spatialScale, H / spatialScale]`)
 */
export function boxesInPixels(boxes: Boxes, normalized: boolean, frame: readonly [number, number]): Boxes {
  return normalized ? denormalizeBoxes(boxes, frame[0], frame[1]) : boxes;
}

/** A feature map's frame: `imageSize` when given, else the area the map covers at `spatialScale`. */
export function featureMapFrame(
  mapShape: readonly [number, number, number, number],
  spatialScale: number,
  imageSize: readonly [number, number] | undefined,
): readonly [number, number] {
  return imageSize ?? [mapShape[3] / spatialScale, mapShape[2] / spatialScale];
}

const sci = (n: number): string => n.toExponential(1);

/** The estimate by part, for messages: `backbone 7.7e+6 multiply-adds; align 1.2e+9 (…)`. */
export function describeWork(estimate: WorkEstimate, input: OpsWorkInput): string {
  const K = input.boxes.count;
  const [, C] = input.mapShape;
  const [PH, PW] = input.outputSize;
  const parts: string[] = [];
  if (estimate.backbone > 0) parts.push(`backbone ${sci(estimate.backbone)} multiply-adds`);
  for (const [op, w] of Object.entries(estimate.ops) as [RoiOp, OpWork][]) {
    const ps = V1_OPERATORS[op].positionSensitive;
    const channels = ps ? `C/(PH·PW)=${opOutputChannels(op, C, input.outputSize)}` : `C=${C}`;
    const what =
      V1_OPERATORS[op].reads === 'cells'
        ? `${sci(w.taps)} cells read × ${channels}`
        : input.mode === 'avg' && !ps
          ? `${sci(w.taps)} merged taps × ${channels}`
          : `K=${K} · PH·PW=${PH * PW} · ${sci(w.samples / Math.max(K * PH * PW, 1))} samples/bin · 4 taps × ${channels}`;
    parts.push(`${op} ${sci(w.units)} (${what})`);
  }
  return parts.join('; ');
}

/**
 * Refuses (413) a request whose estimate exceeds `maxWork`, with the estimate by part and what to
 * change. Nothing has run yet when this throws.
 *
 * @param estimate - from {@link estimateWork}
 * @param input - the same input (for the message's K, C, PH·PW and grid)
 * @param maxWork - `MAX_WORK`
 * @throws TooLargeError (field `boxes`)
 */
export function checkWork(estimate: WorkEstimate, input: OpsWorkInput, maxWork: number): void {
  if (estimate.total <= maxWork) return;
  throw new TooLargeError(
    `this request would cost ~${sci(estimate.total)} work units (${describeWork(estimate, input)}), over MAX_WORK=${sci(maxWork)}`,
    'boxes',
    `an estimated cost <= ${sci(maxWork)} work units: use fewer boxes, a smaller outputSize or samplingRatio, or a smaller feature map / image`,
  );
}

/**
 * Refuses (413) a request with several images (`images`) whose images together exceed `maxWork`:
 * the limit protects the service, so the whole request counts (every image's backbone pass and every
 * box's kernels), not each image on its own (8 images would otherwise do 8 × `MAX_WORK`). Nothing has
 * run yet when this throws: the pipeline calls it with the sizes from the images' headers.
 *
 * @param perImage - each image's estimate (its backbone and its boxes' ops) with its input, in order
 * @param maxWork - `MAX_WORK`
 * @returns the request's total
 * @throws TooLargeError (field `images`) naming each image's share
 */
export function checkImagesWork(
  perImage: readonly { estimate: WorkEstimate; input: OpsWorkInput }[],
  maxWork: number,
): number {
  const total = perImage.reduce((sum, p) => sum + p.estimate.total, 0);
  if (total <= maxWork) return total;
  const parts = perImage.map(
    (p, i) => `images[${i}] ~${sci(p.estimate.total)}: ${describeWork(p.estimate, p.input)}`,
  );
  throw new TooLargeError(
    `this request would cost ~${sci(total)} work units over its ${perImage.length} images (${parts.join('; ')}), over MAX_WORK=${sci(maxWork)}`,
    'images',
    `an estimated cost <= ${sci(maxWork)} work units for all images together: send fewer or smaller images (or a smaller maxSide) per request, fewer boxes, a smaller outputSize or samplingRatio`,
  );
}

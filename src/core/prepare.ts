/**
 * {@link prepareRoi}: the checks of a {@link RoiInput} that need no decoding (one of image/features,
 * limits from the config, the work budget when the shapes are known) and its boxes in canonical form,
 * giving the {@link RoiTask} a worker runs; plus the limit checks the worker repeats once it knows what
 * only decoding tells (`checkFeatureMapRequest`, `checkOutputValues`, `layoutWarnings`).
 */
import { InvalidInputError, TooLargeError } from '../errors.js';
import { toCanonicalBoxes, type BoxFormat } from '../ops/boxes.js';
import { operator, ROI_OPS, type RoiOp } from '../ops/registry.js';
import { toRotatedBoxes, type RotatedBoxes } from '../ops/rotated_roi_align.js';
import type { Boxes, Layout } from '../ops/types.js';
import { size, type RoiWarning } from '../warnings.js';
import {
  knownFeatureShape,
  logicalShape,
  type FeaturesInput,
  type RoiInput,
  type RoiLimits,
  type RoiParams,
  type RoiTask,
} from './task.js';
import { uprightBoxes } from './run-ops.js';
import { opOutputChannels } from './kernel-work.js';
import { boxesInPixels, checkRoiWork, featureMapFrame } from './work-budget.js';

/**
 * Checks an input beyond its types (one of image/features, limits from the config) and converts the
 * boxes to canonical form: the HTTP-thread half of the work, cheap (it
 * grows with the box count, never with the image or feature bytes), so that most bad requests never
 * reach a worker. The inputs stay as sent; the worker decodes and checks them (`decodeRoiTask`).
 *
 * @param body - the typed input (a `/v1` body through `roiInputOf`, or a caller's own values)
 * @param limits - from `limitsFrom`
 * @param includeImage - ask the worker to return the decoded RGB image; default false
 * @param rotatedAsUpright - `/v1/diff`: rotated boxes (`cxcywha`) are drawn as such, and the upright
 *   operators read their upright bounding boxes (elsewhere only `rotated_align` takes them)
 * @throws InvalidInputError (400) or TooLargeError (413), naming the field
 */
export function prepareRoi(
  body: RoiInput,
  limits: RoiLimits,
  includeImage = false,
  rotatedAsUpright = false,
): RoiTask {
  const images = body.images;
  if (images !== undefined && body.image !== undefined) {
    throw new InvalidInputError(
      'give either image or images, not both',
      'images',
      'one image as `image`, or several as `images`',
    );
  }
  // `images` is an image input like `image` for every check below; boxes pick one by their batch index.
  const hasImage = body.image !== undefined || images !== undefined;
  const hasFeatures = body.features !== undefined;
  if (hasImage === hasFeatures) {
    throw new InvalidInputError(
      hasImage ? 'give either image or features, not both' : 'missing input: give image or features',
      hasImage ? 'features' : 'image',
      'exactly one of `image` (an encoded image) or `features` (a feature map)',
    );
  }
  if (hasFeatures && body.spatialScale === undefined) {
    throw new InvalidInputError(
      'spatialScale is required with features',
      'spatialScale',
      'a positive number: feature-map cells per image pixel (1/stride)',
    );
  }
  if (hasImage && body.spatialScale !== undefined) {
    throw new InvalidInputError(
      'spatialScale is set by the backbone (1/stride) when the input is an image',
      'spatialScale',
      'no spatialScale with `image` (only with `features`)',
    );
  }
  if (hasFeatures && body.maxSide !== undefined) {
    throw new InvalidInputError(
      'maxSide resizes an image; with features there is no image to resize',
      'maxSide',
      'no maxSide with `features` (only with `image`)',
    );
  }
  const maxSide = resolveMaxSide(body.maxSide, limits.maxImageSide);
  if (hasImage && body.imageSize !== undefined) {
    throw new InvalidInputError(
      'imageSize comes from the decoded image when the input is an image',
      'imageSize',
      'no imageSize with `image` (only with `features`)',
    );
  }
  const outputSize: [number, number] =
    typeof body.outputSize === 'number' ? [body.outputSize, body.outputSize] : [...body.outputSize];
  outputSize.forEach((side, i) => {
    if (side > limits.maxOutputSide) {
      throw new InvalidInputError(
        `outputSize ${side} exceeds the limit ${limits.maxOutputSide}`,
        typeof body.outputSize === 'number' ? 'outputSize' : `outputSize[${i}]`,
        `an integer from 1 to ${limits.maxOutputSide}`,
      );
    }
  });
  if (body.samplingRatio > limits.maxSamplingGrid) {
    throw new InvalidInputError(
      `samplingRatio ${body.samplingRatio} exceeds the limit ${limits.maxSamplingGrid}`,
      'samplingRatio',
      `an integer <= ${limits.maxSamplingGrid} (<= 0 = adaptive)`,
    );
  }
  if (body.boxes.length > limits.maxBoxes) {
    throw new TooLargeError(
      `${body.boxes.length} boxes exceed the limit of ${limits.maxBoxes} per request`,
      'boxes',
      `at most ${limits.maxBoxes} boxes`,
    );
  }
  const ops = ROI_OPS.filter((op) => body.ops.includes(op));
  const levels = pyramidOf(body);
  const features: FeaturesInput | undefined = levels ? levels.features[0] : (body.features as FeaturesInput);
  const task = { features } as RoiTask;
  const shape = knownFeatureShape(task);
  // Batch indices are checked against N in the worker, after the map is decoded (a `.npy` map's N is in
  // its header; and a map's own errors come first, as they always did).
  const batchSize = features ? Infinity : (images?.length ?? 1);
  const clockwise = body.clockwise ?? false;
  const rotatedInput = body.boxFormat === 'cxcywha';
  checkBoxKinds(ops, rotatedInput, body.normalized, rotatedAsUpright);
  const rotated = rotatedInput ? toRotatedBoxes(body.boxes, { batchSize, field: 'boxes' }) : undefined;
  // Rotated boxes: their upright bounding boxes stand for them wherever an upright box is read (the
  // frame's warnings, the work budget, coverage's upright operators).
  const boxes = rotated
    ? uprightBoxes(rotated, clockwise)
    : toCanonicalBoxes(body.boxes, { format: body.boxFormat as BoxFormat, batchSize, field: 'boxes' });
  if (body.pyramid && !hasImage) {
    throw new InvalidInputError(
      "pyramid asks for the backbone's feature pyramid of an image; with features, send the pyramid's maps as a list",
      'pyramid',
      'pyramid only with `image`',
    );
  }
  const params: RoiParams = {
    ops,
    boxFormat: body.boxFormat,
    clockwise,
    levelMapping: body.levelMapping,
    pyramid: body.pyramid ?? false,
    spatialScales: levels?.scales,
    normalized: body.normalized,
    outputSize,
    samplingRatio: body.samplingRatio,
    aligned: body.aligned,
    mode: body.mode,
    spatialScale: levels ? levels.scales[0] : (body.spatialScale as number | undefined),
    imageSize: body.imageSize === undefined ? undefined : [body.imageSize[0], body.imageSize[1]],
    maxSide: hasImage ? maxSide.maxSide : undefined,
  };
  // The shapes are known: refuse an over-budget request here, before it takes a queue slot (a
  // `.npy` map's shape is in its header: the worker checks it once read, see `decodeRoiTask`).
  // A pyramid's levels are costed each on its own map: all their shapes must be known here.
  const levelShapes = levels?.features.map((f) => knownFeatureShape({ features: f } as RoiTask));
  if (shape && !levelShapes?.includes(undefined)) {
    checkFeatureMapRequest(boxes, shape, params, limits, {
      levelShapes: levelShapes as [number, number, number, number][] | undefined,
      rotated,
    });
  }
  return {
    image: body.image,
    ...(images ? { images: [...images] } : {}),
    features,
    ...(levels ? { levelFeatures: levels.features } : {}),
    ...(rotated ? { rotated } : {}),
    boxes,
    params,
    includeImage,
    // layout-suspect warnings come from the pipeline, which knows a .npy map's shape.
    warnings: [...maxSide.warnings, ...ignoredFieldWarnings(body, levels !== undefined)],
  };
}

/**
 * Fields that change nothing in this request (`field-ignored`): `levelMapping` without a pyramid (one
 * map: every box is pooled from it) and `clockwise: true` without rotated boxes (upright boxes have no
 * angle). Served anyway, but a careless client learns its setting did not apply.
 */
function ignoredFieldWarnings(body: RoiInput, hasLevels: boolean): RoiWarning[] {
  const warnings: RoiWarning[] = [];
  if (body.levelMapping !== undefined && !hasLevels && !body.pyramid) {
    warnings.push({
      code: 'field-ignored',
      field: 'levelMapping',
      message:
        'levelMapping picks each box a pyramid level; this request has one map, so it is ignored (send features as a list of maps, or pyramid: true with an image)',
    });
  }
  if (body.clockwise === true && body.boxFormat !== 'cxcywha') {
    warnings.push({
      code: 'field-ignored',
      field: 'clockwise',
      message: `clockwise turns rotated boxes (boxFormat cxcywha); boxFormat ${body.boxFormat} boxes have no angle, so it is ignored`,
    });
  }
  return warnings;
}

/**
 * A pyramid of maps (`features` a list): its levels and scales, each list as long as the other. A single
 * map with a list of scales, or a list of maps with one scale, is refused naming `spatialScale`. The
 * scales' values (powers of two, consecutive) and the maps' shapes (same N and C) are checked by the
 * kernels (`multiScaleRoi`), naming `spatialScale[i]` and `features[i].shape`.
 *
 * @returns undefined for a single map (or an image)
 */
function pyramidOf(body: RoiInput): { features: FeaturesInput[]; scales: number[] } | undefined {
  const scale = body.spatialScale;
  if (!Array.isArray(body.features)) {
    if (Array.isArray(scale) && body.features !== undefined) {
      throw new InvalidInputError(
        `spatialScale is a list of ${scale.length} scales but features is one map: a list of scales goes with a list of maps (a pyramid)`,
        'spatialScale',
        'one number with one map, or a list as long as the list of maps',
      );
    }
    return undefined;
  }
  const maps = body.features as readonly FeaturesInput[];
  if (!Array.isArray(scale) || scale.length !== maps.length) {
    throw new InvalidInputError(
      `features is a list of ${maps.length} maps: spatialScale must be a list of ${maps.length} scales, one per map, finest first; got ${JSON.stringify(scale ?? null)}`,
      'spatialScale',
      `${maps.length} powers of two, finest first (e.g. ${[0.25, 0.125, 0.0625, 0.03125].slice(0, maps.length).join(', ')})`,
    );
  }
  return { features: [...maps], scales: [...(scale as readonly number[])] };
}

/**
 * Rotated boxes (`boxFormat: cxcywha`) go only to the operators that read them (`rotated_align`), and
 * that one only takes them: anything else is a 400 naming `boxFormat`. Normalized rotated boxes are
 * refused (`normalized`): a rectangle turned by an angle and scaled by a different factor along x and y
 * is no longer a rectangle.
 */
function checkBoxKinds(
  ops: readonly RoiOp[],
  rotated: boolean,
  normalized: boolean,
  rotatedAsUpright: boolean,
): void {
  const wrong = ops.filter(
    (op) => (operator(op).boxColumns === 6) !== rotated && !(rotated && rotatedAsUpright),
  );
  if (wrong.length > 0) {
    throw new InvalidInputError(
      rotated
        ? `${wrong.join(', ')} ${wrong.length > 1 ? 'take' : 'takes'} upright boxes; boxFormat cxcywha gives rotated boxes, which only rotated_align reads`
        : `rotated_align takes rotated boxes: send boxFormat "cxcywha" with rows (cx, cy, w, h, angle)`,
      'boxFormat',
      rotated
        ? 'ops: ["rotated_align"] with boxFormat cxcywha'
        : 'boxFormat "cxcywha" with rotated_align (and no upright op in the same request)',
    );
  }
  if (rotated && normalized) {
    throw new InvalidInputError(
      'normalized is not supported with rotated boxes (cxcywha): send them in pixels',
      'normalized',
      'normalized false with boxFormat cxcywha',
    );
  }
}

/** Whether a map of `h × w` cells plausibly covers `imageSize` at `spatialScale` (backbones pad and round). */
function mapFits(h: number, w: number, imageSize: readonly [number, number], spatialScale: number): boolean {
  const near = (cells: number, expected: number) => Math.abs(cells - expected) <= Math.max(2, 0.1 * expected);
  return near(h, imageSize[1] * spatialScale) && near(w, imageSize[0] * spatialScale);
}

/**
 * The one cheap check of a mislabelled layout: with `imageSize` the map's H × W is roughly known
 * (`imageSize × spatialScale`). When the shape read in the declared layout does not fit it and the
 * shape read in the other layout does, say so (`layout-suspect`). Without `imageSize` nothing tells the
 * two readings apart, so nothing is said.
 */
export function layoutWarnings(
  shape: readonly [number, number, number, number],
  layout: Layout,
  imageSize: readonly [number, number],
  spatialScale: number,
): RoiWarning[] {
  const other: Layout = layout === 'NCHW' ? 'NHWC' : 'NCHW';
  const [, , h, w] = logicalShape(shape, layout);
  const [, , oh, ow] = logicalShape(shape, other);
  if (mapFits(h, w, imageSize, spatialScale) || !mapFits(oh, ow, imageSize, spatialScale)) return [];
  const expected = size(imageSize[0] * spatialScale, imageSize[1] * spatialScale);
  return [
    {
      code: 'layout-suspect',
      field: 'features.layout',
      message:
        `features.shape [${shape.join(', ')}] read as ${layout} gives a ${w}×${h} map (W×H), but imageSize × ` +
        `spatialScale expects about ${expected}; read as ${other} it would be ${ow}×${oh}. Did you mean layout ` +
        `"${other}"? (shape is the array's shape as stored: [N, H, W, C] for NHWC)`,
    },
  ];
}

/**
 * The longest side an image is shrunk to: the request's `maxSide` capped by the server's
 * `MAX_IMAGE_SIDE`. A request over the cap is served at the cap with a `max-side-capped` warning rather
 * than refused: `maxSide` is an upper bound, and an image shrunk to the cap satisfies it too.
 *
 * @param requested - the request's `maxSide`, if any
 * @param cap - `MAX_IMAGE_SIDE`, if set
 * @returns the side to use (undefined: keep the size) and the warning, if capped
 */
export function resolveMaxSide(
  requested: number | undefined,
  cap: number | undefined,
): { maxSide: number | undefined; warnings: RoiWarning[] } {
  if (requested === undefined || cap === undefined || requested <= cap) {
    return { maxSide: requested ?? cap, warnings: [] };
  }
  return {
    maxSide: cap,
    warnings: [
      {
        code: 'max-side-capped',
        field: 'maxSide',
        message: `maxSide ${requested} is over this server's MAX_IMAGE_SIDE of ${cap}: images are shrunk so their longer side is at most ${cap}`,
      },
    ],
  };
}

/**
 * Values in a request's outputs: K·C·PH·PW per op, summed over the ops, with each op's own output
 * channels ({@link opOutputChannels}); `ops` a count: that many ops of `C` channels.
 */
export function outputValueCount(
  boxCount: number,
  channels: number,
  outputSize: readonly [number, number],
  ops: number | readonly RoiOp[],
): number {
  const perOp = boxCount * outputSize[0] * outputSize[1];
  if (typeof ops === 'number') return perOp * channels * ops;
  return ops.reduce((sum, op) => sum + perOp * opOutputChannels(op, channels, outputSize), 0);
}

/**
 * The size checks of a feature-map request once the map's shape is known: the output against
 * `MAX_OUTPUT_VALUES`, then the work budget (`MAX_WORK`) with the boxes in pixels. One place for both
 * input forms: `prepareRoi` runs it on the HTTP thread when the shape came with the JSON, and
 * `decodeRoiTask` in the worker for a `.npy` map, whose shape only its header tells.
 *
 * @throws TooLargeError naming what to change
 */
export function checkFeatureMapRequest(
  boxes: Boxes,
  shape: readonly [number, number, number, number],
  params: RoiParams,
  limits: RoiLimits,
  extra: {
    /** A pyramid's `[N, C, H, W]` per level (finest first, `shape` the first): boxes costed on their level. */
    levelShapes?: readonly (readonly [number, number, number, number])[];
    rotated?: RotatedBoxes;
  } = {},
): void {
  checkOutputValues(boxes.count, shape[1], params.outputSize, params.ops, limits);
  const s = params.spatialScale as number;
  const frame = featureMapFrame(shape, s, params.imageSize);
  const pyramid =
    extra.levelShapes && params.spatialScales
      ? { shapes: extra.levelShapes, scales: params.spatialScales, levelMapping: params.levelMapping }
      : undefined;
  checkRoiWork(boxesInPixels(boxes, params.normalized, frame), shape, s, params, limits, undefined, {
    pyramid,
    rotated: extra.rotated,
  });
}

/**
 * Refuses requests whose outputs would exceed `limits.maxOutputValues` ({@link outputValueCount}).
 *
 * @throws TooLargeError (field `boxes`)
 */
export function checkOutputValues(
  boxCount: number,
  channels: number,
  outputSize: readonly [number, number],
  ops: number | readonly RoiOp[],
  limits: Pick<RoiLimits, 'maxOutputValues'>,
): void {
  const values = outputValueCount(boxCount, channels, outputSize, ops);
  if (values > limits.maxOutputValues) {
    const opCount = typeof ops === 'number' ? ops : ops.length;
    const ps = typeof ops !== 'number' && ops.some((op) => operator(op).positionSensitive);
    throw new TooLargeError(
      `the outputs would hold ${values} values (K=${boxCount} · C=${channels}${ps ? ' (the ps ops: C/(PH·PW))' : ''} · PH·PW=${outputSize[0] * outputSize[1]} · ops=${opCount}), over the limit of ${limits.maxOutputValues}`,
      'boxes',
      `K · C · PH · PW · ops <= ${limits.maxOutputValues}: fewer boxes, ops or a smaller outputSize`,
    );
  }
}

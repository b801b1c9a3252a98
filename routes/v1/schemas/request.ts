/**
 * The request schemas of `/v1/roi` and `/v1/diff` (zod; the OpenAPI document is generated from them),
 * and {@link roiInputOf}, which turns a validated body (and a multipart request's file parts) into the
 * core's typed {@link RoiInput}. One schema serves both content types: a `multipart/form-data` body is
 * first turned into the JSON shape by `multipartToJsonBody` (`src/http/multipart.ts`), then validated
 * like JSON.
 */
import { z } from 'zod';
import {
  MAX_IMAGES,
  MAX_LEVELS,
  ROI_BOX_FORMATS,
  ROI_DEFAULTS,
  type FeaturesInput,
  type RoiInput,
} from '../../../src/core/task.js';
import type { BinaryParts } from '../../../src/http/multipart.js';
import { COMPARED_OPS, LEVEL_MAPPING_DEFAULTS, LEVEL_RULES, ROI_OPS } from '../../../src/ops/index.js';
import { OUTPUT_DTYPES } from '../../../src/tensors/float16.js';

const positiveInt = z.number().int().positive();

/**
 * `features` in JSON: a float32 feature map as base64 little-endian bytes.
 *
 * `shape` is the array's shape as stored, in `layout` order: `[N, C, H, W]` for NCHW, `[N, H, W, C]`
 * for NHWC, exactly what `array.shape` says in numpy, PyTorch or TensorFlow. (Until this was fixed the
 * shape was always read as `[N, C, H, W]`, so a TensorFlow user's own `[N, H, W, C]` shape was
 * silently misread: the element count matches either way.)
 */
export const featuresJsonSchema = z
  .strictObject({
    shape: z
      .tuple([positiveInt, positiveInt, positiveInt, positiveInt])
      .describe(
        'the array shape as stored, in `layout` order: [N, C, H, W] for NCHW, [N, H, W, C] for NHWC ' +
          '(numpy / TensorFlow `.shape`)',
      ),
    layout: z
      .enum(['NCHW', 'NHWC'])
      .default(ROI_DEFAULTS.layout)
      .describe(
        'memory order of `data` and order of `shape`: NCHW (PyTorch, ONNX) or NHWC (TensorFlow, channels-last)',
      ),
    data: z
      .string()
      .describe('base64 of little-endian float32 values, row-major in `layout` order (product of `shape`)'),
  })
  .meta({
    id: 'FeatureMap',
    description: 'a ready feature map (instead of `image`); requires `spatialScale`',
  });

/** `maxSide`: shared by `/v1/roi`, `/v1/diff` and `/v1/features`. */
export const maxSideField = positiveInt
  .optional()
  .describe(
    'shrink the image so its longer side is at most this many pixels (never enlarges); boxes stay in the ' +
      "pixels you sent. Capped by the server's MAX_IMAGE_SIDE: a larger value uses the cap, with a " +
      'max-side-capped warning. Only with `image`',
  );

/**
 * The input fields shared by `/v1/roi` and `/v1/diff` (spread them into a `z.strictObject`).
 * Defaults are filled in by zod; limits that depend on the config are checked in {@link prepareRoi}.
 */
export const roiInputFields = {
  image: z
    .string()
    .min(1)
    .optional()
    .describe('an encoded image (PNG, JPEG, WebP, GIF, TIFF, AVIF), base64; or a file part in multipart'),
  images: z
    .array(z.string().min(1))
    .min(1)
    .max(MAX_IMAGES)
    .optional()
    .describe(
      'instead of `image`: several encoded images (base64; multipart: repeated `images` file parts, in order). ' +
        'A box row of 5 numbers picks its image by its first (the batch index); each image goes through the ' +
        'backbone on its own (sizes may differ) and its coverage is clipped to it',
    ),
  features: z
    .union([featuresJsonSchema, z.array(featuresJsonSchema).min(1).max(MAX_LEVELS)])
    .optional()
    .describe(
      'one feature map, or a pyramid: a list of maps, finest first, same N and C, with `spatialScale` a list ' +
        'of the same length (powers of two); each box is pooled on its level (see `levelMapping`). ' +
        'Multipart: repeated `features` parts, in order',
    ),
  boxes: z
    .array(z.array(z.number()).min(4).max(6))
    .describe(
      'rows of 4 numbers in `boxFormat`, or 5 with the batch index first; input-image pixels (fractions with ' +
        '`normalized`). With boxFormat cxcywha: 5 (cx, cy, w, h, angle) or 6 with the batch index first',
    ),
  boxFormat: z
    .enum(ROI_BOX_FORMATS)
    .default(ROI_DEFAULTS.boxFormat)
    .describe(
      'xyxy = (x1, y1, x2, y2); xywh = top-left + size; cxcywh = centre + size; yxyx = (y1, x1, y2, x2), ' +
        "TensorFlow's crop_and_resize order; cxcywha = rotated boxes (cx, cy, w, h, angle), angle in degrees " +
        'counter-clockwise as seen in the image (only `rotated_align` reads them)',
    ),
  clockwise: z
    .boolean()
    .default(ROI_DEFAULTS.clockwise)
    .describe(
      "rotated boxes: the angle turns clockwise (mmcv's flag; detectron2's angle is counter-clockwise)",
    ),
  levelMapping: z
    .strictObject({
      rule: z
        .enum(LEVEL_RULES)
        .default(LEVEL_MAPPING_DEFAULTS.rule)
        .describe(
          'torchvision: floor(L0 + log2(s / S0) + 1e-6); detectron2: floor(L0 + log2(s / S0 + 1e-8))',
        ),
      canonicalBoxSize: z
        .number()
        .positive()
        .default(LEVEL_MAPPING_DEFAULTS.canonicalBoxSize)
        .describe('S0: the box size (sqrt of its area) of level L0'),
      canonicalLevel: z
        .number()
        .int()
        .min(-64)
        .max(64)
        .default(LEVEL_MAPPING_DEFAULTS.canonicalLevel)
        .describe('L0'),
    })
    .optional()
    .describe('with a pyramid: how a box picks its level (FPN Eq. 1), s = sqrt(box area) in image pixels'),
  pyramid: z
    .boolean()
    .default(ROI_DEFAULTS.pyramid)
    .describe(
      "with `image`: pool from the backbone's feature pyramid (the built-in one: strides 8, 16, 32), each box on its level",
    ),
  normalized: z
    .boolean()
    .default(ROI_DEFAULTS.normalized)
    .describe(
      'coordinates are fractions of the image size: x × width, y × height give pixels. The image as sent ' +
        '(before any resize); with `features`: `imageSize`, or the area the map covers (W / spatialScale × ' +
        'H / spatialScale). Echoed `boxes` are in pixels',
    ),
  ops: z
    .array(z.enum(ROI_OPS))
    .min(1)
    .default([...COMPARED_OPS])
    .describe(
      `operators to run (default ${COMPARED_OPS.join(', ')}); duplicates are ignored, results come in the order ` +
        `${ROI_OPS.join(', ')}. ps_align / ps_pool need C a multiple of PH·PW; rotated_align needs boxFormat cxcywha`,
    ),
  outputSize: z
    .union([positiveInt, z.tuple([positiveInt, positiveInt])])
    .default(ROI_DEFAULTS.outputSize)
    .describe('PH = PW, or [PH, PW]'),
  samplingRatio: z
    .number()
    .int()
    .default(ROI_DEFAULTS.samplingRatio)
    .describe('sampling points per bin and axis for align and warp; <= 0 = adaptive ceil(roi / output)'),
  aligned: z
    .boolean()
    .default(ROI_DEFAULTS.aligned)
    .describe('half-pixel offset (true = ONNX half_pixel, detectron2 ROIAlignV2)'),
  mode: z
    .enum(['avg', 'max', 'onnx_max'])
    .default(ROI_DEFAULTS.mode)
    .describe('bin reduction of align and warp'),
  spatialScale: z
    .union([z.number().positive(), z.array(z.number().positive()).min(1).max(MAX_LEVELS)])
    .optional()
    .describe(
      'feature-map coordinates per image pixel; required with `features`, fixed to 1/stride with `image`. ' +
        'With a list of maps: a list of the same length, powers of two, finest first (0.25, 0.125, …)',
    ),
  maxSide: maxSideField,
  imageSize: z
    .tuple([z.number().positive(), z.number().positive()])
    .optional()
    .describe('[width, height] of the image the features came from; clips the coverage statistics'),
};

/** Body of `POST /v1/roi` (JSON; multipart carries the same fields). */
export const roiBodySchema = z
  .strictObject({
    ...roiInputFields,
    format: z
      .enum(['json', 'npy', 'safetensors'])
      .default('json')
      .describe(
        'json; npy (exactly one op, the body is a .npy of [K, C, PH, PW]); safetensors (a tensor per op)',
      ),
    encoding: z
      .enum(['base64', 'array'])
      .default('base64')
      .describe('how JSON carries tensors: base64 float32, or flat number arrays (only up to 1 M values)'),
    dtype: z
      .enum(OUTPUT_DTYPES)
      .default('float32')
      .describe(
        'element type of the outputs in every format: float32; float16 (half the bytes; .npy <f2, ' +
          'safetensors F16) or bfloat16 (safetensors BF16, JSON; not npy, numpy has no bfloat16), rounded ' +
          'to nearest, ties to even; float16 beyond ±65504 becomes ±Infinity with a dtype-overflow warning',
      ),
  })
  .meta({ id: 'RoiRequest', description: 'the input of POST /v1/roi' });
export type RoiBody = z.output<typeof roiBodySchema>;

/** The fields of {@link roiInputFields} after zod (defaults filled in). */
export type RoiInputBody = z.output<z.ZodObject<typeof roiInputFields>>;

/**
 * The core's typed input of a validated body: a multipart request's file parts ({@link BinaryParts})
 * replace the body's stand-ins (an `image` file's bytes; a `features` `.npy` file, with the body's
 * `layout`), JSON `features` keep their base64 text. Nothing is decoded here (the worker does it).
 */
export function roiInputOf(body: RoiInputBody, binary: BinaryParts = {}): RoiInput {
  const npy = binary.features;
  // Multipart `.npy` parts share the body's one `layout` (moved into the stand-ins' `layout`).
  const layout = (Array.isArray(body.features) ? body.features[0]?.layout : body.features?.layout) ?? 'NCHW';
  const fromNpy = (bytes: Uint8Array): FeaturesInput => ({ encoding: 'npy', bytes, layout });
  const fromJson = (f: z.output<typeof featuresJsonSchema>): FeaturesInput => ({ encoding: 'base64', ...f });
  return {
    image: binary.image ?? body.image,
    images: binary.images ?? body.images,
    features:
      npy !== undefined
        ? Array.isArray(npy)
          ? npy.map(fromNpy)
          : fromNpy(npy)
        : body.features === undefined
          ? undefined
          : Array.isArray(body.features)
            ? body.features.map(fromJson)
            : fromJson(body.features),
    clockwise: body.clockwise,
    levelMapping: body.levelMapping,
    pyramid: body.pyramid,
    boxes: body.boxes,
    boxFormat: body.boxFormat,
    normalized: body.normalized,
    ops: body.ops,
    outputSize: body.outputSize,
    samplingRatio: body.samplingRatio,
    aligned: body.aligned,
    mode: body.mode,
    spatialScale: body.spatialScale,
    maxSide: body.maxSide,
    imageSize: body.imageSize,
  };
}

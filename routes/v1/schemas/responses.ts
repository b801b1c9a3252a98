/**
 * The response schemas of `/v1/roi` and `/v1/features` (zod; the OpenAPI document is generated from them),
 * and the image / feature-map / coverage parts `/v1/diff` returns too. The bodies themselves are built
 * by the core's encoders (`src/core/encode.ts`) in the worker, typed by `src/core/wire.ts`; the checks
 * at the end of this file make the compiler prove that those bodies match these schemas.
 */
import { z } from 'zod';
import type { FeaturesResponseBody, RoiResponseBody } from '../../../src/core/wire.js';
import { ROI_BOX_FORMATS } from '../../../src/core/task.js';
import { COMPARED_OPS, COVERAGE_ORDER, ROI_OPS, type RoiOp } from '../../../src/ops/index.js';
import { OUTPUT_DTYPES } from '../../../src/tensors/float16.js';
import { warningsSchema } from '../../../src/warnings.js';

export const tensorSchema = z
  .object({
    shape: z.array(z.number().int()).describe('logical shape, e.g. [K, C, PH, PW]'),
    dtype: z
      .enum(OUTPUT_DTYPES)
      .describe("the element type of `data`: the request's `dtype` (float32 unless asked otherwise)"),
    data: z
      .union([z.string(), z.array(z.number())])
      .describe(
        'base64 of the little-endian values (4 bytes each for float32, 2 for float16 / bfloat16) in ' +
          'row-major (NCHW) order, or (encoding "array") a flat number array of the values after rounding ' +
          'to `dtype`: -0 is written -0; an output that is ±Infinity or NaN is refused (400, field encoding)',
      ),
  })
  .meta({ id: 'Tensor', description: 'a float32, float16 or bfloat16 tensor' });

export const imageInfoSchema = z
  .object({
    width: z
      .number()
      .int()
      .describe('width after the optional MAX_IMAGE_SIDE resize: the frame of the operators'),
    height: z.number().int(),
    originalWidth: z.number().int().describe('width as sent (after EXIF orientation): the frame of `boxes`'),
    originalHeight: z.number().int(),
    scale: z.number().describe('width / originalWidth; 1 when not resized (same as scaleX)'),
    scaleX: z.number().describe('width / originalWidth: box x coordinates are multiplied by this'),
    scaleY: z
      .number()
      .describe(
        'height / originalHeight: box y coordinates are multiplied by this (each side is rounded on its own)',
      ),
    format: z.string(),
  })
  .describe('the decoded image');

export const featureMapInfoSchema = z
  .object({
    shape: z
      .tuple([z.number().int(), z.number().int(), z.number().int(), z.number().int()])
      .describe('logical [N, C, H, W], whatever the layout the features were sent in'),
    stride: z.number().describe('image pixels per feature cell'),
    spatialScale: z.number().describe('feature cells per image pixel (1 / stride)'),
    source: z.enum(['input', 'backbone']),
    backbone: z.string().nullable(),
    backend: z
      .string()
      .nullable()
      .describe(
        'what ran the backbone: the tfjs backend (tensorflow, wasm, cpu) or onnxruntime; null for features input',
      ),
    levels: z
      .array(
        z.object({
          level: z.number().int().describe('FPN level k: stride 2^k'),
          shape: z.tuple([z.number().int(), z.number().int(), z.number().int(), z.number().int()]),
          stride: z.number(),
          spatialScale: z.number(),
        }),
      )
      .optional()
      .describe(
        'a pyramid: every level, finest first (the fields above are the first level); absent with one map',
      ),
  })
  .describe('the feature map the operators ran on');

const rectSchema = z.object({ x1: z.number(), y1: z.number(), x2: z.number(), y2: z.number() });

const opCoverageSchema = z.object({
  region: rectSchema.describe('image-pixel region the operator reads, half-open'),
  cells: rectSchema.optional().describe('feature cells behind the region (pool and warp)'),
  area: z.number(),
  lost: z.number().describe('box area the region misses'),
  gained: z.number().describe('region area outside the box'),
  lostFraction: z.number(),
  gainedFraction: z.number(),
  iou: z.number(),
});

/** `{ [op]: schema }` for each of `ops`, in their order (a zod shape, typed by op name). */
function perOp<K extends RoiOp, T extends z.ZodType>(ops: readonly K[], schema: T): Record<K, T> {
  return Object.fromEntries(ops.map((op) => [op, schema])) as Record<K, T>;
}

export const boxCoverageSchema = z
  .object({
    box: rectSchema,
    boxArea: z.number(),
    ...perOp(COVERAGE_ORDER, opCoverageSchema),
    polygon: z
      .array(z.tuple([z.number(), z.number()]))
      .optional()
      .describe(
        'rotated boxes: the corners (image px); `box` is then its upright box, which pool, warp and align read',
      ),
    rotated: opCoverageSchema
      .extend({
        polygon: z.array(z.tuple([z.number(), z.number()])).describe('the region read, clipped to the image'),
      })
      .optional()
      .describe(
        'rotated boxes: what rotated_align reads (the rotated box, clipped to the image) against the box',
      ),
  })
  .describe('what each operator reads of one box, in the operators frame (resized-image pixels)');

export const timingsSchema = z
  .object({
    decode: z.number(),
    backbone: z.number(),
    ...perOp(COMPARED_OPS, z.number()),
    ...perOp(
      ROI_OPS.filter((op) => !(COMPARED_OPS as readonly string[]).includes(op)),
      z.number().optional(),
    ),
    encode: z.number(),
    total: z.number(),
  })
  .describe('milliseconds per stage (0 when a stage did not run)');

export const roiParamsSchema = z.object({
  ops: z.array(z.enum(ROI_OPS)),
  boxFormat: z.enum(ROI_BOX_FORMATS),
  clockwise: z.boolean().describe('rotated boxes: the angle turns clockwise'),
  normalized: z.boolean().describe('whether `boxes` were sent as fractions (the echoed boxes are pixels)'),
  outputSize: z.tuple([z.number().int(), z.number().int()]).describe('[PH, PW]'),
  samplingRatio: z.number().int(),
  aligned: z.boolean(),
  mode: z.enum(['avg', 'max', 'onnx_max']),
  spatialScale: z.number(),
  imageSize: z.tuple([z.number(), z.number()]).nullable(),
  maxSide: z
    .number()
    .int()
    .nullable()
    .describe(
      'longest image side after resizing: maxSide capped by MAX_IMAGE_SIDE; null: no limit, or features',
    ),
  format: z.enum(['json', 'npy', 'safetensors']),
  encoding: z.enum(['base64', 'array']),
});

export const roiResponseSchema = z
  .object({
    params: roiParamsSchema
      .extend({ dtype: z.enum(OUTPUT_DTYPES) })
      .describe('the parameters used, defaults filled in'),
    image: imageInfoSchema.nullable().describe('null for features input; with `images`, the first image'),
    images: z
      .array(imageInfoSchema)
      .optional()
      .describe('with `images`: each image, in order (boxes pick one by their batch index)'),
    featureMap: featureMapInfoSchema,
    boxes: z
      .array(z.tuple([z.number(), z.number(), z.number(), z.number(), z.number()]))
      .describe(
        'canonical boxes (b, x1, y1, x2, y2) in input-image pixels (whatever boxFormat and normalized), float32-rounded',
      ),
    outputs: z
      .object(perOp(ROI_OPS, tensorSchema.optional()))
      .describe('one [K, C, PH, PW] tensor per requested op'),
    coverage: z.array(boxCoverageSchema),
    levels: z
      .array(z.number().int())
      .nullable()
      .describe(
        'with a pyramid: the level k (stride 2^k) each box was pooled from, in box order; null with one map',
      ),
    warnings: warningsSchema,
    timings: timingsSchema,
  })
  .meta({ id: 'RoiResponse', description: 'RoI outputs and everything needed to interpret them' });
export type RoiResponse = z.output<typeof roiResponseSchema>;

export const featuresResponseSchema = z
  .object({
    features: z
      .object({
        shape: z.tuple([z.number().int(), z.number().int(), z.number().int(), z.number().int()]),
        layout: z.literal('NCHW'),
        dtype: z.literal('float32'),
        data: z.string().describe('base64 of little-endian float32 values, NCHW order'),
      })
      .describe('the feature map [1, C, H, W]; send it back to /v1/roi as `features`'),
    featureMap: featureMapInfoSchema,
    image: imageInfoSchema,
    timings: z.object({ decode: z.number(), backbone: z.number(), encode: z.number() }),
  })
  .meta({ id: 'FeaturesResponse', description: 'the backbone feature map of an image' });
export type FeaturesResponse = z.output<typeof featuresResponseSchema>;

// The encoders' bodies validate against the schemas (a compile-time check, erased at run time).
export const roiBodyMatchesSchema = (b: RoiResponseBody): z.input<typeof roiResponseSchema> => b;
export const featuresBodyMatchesSchema = (b: FeaturesResponseBody): z.input<typeof featuresResponseSchema> =>
  b;

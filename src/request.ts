/**
 * The request side shared by `POST /v1/roi` and `POST /v1/diff`: the zod schemas of the input fields
 * (the OpenAPI document is generated from them), the multipart → JSON-shape conversion, and
 * {@link prepareRoi}, which turns a validated body into a {@link RoiTask} for the worker pool.
 *
 * One schema serves both content types: a `multipart/form-data` body is first turned into the
 * JSON shape by {@link multipartToJsonBody} (a `preValidation` hook), then validated like JSON.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { bodyTooLarge, guardBody, lingerThenClose } from './body-guard.js';
import { z } from 'zod';
import type { Config } from './config.js';
import { InvalidInputError, RoiServeError, TooLargeError } from './errors.js';
import { assertFiniteFeatures, BOX_FORMATS, toCanonicalBoxes, type BoxFormat } from './ops/index.js';
import { ROI_OPS, type RoiOp } from './ops/registry.js';
import type { AlignMode, Boxes, FeatureMap, Layout } from './ops/types.js';
import { decodeFloat32Base64 } from './tensors/base64.js';
import { OUTPUT_DTYPES } from './tensors/float16.js';
import { size, type RoiWarning } from './warnings.js';
import { boxesInPixels, checkRoiWork, featureMapFrame } from './work_budget.js';

/** The `/v1` operators, in their canonical order (from the operator registry, `src/ops/registry.ts`). */
export { ROI_OPS, type RoiOp };

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
      .default('NCHW')
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
  features: featuresJsonSchema.optional(),
  boxes: z
    .array(z.array(z.number()).min(4).max(5))
    .describe(
      'rows of 4 numbers in `boxFormat`, or 5 with the batch index first; input-image pixels (fractions with `normalized`)',
    ),
  boxFormat: z
    .enum(BOX_FORMATS)
    .default('xyxy')
    .describe(
      'xyxy = (x1, y1, x2, y2); xywh = top-left + size; cxcywh = centre + size; yxyx = (y1, x1, y2, x2), ' +
        "TensorFlow's crop_and_resize order",
    ),
  normalized: z
    .boolean()
    .default(false)
    .describe(
      'coordinates are fractions of the image size: x × width, y × height give pixels. The image as sent ' +
        '(before any resize); with `features`: `imageSize`, or the area the map covers (W / spatialScale × ' +
        'H / spatialScale). Echoed `boxes` are in pixels',
    ),
  ops: z
    .array(z.enum(ROI_OPS))
    .min(1)
    .default([...ROI_OPS])
    .describe(`operators to run; duplicates are ignored, results come in the order ${ROI_OPS.join(', ')}`),
  outputSize: z
    .union([positiveInt, z.tuple([positiveInt, positiveInt])])
    .default(7)
    .describe('PH = PW, or [PH, PW]'),
  samplingRatio: z
    .number()
    .int()
    .default(2)
    .describe('sampling points per bin and axis for align and warp; <= 0 = adaptive ceil(roi / output)'),
  aligned: z
    .boolean()
    .default(true)
    .describe('half-pixel offset (true = ONNX half_pixel, detectron2 ROIAlignV2)'),
  mode: z.enum(['avg', 'max', 'onnx_max']).default('avg').describe('bin reduction of align and warp'),
  spatialScale: z
    .number()
    .positive()
    .optional()
    .describe(
      'feature-map coordinates per image pixel; required with `features`, fixed to 1/stride with `image`',
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

/** Parameters actually used, all defaults filled in (echoed in responses). */
export interface RoiParams {
  ops: RoiOp[];
  boxFormat: BoxFormat;
  /** Boxes are fractions of the frame; the pipeline turns them into pixels once the frame is known. */
  normalized: boolean;
  /** `[PH, PW]`. */
  outputSize: [number, number];
  samplingRatio: number;
  aligned: boolean;
  mode: AlignMode;
  /** Given with `features`; with `image` the worker fills in 1 / stride. */
  spatialScale: number | undefined;
  /** `[width, height]`, only with `features`. */
  imageSize: [number, number] | undefined;
  /**
   * Longest image side after resizing: the request's `maxSide` capped by `MAX_IMAGE_SIDE`, or the cap
   * alone; undefined when neither is set, and with `features`.
   */
  maxSide: number | undefined;
}

/** Limits a {@link RoiTask} is checked against (from {@link Config}). */
export interface RoiLimits {
  maxBoxes: number;
  maxOutputValues: number;
  maxOutputSide: number;
  maxSamplingGrid: number;
  /** `MAX_WORK`: the work budget of one request (`src/work_budget.ts`). */
  maxWork: number;
  maxImagePixels: number;
  maxImageSide: number | undefined;
}

/**
 * A feature map as the client sent it, decoded and checked in the worker (`decodeRoiTask`,
 * `src/task-input.ts`): base64 text from JSON, with its stored `shape`; or a multipart `.npy` file's bytes.
 */
export type FeaturesInput =
  | {
      encoding: 'base64';
      /** As stored, in `layout` order (see {@link logicalShape}). */
      shape: [number, number, number, number];
      layout: Layout;
      data: string;
    }
  | { encoding: 'npy'; bytes: Uint8Array; layout: Layout };

/**
 * A unit of work for the pool, structured-cloneable (its buffers are transferred, not copied).
 * Exactly one of `image` and `features` is set. The inputs travel as they were sent: base64
 * decoding, `.npy` parsing and the finiteness check of a feature map grow with the body and run in
 * the worker, never on the HTTP thread.
 */
export interface RoiTask {
  /** The encoded image: a file part's bytes, or base64 text from JSON (decoded in the worker). */
  image: Uint8Array | string | undefined;
  /** The user's feature map as sent (decoded and checked in the worker). */
  features: FeaturesInput | undefined;
  /**
   * Canonical `[K, 5]` boxes in input-image pixels (before any resize); with `params.normalized`, in
   * fractions of the frame (the pipeline converts them once it knows the image size). With a feature
   * map, the batch indices are checked against its `N` in the worker, once it is decoded.
   */
  boxes: Boxes;
  params: RoiParams;
  /** Return the decoded (and resized) RGB image in the result (the diff pictures need it). */
  includeImage: boolean;
  /** Warnings found while preparing (the pipeline adds those that need the image or the outputs). */
  warnings: RoiWarning[];
}

/** A {@link RoiTask} with its inputs decoded and checked: what the pipeline runs (in the worker). */
export interface DecodedRoiTask extends Omit<RoiTask, 'image' | 'features'> {
  /** Encoded image bytes (decoded by sharp in the pipeline). */
  image: Uint8Array | undefined;
  /** A user feature map, checked finite and consistent with its shape. */
  features: FeatureMap | undefined;
}

/**
 * The logical `[N, C, H, W]` of a task's feature map when it is known without decoding (JSON
 * features carry their shape; a `.npy` file's is in its header, read in the worker): undefined otherwise.
 */
export function knownFeatureShape(task: RoiTask): [number, number, number, number] | undefined {
  const f = task.features;
  return f?.encoding === 'base64' ? logicalShape(f.shape, f.layout) : undefined;
}

/**
 * The channel count the operators will see, when known before any work: the feature map's (see
 * {@link knownFeatureShape}), or for an image the loaded backbone's output channels; undefined otherwise.
 * Routes use it to refuse a request early (a channel index, an array encoding too large).
 */
export function knownChannels(task: RoiTask, backboneChannels: number | undefined): number | undefined {
  return task.features ? knownFeatureShape(task)?.[1] : backboneChannels;
}

/** Picks the {@link RoiLimits} out of a {@link Config}. */
export function limitsFrom(config: Config): RoiLimits {
  return {
    maxBoxes: config.maxBoxes,
    maxOutputValues: config.maxOutputValues,
    maxOutputSide: config.maxOutputSide,
    maxSamplingGrid: config.maxSamplingGrid,
    maxWork: config.maxWork,
    maxImagePixels: config.maxImagePixels,
    maxImageSide: config.maxImageSide,
  };
}

/**
 * The logical `[N, C, H, W]` of an array stored with `shape` in `layout` order: NCHW as is, NHWC
 * `[N, H, W, C]` → `[N, C, H, W]`.
 */
export function logicalShape(
  shape: readonly [number, number, number, number],
  layout: Layout,
): [number, number, number, number] {
  const [n, a, b, c] = shape;
  return layout === 'NHWC' ? [n, c, a, b] : [n, a, b, c];
}

/**
 * Decodes a JSON `features` object into a {@link FeatureMap}, checking length and finiteness.
 *
 * @param features - `{ shape, layout, data }` as validated by {@link featuresJsonSchema}; `shape` in
 *   `layout` order (see {@link logicalShape})
 * @returns the map with its logical `[N, C, H, W]` shape (what the operators and responses use)
 * @throws InvalidInputError (field `features.data`) on bad base64, wrong length, NaN or Inf
 */
export function decodeFeatures(features: z.output<typeof featuresJsonSchema>): FeatureMap {
  const data = decodeFloat32Base64(features.data, 'features.data');
  const expected = features.shape.reduce((a, b) => a * b, 1);
  if (data.length !== expected) {
    throw new InvalidInputError(
      `features.data holds ${data.length} float32 values; shape [${features.shape.join(', ')}] needs ${expected}`,
      'features.data',
      `${expected} little-endian float32 values (${expected * 4} bytes) in base64`,
    );
  }
  const fm: FeatureMap = {
    data,
    shape: logicalShape(features.shape, features.layout),
    layout: features.layout,
  };
  assertFiniteFeatures(fm, 'features');
  return fm;
}

/**
 * Validates the parts of a body zod cannot check alone (one of image/features, limits from the
 * config) and converts the boxes to canonical form: the HTTP-thread half of the work, cheap (it
 * grows with the box count, never with the image or feature bytes), so that most bad requests never
 * reach a worker. The inputs stay as sent; the worker decodes and checks them (`decodeRoiTask`).
 *
 * @param body - a body validated by a schema built from {@link roiInputFields}
 * @param limits - from {@link limitsFrom}
 * @param includeImage - ask the worker to return the decoded RGB image; default false
 * @param binary - a multipart request's file parts ({@link binaryPartsOf}), used instead of the
 *   body's stand-ins; default none (JSON)
 * @throws InvalidInputError (400) or TooLargeError (413), naming the field
 */
export function prepareRoi(
  body: RoiInputBody,
  limits: RoiLimits,
  includeImage = false,
  binary: BinaryParts = {},
): RoiTask {
  const hasImage = body.image !== undefined;
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
  const npy = binary.features;
  const features: FeaturesInput | undefined =
    npy !== undefined
      ? { encoding: 'npy', bytes: npy, layout: body.features?.layout ?? 'NCHW' }
      : body.features === undefined
        ? undefined
        : { encoding: 'base64', ...body.features };
  const task = { features } as RoiTask;
  const shape = knownFeatureShape(task);
  // Batch indices are checked against N in the worker, after the map is decoded (a `.npy` map's N is in
  // its header; and a map's own errors come first, as they always did).
  const batchSize = features ? Number.MAX_SAFE_INTEGER : 1;
  const boxes = toCanonicalBoxes(body.boxes, { format: body.boxFormat, batchSize, field: 'boxes' });
  const params: RoiParams = {
    ops,
    boxFormat: body.boxFormat,
    normalized: body.normalized,
    outputSize,
    samplingRatio: body.samplingRatio,
    aligned: body.aligned,
    mode: body.mode,
    spatialScale: body.spatialScale,
    imageSize: body.imageSize === undefined ? undefined : [body.imageSize[0], body.imageSize[1]],
    maxSide: hasImage ? maxSide.maxSide : undefined,
  };
  // The shapes are known: refuse an over-budget request here, before it takes a queue slot (a
  // `.npy` map's shape is in its header: the worker checks it once read, see `decodeRoiTask`).
  if (shape) checkFeatureMapRequest(boxes, shape, params, limits);
  return {
    image: binary.image ?? body.image,
    features,
    boxes,
    params,
    includeImage,
    // layout-suspect warnings come from the pipeline, which knows a .npy map's shape.
    warnings: [...maxSide.warnings],
  };
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

/** Values in a request's outputs: K·C·PH·PW per op, summed over the ops. */
export function outputValueCount(
  boxCount: number,
  channels: number,
  outputSize: readonly [number, number],
  opCount: number,
): number {
  return boxCount * channels * outputSize[0] * outputSize[1] * opCount;
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
): void {
  checkOutputValues(boxes.count, shape[1], params.outputSize, params.ops.length, limits);
  const s = params.spatialScale as number;
  const frame = featureMapFrame(shape, s, params.imageSize);
  checkRoiWork(boxesInPixels(boxes, params.normalized, frame), shape, s, params, limits);
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
  opCount: number,
  limits: Pick<RoiLimits, 'maxOutputValues'>,
): void {
  const values = outputValueCount(boxCount, channels, outputSize, opCount);
  if (values > limits.maxOutputValues) {
    throw new TooLargeError(
      `the outputs would hold ${values} values (K=${boxCount} · C=${channels} · PH·PW=${outputSize[0] * outputSize[1]} · ops=${opCount}), over the limit of ${limits.maxOutputValues}`,
      'boxes',
      `K · C · PH · PW · ops <= ${limits.maxOutputValues}: fewer boxes, ops or a smaller outputSize`,
    );
  }
}

/**
 * `preValidation` hook turning a `multipart/form-data` body into the JSON shape, so one zod schema
 * validates both. The `image` and `features` (`.npy`) file parts are kept as bytes
 * ({@link binaryPartsOf}) and the body gets stand-ins in their place (the `layout` field goes into
 * `features`); the worker parses them, never the HTTP thread. Any other field is parsed as JSON text
 * when it parses (`[[0,0,10,10]]`, `0.25`, `false`) and kept as a string otherwise (`npy`, `xywh`).
 * Repeated fields are refused. The whole body is bounded by `BODY_LIMIT_BYTES`. Does nothing for
 * other content types.
 *
 * @throws InvalidInputError for a repeated field; TooLargeError (field `body`) over the limit
 */
export async function multipartToJsonBody(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (!request.isMultipart()) return;
  try {
    request.body = await readMultipart(request, request.server.config.bodyLimitBytes);
  } catch (err) {
    if (err instanceof RoiServeError && err.status === 413 && err.field === 'body') {
      // The rest of the body is left unread: once the 413 is out, the connection is closed (after a
      // short linger, so that the client reads the 413 before the close resets the connection).
      lingerThenClose(request.raw, reply.raw);
    }
    if (err instanceof RoiServeError) throw err;
    const status = (err as { statusCode?: unknown }).statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500) throw err; // e.g. 413 file too large
    // busboy's parse errors ("Unexpected end of form", …) are the client's: a 400, not a 500.
    throw new InvalidInputError(
      `malformed multipart body: ${err instanceof Error ? err.message : String(err)}`,
      'body',
      'a well-formed multipart/form-data body',
    );
  }
}

/** Multipart file parts kept as bytes: `image` (an encoded image) and `features` (a `.npy` file). */
export interface BinaryParts {
  image?: Uint8Array;
  features?: Uint8Array;
}

const binaryParts = new WeakMap<FastifyRequest, BinaryParts>();

/** What the validated body holds in place of a multipart `image` file part (its bytes: {@link binaryPartsOf}). */
const FILE_PART = '(multipart file part)';

/**
 * The file parts of a multipart request, as bytes (empty for JSON): pass them to {@link prepareRoi},
 * which prefers them to the body's stand-ins.
 */
export function binaryPartsOf(request: FastifyRequest): BinaryParts {
  return binaryParts.get(request) ?? {};
}

/**
 * Reads every part, the whole body bounded by `limit` bytes (each part is also bounded by the
 * plugin's per-part limits). Over the limit, reading stops and a 413 (field `body`) is thrown.
 */
async function readMultipart(request: FastifyRequest, limit: number): Promise<Record<string, unknown>> {
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw bodyTooLarge(limit);
  const body: Record<string, unknown> = {};
  const files: BinaryParts = {};
  binaryParts.set(request, files);
  const parts = request.parts()[Symbol.asyncIterator]();
  // The first next() starts busboy (pipes the request into it); only then may the guard listen.
  const first = parts.next();
  const guard = guardBody(request.raw, limit);
  try {
    for (let step = await guard.race(first); !step.done; step = await guard.race(parts.next())) {
      const part = step.value;
      const name = part.fieldname;
      if (Object.hasOwn(body, name)) {
        throw new InvalidInputError(`field ${name} is given twice`, name, 'each field at most once');
      }
      if (part.type === 'file') {
        const bytes = await guard.race(part.toBuffer());
        // Binary parts stay bytes (no base64 round trip); the worker parses and checks them. The body
        // gets a stand-in the schema accepts, so that presence and `layout` are validated as in JSON.
        if (name === 'features') {
          files.features = bytes;
          // The layout comes from the `layout` field, which may follow this part: merged below.
          body.features = { shape: [1, 1, 1, 1], data: '' };
        } else if (name === 'image') {
          files.image = bytes;
          // An empty file is refused by the schema like an empty string (`image`: at least 1 character).
          body.image = bytes.length === 0 ? '' : FILE_PART;
        } else {
          // A text field sent as a file part (curl -F name=@file.json): treat its contents as the value.
          body[name] = parseFieldText(bytes.toString('utf8'));
        }
      } else {
        // `image` as a text field is base64 already; parsing it as JSON could turn "1234" into a number.
        body[name] = name === 'image' ? String(part.value) : parseFieldText(String(part.value));
      }
    }
  } finally {
    guard.dispose();
  }
  if (Object.hasOwn(body, 'layout')) moveLayoutIntoFeatures(body);
  return body;
}

/**
 * Multipart's top-level `layout` field (the `.npy` part cannot carry it) becomes `features.layout`,
 * where the JSON shape has it: `-F features=@map.npy -F layout=NHWC`.
 *
 * @throws InvalidInputError without `features`, or when `features` (as JSON text) has its own layout
 */
function moveLayoutIntoFeatures(body: Record<string, unknown>): void {
  const features = body.features;
  if (typeof features !== 'object' || features === null || Array.isArray(features)) {
    throw new InvalidInputError(
      'layout describes the features part; there is no features part',
      'layout',
      'layout only together with a features .npy part',
    );
  }
  if (Object.hasOwn(features, 'layout')) {
    throw new InvalidInputError(
      'layout is given twice: as a field and inside features',
      'layout',
      'layout once: the field with a .npy part, or features.layout in JSON text',
    );
  }
  (features as Record<string, unknown>).layout = body.layout;
  delete body.layout;
}

function parseFieldText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

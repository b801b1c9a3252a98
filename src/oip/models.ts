/**
 * The models `/v2` serves and how an inference request for one of them becomes a {@link RoiTask}: the
 * same task `POST /v1/roi` builds, from typed values (no detour through a `/v1` JSON body), so the
 * results are the same bit for bit. Errors name the protocol's inputs and parameters (`rois`,
 * `parameters.output_size`), not `/v1`'s fields. The `backbone` model is `POST /v1/features`'s work;
 * `ps_roi_align`, `ps_roi_pool`, `rotated_roi_align` and `multiscale_roi_align` become a
 * {@link KernelTask} (`src/oip/kernel-task.ts`), which runs outside the `/v1` pipeline.
 *
 * Why one file of ~780 lines: the five task builders share the private parameter and input readers
 * (`intParameter`, `outputSizeOf`, `samplingOf`, `scaleOf`, `roiRows`, `featureShape`), and each builder
 * is mostly its error messages. The natural split, if it grows, is the kernel models (`psTask`,
 * `rotatedTask`, `multiScaleTask`) into their own module with those readers exported.
 */
import { InvalidInputError, TooLargeError } from '../errors.js';
import { psChannelsOut, toCanonicalBoxes, toRotatedBoxes, type AlignMode } from '../ops/index.js';
import {
  COMPARE_ORDER,
  OPERATORS,
  V1_OPERATORS,
  operator,
  type OpParam,
  type Operator,
  type RoiOp,
} from '../ops/registry.js';
import { checkFeatureMapRequest, checkOutputValues, resolveMaxSide } from '../core/prepare.js';
import { MAX_LEVELS, type RoiLimits, type RoiTask } from '../core/task.js';
import { writeNpy } from '../tensors/npy.js';
import { checkRoiWork } from '../core/work-budget.js';
import {
  bytesValues,
  float32Values,
  numericValues,
  type Datatype,
  type InferenceRequest,
  type RequestInput,
} from './codec.js';
import type { KernelTask } from './kernel-task.js';

/** A tensor in model metadata; `-1` marks a free dimension. */
export interface TensorMetadata {
  name: string;
  datatype: Datatype;
  shape: number[];
}

/** An RoI model: one of the `/v1/roi` operators. */
export interface RoiModel {
  kind: 'roi';
  name: string;
  op: RoiOp;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

/** The `backbone` model: an encoded image in, its feature map out (`POST /v1/features`). */
export interface BackboneModel {
  kind: 'backbone';
  name: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

/** The position-sensitive operators of the registry: `'ps_align' | 'ps_pool'`. */
export type PsOp = Extract<Operator, { positionSensitive: true }>['name'];

/** A position-sensitive model (R-FCN): `ps_roi_align`, `ps_roi_pool`, run outside the `/v1` pipeline. */
export interface PsModel {
  kind: 'ps';
  name: string;
  op: PsOp;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

/** `rotated_roi_align`: oriented boxes `(b, cx, cy, w, h, angle)`, run outside the `/v1` pipeline. */
export interface RotatedModel {
  kind: 'rotated';
  name: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

/** `multiscale_roi_align`: a pyramid `features_0` (finest) … `features_{L-1}`, each box pooled from its level. */
export interface MultiScaleModel {
  kind: 'multiscale';
  name: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

export type Model = RoiModel | BackboneModel | PsModel | RotatedModel | MultiScaleModel;

/** The only version of every model. */
export const MODEL_VERSION = '1';

const ROI_INPUTS: TensorMetadata[] = [
  { name: 'features', datatype: 'FP32', shape: [-1, -1, -1, -1] },
  { name: 'image', datatype: 'BYTES', shape: [1] },
  { name: 'rois', datatype: 'FP32', shape: [-1, 5] },
  { name: 'batch_indices', datatype: 'INT64', shape: [-1] },
];
const POOLED: TensorMetadata[] = [{ name: 'pooled', datatype: 'FP32', shape: [-1, -1, -1, -1] }];

const BACKBONE: BackboneModel = {
  kind: 'backbone',
  name: 'backbone',
  inputs: [{ name: 'image', datatype: 'BYTES', shape: [1] }],
  outputs: [{ name: 'features', datatype: 'FP32', shape: [1, -1, -1, -1] }],
};

const ROTATED: RotatedModel = {
  kind: 'rotated',
  name: operator('rotated_align').model,
  inputs: [
    { name: 'features', datatype: 'FP32', shape: [-1, -1, -1, -1] },
    { name: 'rois', datatype: 'FP32', shape: [-1, 6] },
    { name: 'batch_indices', datatype: 'INT64', shape: [-1] },
  ],
  outputs: POOLED,
};

const MULTISCALE: MultiScaleModel = {
  kind: 'multiscale',
  name: 'multiscale_roi_align',
  inputs: [
    ...Array.from({ length: MAX_LEVELS }, (_, i): TensorMetadata => ({
      name: `features_${i}`,
      datatype: 'FP32',
      shape: [-1, -1, -1, -1],
    })),
    { name: 'rois', datatype: 'FP32', shape: [-1, 5] },
    { name: 'batch_indices', datatype: 'INT64', shape: [-1] },
  ],
  outputs: [...POOLED, { name: 'levels', datatype: 'INT64', shape: [-1] }],
};

const isPs = (op: Operator): op is Extract<Operator, { positionSensitive: true }> => op.positionSensitive;

/**
 * The models by name, from the operator registry (`src/ops/registry.ts`, each entry's `model` name): the
 * `/v1` operators (RoI Align first, the reference), the backbone, the position-sensitive operators,
 * rotated RoI Align, and the multi-level composition.
 */
export const MODELS: ReadonlyMap<string, Model> = new Map<string, Model>([
  ...COMPARE_ORDER.map((op): [string, Model] => {
    const name = V1_OPERATORS[op].model;
    return [name, { kind: 'roi', name, op, inputs: ROI_INPUTS, outputs: POOLED }];
  }),
  ['backbone', BACKBONE],
  ...OPERATORS.filter(isPs).map(({ model: name, name: op }): [string, Model] => [
    name,
    { kind: 'ps', name, op, inputs: ROI_INPUTS.filter((i) => i.name !== 'image'), outputs: POOLED },
  ]),
  [ROTATED.name, ROTATED],
  [MULTISCALE.name, MULTISCALE],
]);

/** The request parameters `rotated_roi_align` reads. */
export const ROTATED_PARAMETERS = [
  'spatial_scale',
  'output_size',
  'output_height',
  'output_width',
  'sampling_ratio',
  'aligned',
  'clockwise',
  'dtype',
  'binary_data_output',
] as const;

/** The request parameters `multiscale_roi_align` reads. */
export const MULTISCALE_PARAMETERS = [
  'spatial_scale',
  'output_size',
  'output_height',
  'output_width',
  'sampling_ratio',
  'aligned',
  'level_rule',
  'canonical_box_size',
  'canonical_level',
  'dtype',
  'binary_data_output',
] as const;

/** The request parameters the position-sensitive models read. */
export const PS_PARAMETERS = [
  'spatial_scale',
  'output_size',
  'output_height',
  'output_width',
  'sampling_ratio',
  'dtype',
  'binary_data_output',
] as const;

/** The request parameters the backbone model reads. */
export const BACKBONE_PARAMETERS = ['max_side', 'dtype', 'binary_data_output'] as const;

/** `parameters.dtype` → the output datatype; `/v1`'s names are accepted too. */
const DTYPES: Record<string, 'FP32' | 'FP16' | 'BF16'> = {
  FP32: 'FP32',
  FP16: 'FP16',
  BF16: 'BF16',
  float32: 'FP32',
  float16: 'FP16',
  bfloat16: 'BF16',
};

/**
 * The datatype of the output (`parameters.dtype`, FP32 by default): FP16 / BF16 halve the bytes, with
 * the same rounding as `/v1`'s `dtype`.
 *
 * @throws InvalidInputError (parameters.dtype) for another value
 */
export function outputDatatype(parameters: Record<string, unknown>): 'FP32' | 'FP16' | 'BF16' {
  const value = parameters.dtype ?? 'FP32';
  if (typeof value === 'string' && Object.hasOwn(DTYPES, value)) return DTYPES[value];
  throw bad(`parameters.dtype is ${JSON.stringify(value)}`, 'parameters.dtype', '"FP32", "FP16" or "BF16"');
}

/** The request parameters a RoI model reads (besides the binary extension's `binary_data_output`). */
export const ROI_PARAMETERS = [
  'spatial_scale',
  'output_size',
  'output_height',
  'output_width',
  'sampling_ratio',
  'aligned',
  'mode',
  'max_side',
  'dtype',
  'binary_data_output',
] as const;

function bad(message: string, field: string, expected: string): InvalidInputError {
  return new InvalidInputError(message, field, expected);
}

/** An integer parameter (at least `min`, when given), or `fallback` when absent. */
function intParameter(
  parameters: Record<string, unknown>,
  name: string,
  fallback: number | undefined,
  { min }: { min: number | undefined },
): number | undefined {
  const v = parameters[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || (min !== undefined && v < min)) {
    throw bad(
      `parameters.${name} is ${JSON.stringify(v)}; expected an integer${min === undefined ? '' : ` >= ${min}`}`,
      `parameters.${name}`,
      `an integer${min === undefined ? '' : ` >= ${min}`}`,
    );
  }
  return v;
}

/** The inputs by name, refusing names the model does not have. */
function inputsByName(request: InferenceRequest, model: Model): Map<string, RequestInput> {
  const known = new Set(model.inputs.map((i) => i.name));
  const out = new Map<string, RequestInput>();
  for (const input of request.inputs) {
    if (!known.has(input.name)) {
      throw bad(
        `model ${model.name} has no input "${input.name}"`,
        `inputs.${input.name}`,
        `inputs among ${[...known].join(', ')}`,
      );
    }
    out.set(input.name, input);
  }
  return out;
}

/** `rois` `[K, 5]`, or `[K, 4]` with `batch_indices` `[K]`, as rows `(b, x1, y1, x2, y2)`. */
function roiRows(inputs: Map<string, RequestInput>, columns = 5): number[][] {
  // (b, x1, y1, x2, y2), or (b, cx, cy, w, h, angle) for rotated boxes.
  const what = columns === 5 ? '(b, x1, y1, x2, y2)' : '(b, cx, cy, w, h, angle)';
  const rois = inputs.get('rois');
  if (rois === undefined) {
    throw bad(
      'missing input "rois"',
      'rois',
      `rois FP32 [K, ${columns}] ${what}, or [K, ${columns - 1}] with batch_indices`,
    );
  }
  const indices = inputs.get('batch_indices');
  const [k, width] = rois.shape;
  const withIndices = indices !== undefined;
  const expected = withIndices ? columns - 1 : columns;
  if (rois.shape.length !== 2 || width !== expected) {
    throw bad(
      `input "rois" has shape [${rois.shape.join(', ')}]; ${withIndices ? `with batch_indices it must be [K, ${expected}]` : `it must be [K, ${columns}], or [K, ${columns - 1}] with batch_indices`}`,
      'rois.shape',
      `[K, ${columns}] ${what}, or [K, ${columns - 1}] plus batch_indices [K]`,
    );
  }
  const values = numericValues(rois, ['FP32']);
  let batch: Float64Array | undefined;
  if (indices !== undefined) {
    if (indices.shape.length !== 1 || indices.shape[0] !== k) {
      throw bad(
        `input "batch_indices" has shape [${indices.shape.join(', ')}]; rois has ${k} rows`,
        'batch_indices.shape',
        `[${k}]`,
      );
    }
    batch = numericValues(indices, ['INT64', 'INT32']);
  }
  const rows: number[][] = [];
  for (let i = 0; i < k; i++) {
    if (batch === undefined) rows.push(Array.from(values.subarray(columns * i, columns * (i + 1))));
    else rows.push([batch[i], ...values.subarray((columns - 1) * i, (columns - 1) * (i + 1))]);
  }
  return rows;
}

/** The `[N, C, H, W]` shape of the `features` input. */
function featureShape(features: RequestInput): [number, number, number, number] {
  const shape = features.shape;
  if (shape.length !== 4 || shape.some((d) => d < 1)) {
    throw bad(
      `input "features" has shape [${shape.join(', ')}]; expected [N, C, H, W] with every dimension >= 1`,
      'features.shape',
      '[N, C, H, W]',
    );
  }
  return shape as [number, number, number, number];
}

/**
 * Builds the {@link RoiTask} of an inference request for a RoI model: exactly the task `POST /v1/roi`
 * builds for the same map, boxes and parameters (JSON `features`, `boxFormat: "xyxy"`, one op).
 *
 * @param request - the parsed inference request
 * @param model - the model it was sent to
 * @param limits - the server's limits (`limitsFrom(config)`), shared with `/v1`
 * @throws InvalidInputError (400) / TooLargeError (413), the message naming the input or parameter
 */
export function roiTask(request: InferenceRequest, model: RoiModel, limits: RoiLimits): RoiTask {
  const p = request.parameters;
  checkParameterNames(p, model, ROI_PARAMETERS);
  const inputs = inputsByName(request, model);
  const features = inputs.get('features');
  const image = inputs.get('image');
  if ((features === undefined) === (image === undefined)) {
    throw bad(
      features
        ? 'give either the features input or the image input, not both'
        : 'missing input: give features or image',
      features ? 'image' : 'features',
      'features FP32 [N, C, H, W], or image BYTES [1] (an encoded image)',
    );
  }

  // Parameters, defaults as /v1 (outputSize 7, samplingRatio 2, aligned true, mode avg).
  const size = intParameter(p, 'output_size', undefined, { min: 1 });
  const height = intParameter(p, 'output_height', size ?? 7, { min: 1 }) as number;
  const width = intParameter(p, 'output_width', size ?? 7, { min: 1 }) as number;
  const outputSize: [number, number] = [height, width];
  for (const [name, side] of [
    ['output_height', height],
    ['output_width', width],
  ] as const) {
    if (side > limits.maxOutputSide) {
      throw bad(
        `${p[name] === undefined ? 'parameters.output_size' : `parameters.${name}`} ${side} exceeds the limit ${limits.maxOutputSide}`,
        p[name] === undefined ? 'parameters.output_size' : `parameters.${name}`,
        `an integer from 1 to ${limits.maxOutputSide}`,
      );
    }
  }
  const samplingRatio = samplingOf(p, limits);
  const aligned = boolParameter(p, 'aligned', true);
  const mode = p.mode ?? 'avg';
  if (mode !== 'avg' && mode !== 'max' && mode !== 'onnx_max') {
    throw bad(`parameters.mode is ${JSON.stringify(mode)}`, 'parameters.mode', '"avg", "max" or "onnx_max"');
  }
  // Checked here, before the rois, so that errors come in the order of the parameters.
  const spatialScale = features !== undefined ? scaleOf(p, ' with the features input') : undefined;
  if (features !== undefined) {
    if (p.max_side !== undefined) {
      throw bad(
        'parameters.max_side resizes an image; the input is a feature map',
        'parameters.max_side',
        'max_side only with image',
      );
    }
  } else if (p.spatial_scale !== undefined) {
    throw bad(
      'parameters.spatial_scale is set by the backbone (1/stride) when the input is an image',
      'parameters.spatial_scale',
      'no spatial_scale with image',
    );
  }

  const rows = roiRows(inputs);
  checkRowCount(rows, limits);
  const ops: RoiOp[] = [model.op];
  const common = {
    ops,
    boxFormat: 'xyxy' as const,
    normalized: false,
    outputSize,
    samplingRatio,
    aligned,
    mode: mode as AlignMode,
  };

  if (features !== undefined) {
    const shape = featureShape(features);
    const boxes = toCanonicalBoxes(rows, { format: 'xyxy', batchSize: shape[0], field: 'rois' });
    const params = { ...common, spatialScale, imageSize: undefined, maxSide: undefined };
    // /v1's own check on a feature-map request: output values, then the work budget.
    checkFeatureMapRequest(boxes, shape, params, limits);
    const data = float32Values(features);
    return {
      image: undefined,
      // A .npy file in memory: the worker reads and checks it (finite values) as it does /v1's.
      features: { encoding: 'npy', bytes: new Uint8Array(writeNpy(data, shape)), layout: 'NCHW' },
      boxes,
      params,
      includeImage: false,
      warnings: [],
    };
  }

  const bytes = imageBytes(image as RequestInput);
  const maxSide = resolveMaxSide(intParameter(p, 'max_side', undefined, { min: 1 }), limits.maxImageSide);
  const boxes = toCanonicalBoxes(rows, { format: 'xyxy', batchSize: 1, field: 'rois' });
  return {
    image: bytes,
    features: undefined,
    boxes,
    params: { ...common, spatialScale: undefined, imageSize: undefined, maxSide: maxSide.maxSide },
    includeImage: false,
    warnings: [...maxSide.warnings],
  };
}

/**
 * Builds the {@link PsRoiTask} of an inference request for `ps_roi_align` / `ps_roi_pool`: `features`
 * FP32 `[N, C, H, W]` with `C = C_out·PH·PW`, `rois` as for the RoI models. Defaults: output 7×7,
 * sampling ratio 2 (as `roi_align`). The work budget (`MAX_WORK`) is checked with the ps ops' own cost
 * model (`src/core/work-budget.ts`): each output value reads its bin on one of the `C_out` channels.
 *
 * @throws InvalidInputError (400) / TooLargeError (413), naming the input or parameter
 */
export function psTask(request: InferenceRequest, model: PsModel, limits: RoiLimits): KernelTask {
  const p = request.parameters;
  checkParameterNames(p, model, PS_PARAMETERS);
  const inputs = inputsByName(request, model);
  const features = inputs.get('features');
  if (features === undefined) {
    throw bad('missing input "features"', 'features', 'features FP32 [N, C, H, W], C = C_out·PH·PW');
  }
  const outputSize = outputSizeOf(p, limits);
  const reads: readonly OpParam[] = operator(model.op).params;
  if (!reads.includes('samplingRatio') && p.sampling_ratio !== undefined) {
    throw bad(
      'ps_roi_pool does not sample: parameters.sampling_ratio is for ps_roi_align',
      'parameters.sampling_ratio',
      'no sampling_ratio with ps_roi_pool',
    );
  }
  const samplingRatio = samplingOf(p, limits);
  const spatialScale = scaleOf(p);
  const shape = featureShape(features);
  const [n, c, h, w] = shape;
  const channelsOut = psChannelsOut(c, outputSize[0], outputSize[1], 'features');
  const rows = roiRows(inputs);
  checkRowCount(rows, limits);
  const boxes = toCanonicalBoxes(rows, { format: 'xyxy', batchSize: n, field: 'rois' });
  checkOutputValues(boxes.count, channelsOut, outputSize, 1, limits);
  // The ps ops' own cost model (`psAlignWork` / `psPoolWork`): each output channel reads its
  // `C_out` share of the map's `C`, sample by sample (nothing merged).
  checkRoiWork(
    boxes,
    [n, c, h, w],
    spatialScale,
    { ops: [model.op], outputSize, samplingRatio, aligned: true, mode: 'avg' },
    limits,
  );
  const data = float32Values(features);
  return {
    op: model.op,
    features: { encoding: 'npy', bytes: new Uint8Array(writeNpy(data, shape)), layout: 'NCHW' },
    boxes,
    spatialScale,
    outputSize,
    samplingRatio,
  };
}

/** `output_size` or `output_height` / `output_width` (7), within `MAX_OUTPUT_SIDE`. */
function outputSizeOf(p: Record<string, unknown>, limits: RoiLimits): [number, number] {
  const size = intParameter(p, 'output_size', undefined, { min: 1 });
  const outputSize: [number, number] = [
    intParameter(p, 'output_height', size ?? 7, { min: 1 }) as number,
    intParameter(p, 'output_width', size ?? 7, { min: 1 }) as number,
  ];
  if (Math.max(...outputSize) > limits.maxOutputSide) {
    throw bad(
      `output size ${outputSize.join('×')} exceeds the limit ${limits.maxOutputSide} a side`,
      'parameters.output_size',
      `an integer from 1 to ${limits.maxOutputSide}`,
    );
  }
  return outputSize;
}

/** `sampling_ratio` (2; `<= 0` adaptive), within `MAX_SAMPLING_GRID`. */
function samplingOf(p: Record<string, unknown>, limits: RoiLimits): number {
  const samplingRatio = intParameter(p, 'sampling_ratio', 2, { min: undefined }) as number;
  if (samplingRatio > limits.maxSamplingGrid) {
    throw bad(
      `parameters.sampling_ratio ${samplingRatio} exceeds the limit ${limits.maxSamplingGrid}`,
      'parameters.sampling_ratio',
      `an integer <= ${limits.maxSamplingGrid} (<= 0 = adaptive)`,
    );
  }
  return samplingRatio;
}

/** The required positive `spatial_scale` (`when` says when it is required, for the message). */
function scaleOf(p: Record<string, unknown>, when = ''): number {
  const spatialScale = p.spatial_scale;
  if (typeof spatialScale !== 'number' || !(spatialScale > 0) || !Number.isFinite(spatialScale)) {
    throw bad(
      spatialScale === undefined
        ? `parameters.spatial_scale is required${when}`
        : `parameters.spatial_scale is ${JSON.stringify(spatialScale)}; expected a positive number`,
      'parameters.spatial_scale',
      'a positive number: feature-map cells per image pixel (1/stride)',
    );
  }
  return spatialScale;
}

/** A boolean parameter, or `fallback`. */
function boolParameter(p: Record<string, unknown>, name: string, fallback: boolean): boolean {
  const v = p[name] ?? fallback;
  if (typeof v !== 'boolean') {
    throw bad(
      `parameters.${name} is ${JSON.stringify(v)}; expected true or false`,
      `parameters.${name}`,
      'a boolean',
    );
  }
  return v;
}

/** Refuses more rows than `MAX_BOXES`. */
function checkRowCount(rows: readonly unknown[], limits: RoiLimits): void {
  if (rows.length > limits.maxBoxes) {
    throw new TooLargeError(
      `${rows.length} rois exceed the limit of ${limits.maxBoxes} per request`,
      'rois',
      `at most ${limits.maxBoxes} rows`,
    );
  }
}

/**
 * Builds the task of `rotated_roi_align`: `features` FP32 `[N, C, H, W]`, `rois` FP32 `[K, 6]`
 * `(b, cx, cy, w, h, angle)` (degrees, counter-clockwise as seen in the image) or `[K, 5]` plus
 * `batch_indices`. The work budget is checked as RoI Align of the upright boxes of the same size (the
 * sampling grid follows the box's own frame).
 *
 * @throws InvalidInputError (400) / TooLargeError (413), naming the input or parameter
 */
export function rotatedTask(request: InferenceRequest, model: RotatedModel, limits: RoiLimits): KernelTask {
  const p = request.parameters;
  checkParameterNames(p, model, ROTATED_PARAMETERS);
  const inputs = inputsByName(request, model);
  const features = inputs.get('features');
  if (features === undefined) throw bad('missing input "features"', 'features', 'features FP32 [N, C, H, W]');
  const outputSize = outputSizeOf(p, limits);
  const samplingRatio = samplingOf(p, limits);
  const spatialScale = scaleOf(p);
  const aligned = boolParameter(p, 'aligned', true);
  const clockwise = boolParameter(p, 'clockwise', false);
  const shape = featureShape(features);
  const [n, c] = shape;
  const rows = roiRows(inputs, 6);
  checkRowCount(rows, limits);
  const boxes = toRotatedBoxes(rows, { batchSize: n, field: 'rois' });
  checkOutputValues(boxes.count, c, outputSize, 1, limits);
  const upright = toCanonicalBoxes(
    rows.map(([b, cx, cy, w, h]) => [b, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]),
    { format: 'xyxy', batchSize: n, field: 'rois' },
  );
  checkRoiWork(
    upright,
    shape,
    spatialScale,
    { ops: ['align'], outputSize, samplingRatio, aligned, mode: 'avg' },
    limits,
  );
  const data = float32Values(features);
  return {
    op: 'rotated_align',
    features: { encoding: 'npy', bytes: new Uint8Array(writeNpy(data, shape)), layout: 'NCHW' },
    boxes,
    spatialScale,
    outputSize,
    samplingRatio,
    aligned,
    clockwise,
  };
}

/**
 * Builds the task of `multiscale_roi_align`: `features_0` (finest) … `features_{L-1}`, same N and C,
 * each level half the scale of the one before (`spatial_scale` is that of `features_0`, e.g. 1/4 for
 * P2); each box is pooled (RoI Align) from the level FPN's rule assigns it (`level_rule` `torchvision`
 * or `detectron2`, `canonical_box_size` 224, `canonical_level` 4). Outputs `pooled` and `levels`.
 * The work budget is checked as RoI Align on `features_0` of the boxes scaled to their level.
 *
 * @throws InvalidInputError (400) / TooLargeError (413), naming the input or parameter
 */
export function multiScaleTask(
  request: InferenceRequest,
  model: MultiScaleModel,
  limits: RoiLimits,
): KernelTask {
  const p = request.parameters;
  checkParameterNames(p, model, MULTISCALE_PARAMETERS);
  const inputs = inputsByName(request, model);
  const levels: RequestInput[] = [];
  for (let i = 0; inputs.has(`features_${i}`); i++) levels.push(inputs.get(`features_${i}`) as RequestInput);
  const stray = [...inputs.keys()].find(
    (k) => k.startsWith('features_') && !levels.some((l) => l.name === k),
  );
  if (levels.length === 0 || stray !== undefined) {
    throw bad(
      stray === undefined ? 'missing input "features_0"' : `input "${stray}" without the levels before it`,
      stray ?? 'features_0',
      'features_0, features_1, … (finest first), consecutive',
    );
  }
  const outputSize = outputSizeOf(p, limits);
  const samplingRatio = samplingOf(p, limits);
  const scale0 = scaleOf(p);
  const aligned = boolParameter(p, 'aligned', true);
  const rule = p.level_rule ?? 'torchvision';
  if (rule !== 'torchvision' && rule !== 'detectron2') {
    throw bad(
      `parameters.level_rule is ${JSON.stringify(rule)}`,
      'parameters.level_rule',
      '"torchvision" or "detectron2"',
    );
  }
  const canonicalBoxSize = p.canonical_box_size ?? 224;
  if (typeof canonicalBoxSize !== 'number' || !(canonicalBoxSize > 0)) {
    throw bad(
      `parameters.canonical_box_size is ${JSON.stringify(canonicalBoxSize)}`,
      'parameters.canonical_box_size',
      'a positive number (224)',
    );
  }
  const canonicalLevel = intParameter(p, 'canonical_level', 4, { min: 0 }) as number;
  const shapes = levels.map(featureShape);
  const [n, c] = shapes[0];
  const scales = shapes.map((_, i) => scale0 / 2 ** i);
  const rows = roiRows(inputs);
  checkRowCount(rows, limits);
  const boxes = toCanonicalBoxes(rows, { format: 'xyxy', batchSize: n, field: 'rois' });
  checkOutputValues(boxes.count, c, outputSize, 1, limits);
  const mapping = { rule, canonicalBoxSize, canonicalLevel } as const;
  const kMin = Math.round(-Math.log2(scale0));
  if (Math.abs(2 ** -kMin - scale0) > 1e-12 * scale0) {
    throw bad(
      `parameters.spatial_scale is ${scale0}; a pyramid level's scale is a power of two`,
      'parameters.spatial_scale',
      'a power of two: 0.25 for P2, 0.125 for P3, …',
    );
  }
  // Each box on its level's map at its scale, as `multiScaleRoi` runs it (src/core/work-budget.ts).
  checkRoiWork(
    boxes,
    shapes[0],
    scale0,
    { ops: ['align'], outputSize, samplingRatio, aligned, mode: 'avg' },
    limits,
    undefined,
    { pyramid: { shapes, scales, levelMapping: mapping } },
  );
  return {
    op: 'multiscale_align',
    features: levels.map((input, i) => ({
      encoding: 'npy' as const,
      bytes: new Uint8Array(writeNpy(float32Values(input), shapes[i])),
      layout: 'NCHW' as const,
    })),
    boxes,
    spatialScales: scales,
    outputSize,
    samplingRatio,
    aligned,
    mapping,
  };
}

/** Refuses request parameters the model does not read (a typo would otherwise be ignored silently). */
function checkParameterNames(p: Record<string, unknown>, model: Model, known: readonly string[]): void {
  for (const key of Object.keys(p)) {
    if (!known.includes(key)) {
      throw bad(
        `model ${model.name} has no parameter "${key}"`,
        `parameters.${key}`,
        `parameters among ${known.join(', ')}`,
      );
    }
  }
}

/** The one encoded image of an `image` BYTES `[1]` input. */
function imageBytes(img: RequestInput): Uint8Array {
  if (img.shape.length !== 1 || img.shape[0] !== 1) {
    throw bad(
      `input "image" has shape [${img.shape.join(', ')}]; one image per request`,
      'image.shape',
      '[1]: one encoded image',
    );
  }
  const [bytes] = bytesValues(img);
  if (bytes.length === 0)
    throw bad('input "image" is empty', 'image', 'an encoded image (PNG, JPEG, WebP, …)');
  // A copy of its own: the bytes are a view into the body, and a whole buffer moves to the worker.
  return new Uint8Array(bytes);
}

/**
 * The input of a `backbone` inference: the image, and the side it is shrunk to (`max_side` capped by
 * `MAX_IMAGE_SIDE`, as `POST /v1/features` does).
 *
 * @throws InvalidInputError naming the input or parameter
 */
export function backboneInput(
  request: InferenceRequest,
  model: BackboneModel,
  limits: RoiLimits,
): { image: Uint8Array; maxSide: number | undefined } {
  checkParameterNames(request.parameters, model, BACKBONE_PARAMETERS);
  const image = inputsByName(request, model).get('image');
  if (image === undefined) throw bad('missing input "image"', 'image', 'image BYTES [1]: an encoded image');
  const side = intParameter(request.parameters, 'max_side', undefined, { min: 1 });
  return { image: imageBytes(image), maxSide: resolveMaxSide(side, limits.maxImageSide).maxSide };
}

/**
 * The shape and data of a `.npy` file as `writeNpy` writes it (version 1.0, `<f4`, C order): the
 * worker's encoded `/v1/roi` output, whose bytes become the `pooled` tensor as they are.
 */
export function npyParts(npy: Uint8Array): { shape: number[]; data: Uint8Array } {
  const headerLength = npy[8] | (npy[9] << 8);
  const header = Buffer.from(npy.buffer, npy.byteOffset + 10, headerLength).toString('latin1');
  const match = /'shape': \(([^)]*)\)/.exec(header);
  if (!match) throw new Error(`npyParts: no shape in the header ${header}`);
  const shape = match[1]
    .split(',')
    .map((d) => d.trim())
    .filter((d) => d !== '')
    .map(Number);
  return { shape, data: npy.subarray(10 + headerLength) };
}

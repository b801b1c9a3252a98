/**
 * The request → result work shared by `POST /v1/roi`, `POST /v1/diff` and `POST /v1/features`:
 * decode the image, run the backbone, apply the RoI operators, measure coverage. It runs inside a
 * worker thread (`src/runtime/worker.ts`) so the HTTP thread stays responsive; routes reach it through the
 * pool (`app.work.roi(task)`, see `src/runtime/pool.ts`) after `prepareRoi` (`./prepare.ts`).
 *
 * Shapes: feature maps `[N, C, H, W]` (NHWC in memory from tfjs, NCHW from ONNX Runtime), outputs `[K, C, PH, PW]`
 * (NCHW in memory), boxes `[K, 5]` rows `(b, x1, y1, x2, y2)`.
 */
import { checkBackboneInput, type Backbone, type BackboneDescription } from '../backbone/index.js';
import type { TaskStop } from '../cancel.js';
import { InvalidInputError } from '../errors.js';
import { decodeImage } from '../imaging/decode.js';
import { boxAt, denormalizeBoxes, scaleBoxes } from '../ops/boxes.js';
import { coverage } from '../ops/coverage.js';
import { toLayout } from '../ops/features.js';
import { MAX_SAMPLING_GRID } from '../ops/params.js';
import { roiGeometry, type RoiGeometry } from '../ops/roi_align.js';
import {
  COMPARED_OPS,
  V1_OPERATORS,
  type ComparedOp,
  type OpRunParams,
  type RoiOp,
} from '../ops/registry.js';
import { executeImages } from './images.js';
import {
  boxCoverage as coverageAtLevels,
  boxLevels,
  runOps as runLevelOps,
  type LevelMaps,
} from './run-ops.js';
import type { AlignMode, Boxes, FeatureMap, Pooled } from '../ops/types.js';
import { boxWarnings, size, type BoxFrame, type RoiWarning } from '../warnings.js';
import { checkOutputValues, layoutWarnings } from './prepare.js';
import type {
  FeatureMapInfo,
  FeaturesResult,
  ImageInfo,
  PipelineContext,
  RoiResult,
  RoiTimings,
} from './results.js';
import type { DecodedRoiTask, RoiParams } from './task.js';
import {
  checkBackboneWork,
  checkImageRoiWork,
  checkImagesRequest,
  scaleRotated,
  type ImageSize,
} from './image-work.js';

/** Every stage at 0, in the order of the response's `timings` (decode, backbone, then the operators). */
function zeroTimings(): RoiTimings {
  const timings = { decode: 0, backbone: 0 } as RoiTimings;
  for (const op of COMPARED_OPS) timings[op] = 0;
  return timings;
}

const now = () => performance.now();

const isComparedOp = (op: RoiOp): op is ComparedOp => (COMPARED_OPS as readonly string[]).includes(op);

/**
 * Decodes an image (with the configured pixel limit and resize) and runs the backbone on it.
 *
 * @param beforeDecode - the request's checks that need the image's size (output values, work budget),
 *   run on the header's size before decoding; default: the work budget of the backbone alone
 * @param maxSide - longest side after resizing, already capped by `MAX_IMAGE_SIDE` (see
 *   `resolveMaxSide`); undefined: `MAX_IMAGE_SIDE` alone
 * @returns the decoded image, the NHWC feature map `[1, C, H, W]`, and the stage timings
 */
async function imageToFeatures(
  bytes: Uint8Array,
  ctx: PipelineContext,
  beforeDecode?: (b: Backbone, size: ImageSize) => void,
  maxSide: number | undefined = ctx.limits.maxImageSide,
  stop?: TaskStop,
  pyramid = false,
) {
  // The backbone first: its limits are checked on the image's header, before anything is decoded.
  const backbone = await ctx.backbone();
  if (pyramid && !backbone.pyramid) {
    throw new InvalidInputError(
      `pyramid: the backbone ${backbone.name} has no feature pyramid`,
      'pyramid',
      'pyramid only with a backbone that has one (the built-in backbone, or an ONNX BACKBONE_DIR model with several outputs)',
    );
  }
  let t = now();
  const decoded = await decodeImage(bytes, {
    limitInputPixels: ctx.limits.maxImagePixels,
    maxSide,
    field: 'image',
    checkSize: (size) => {
      checkBackboneInput(backbone.limits, size);
      // The checks that need the image's size (output values, work budget) run on its header too,
      // before any pixel is decoded: `decodeImage` resizes to exactly this size.
      const scaled: ImageSize = {
        ...size,
        scaleX: size.width / size.originalWidth,
        scaleY: size.height / size.originalHeight,
      };
      if (beforeDecode) beforeDecode(backbone, scaled);
      // The budget with only the backbone (`beforeDecode` adds the ops' share to it).
      else checkBackboneWork(backbone, scaled, ctx.limits.maxWork);
    },
  });
  const decode = now() - t;
  // The backbone cannot be interrupted: check just before it, and right after.
  stop?.check();
  t = now();
  // With `pyramid`, the levels (finest first); `fm` is then the finest.
  const maps = pyramid && backbone.pyramid ? await backbone.pyramid.extract(decoded) : undefined;
  const fm = maps ? maps[0] : await backbone.extract(decoded);
  const backboneMs = now() - t;
  stop?.check();
  const image: ImageInfo = {
    width: decoded.width,
    height: decoded.height,
    originalWidth: decoded.originalWidth,
    originalHeight: decoded.originalHeight,
    scale: decoded.scale,
    scaleX: decoded.scaleX,
    scaleY: decoded.scaleY,
    format: decoded.format,
  };
  const strides = maps && backbone.pyramid ? backbone.pyramid.strides : [backbone.stride];
  const featureMap: FeatureMapInfo = {
    shape: [...fm.shape],
    stride: strides[0],
    spatialScale: 1 / strides[0],
    source: 'backbone',
    backbone: backbone.name,
    backend: ctx.backend(),
    ...(maps ? { levels: levelInfo(maps, strides) } : {}),
  };
  return { decoded, fm, maps, strides, image, featureMap, timings: { decode, backbone: backboneMs } };
}

/** `featureMap.levels` of a pyramid: each map's level (`log2(stride)`), shape, stride and scale. */
function levelInfo(
  maps: readonly FeatureMap[],
  strides: readonly number[],
): NonNullable<FeatureMapInfo['levels']> {
  return maps.map((m, i) => ({
    level: Math.round(Math.log2(strides[i])),
    shape: [...m.shape],
    stride: strides[i],
    spatialScale: 1 / strides[i],
  }));
}

/**
 * Refuses an adaptive sampling grid larger than `maxGrid` per axis (`ceil(roi / output)`), naming the
 * first such box. The kernels refuse grids over their own fixed 64; this applies the configured limit.
 */
function checkAdaptiveGrid(
  boxes: Boxes,
  params: RoiParams,
  scaleOf: (k: number) => number,
  maxGrid: number,
): void {
  if (params.samplingRatio > 0 || maxGrid >= MAX_SAMPLING_GRID) return;
  const [PH, PW] = params.outputSize;
  // The kernel's own float32 geometry (`roiGeometry`), not a float64 copy of it: a box the kernel would
  // sample with `maxGrid` points per axis is never refused here, and one over it always is.
  const geo: RoiGeometry = { startY: 0, startX: 0, binH: 0, binW: 0, gridH: 0, gridW: 0 };
  for (let k = 0; k < boxes.count; k++) {
    roiGeometry(boxes.data, k, Math.fround(scaleOf(k)), PH, PW, params.samplingRatio, params.aligned, geo);
    const gh = geo.gridH;
    const gw = geo.gridW;
    if (gh > maxGrid || gw > maxGrid) {
      throw new InvalidInputError(
        `the adaptive sampling grid of boxes[${k}] would be ${Math.max(gh, gw)} points per axis, over the limit of ${maxGrid}`,
        'samplingRatio',
        `a fixed samplingRatio from 1 to ${maxGrid}, or smaller boxes / a larger outputSize`,
      );
    }
  }
}

/** The operators' parameters, resolved (`spatialScale` from the backbone's stride for images). */
export interface OpsParams {
  ops: RoiOp[];
  spatialScale: number;
  outputSize: [number, number];
  samplingRatio: number;
  aligned: boolean;
  mode: AlignMode;
}

/**
 * Runs the requested operators on `boxes` over `fm` and records each op's time in `timings`.
 * The outputs are `[K, C, PH, PW]`, NCHW.
 */
export type OpsRunner = (
  fm: FeatureMap,
  boxes: Boxes,
  params: OpsParams,
  timings: RoiTimings,
  stop?: TaskStop,
) => Promise<Partial<Record<RoiOp, Pooled>>>;

/**
 * The operators in this thread, one after the other, each output in an array from `alloc` (given
 * its length, `K·C·PH·PW`) or a fresh one: the worker asks for a `.npy` answer's array with room for
 * the header in front, so that the file needs no copy of it (`writeNpy`).
 */
export function runOpsWith(alloc?: (length: number) => Float32Array): OpsRunner {
  return async (fm, opBoxes, params, timings, stop) => {
    // Checked by the kernels before each box (it counts the boxes for the pool).
    const shouldStop = stop ? () => stop.shouldStop() : undefined;
    // Each entry's kernel reads the parameters it lists (RoI Pool: none of sampling, aligned, mode).
    const runParams: OpRunParams = { ...opRunParams(params), shouldStop };
    const [PH, PW] = params.outputSize;
    const length = opBoxes.count * fm.shape[1] * PH * PW;
    const outputs: Partial<Record<RoiOp, Pooled>> = {};
    for (const op of params.ops) {
      const t = now();
      outputs[op] = V1_OPERATORS[op].run(fm, opBoxes, { ...runParams, into: alloc?.(length) });
      timings[op] = now() - t;
    }
    return outputs;
  };
}

/** The operators in this thread, one after the other (the default {@link OpsRunner}). */
export const runOpsHere: OpsRunner = runOpsWith();

/** The kernels' parameters for `params` (NCHW outputs), without `shouldStop`. */
export function opRunParams(params: OpsParams): OpRunParams {
  return {
    spatialScale: params.spatialScale,
    outputSize: params.outputSize,
    samplingRatio: params.samplingRatio,
    aligned: params.aligned,
    mode: params.mode,
    outputLayout: 'NCHW',
  };
}

/**
 * Runs one RoI request: decode + backbone (image input) or the user's map (features input), then the
 * requested operators on the same boxes, then per-box coverage.
 *
 * @param task - from `prepareRoi`, decoded by `decodeRoiTask` (boxes canonical, features checked finite)
 * @param ctx - the worker's backbone and limits
 * @param stop - the task's cancel flag and time limit (`src/cancel.ts`): checked between stages and
 *   before each box
 * @param runOps - runs the operators: in this thread by default; `src/runtime/split.ts` shares them
 *   with idle workers
 * @throws the typed errors of `src/errors.ts` (400/413/415) for bad images, boxes or parameters;
 *   CancelledError once `stop` says so
 */
export async function executeRoi(
  task: DecodedRoiTask,
  ctx: PipelineContext,
  stop?: TaskStop,
  runOps: OpsRunner = runOpsHere,
): Promise<RoiResult> {
  // Several images: each through this pipeline on its own, with its boxes (src/core/images.ts).
  // The whole request is held to the limits first, from the images' headers (src/core/images.ts).
  if (task.images) {
    return executeImages(
      task,
      (one) => executeRoi(one, ctx, stop),
      (tasks, perImage) => checkImagesRequest(task, tasks, ctx, perImage),
    );
  }
  const { params } = task;
  const timings = zeroTimings();
  let fm: FeatureMap;
  let image: ImageInfo | null = null;
  let rgb: Uint8Array | null = null;
  let featureMap: FeatureMapInfo;
  /** The boxes in input-image pixels (`task.boxes` unless they were sent normalized). */
  let boxes = task.boxes;
  let opBoxes: Boxes;
  let imageSize: [number, number];
  /** The frame `boxes` are in (input-image pixels): normalized boxes are fractions of it; warnings name it. */
  let frame: BoxFrame;
  /** Warnings about the inputs found here (after the task's, before those about the boxes). */
  const inputWarnings: RoiWarning[] = [];
  /** The maps the ops read: one, or a pyramid's levels (finest first) with their scales. */
  let levelMaps: LevelMaps;
  /** Rotated boxes in the operators' frame (`boxFormat: cxcywha`). */
  let opRotated = task.rotated;
  if (task.image !== undefined) {
    const out = await imageToFeatures(
      task.image,
      ctx,
      (backbone, size) => {
        // Check the output size and the work budget before decoding and the (expensive) backbone.
        // The channels of the map the ops will read: the pyramid's with `pyramid: true`.
        const channels = params.pyramid && backbone.pyramid ? backbone.pyramid.channels : backbone.channels;
        checkOutputValues(task.boxes.count, channels, params.outputSize, params.ops, ctx.limits);
        checkImageRoiWork(task, backbone, size, ctx.limits);
      },
      params.maxSide,
      stop,
      params.pyramid ?? false,
    );
    ({ fm, image, featureMap } = out);
    levelMaps = { maps: out.maps ?? [fm], scales: out.strides.map((t) => 1 / t) };
    if (opRotated) opRotated = scaleRotated(opRotated, image.scaleX, image.scaleY);
    timings.decode = out.timings.decode;
    timings.backbone = out.timings.backbone;
    if (task.includeImage) rgb = out.decoded.rgb;
    frame = {
      width: image.originalWidth,
      height: image.originalHeight,
      name: `the ${size(image.originalWidth, image.originalHeight)} image`,
    };
    if (params.normalized) boxes = denormalizeBoxes(task.boxes, frame.width, frame.height);
    opBoxes = boxes;
    // Each axis by its own factor: sharp's resize rounds each side, so the two factors differ.
    if (image.scaleX !== 1 || image.scaleY !== 1) {
      opBoxes = scaleBoxes(boxes, image.scaleX, image.scaleY);
    }
    imageSize = [image.width, image.height];
  } else if (task.features !== undefined) {
    fm = task.features;
    const s = params.spatialScale as number;
    const [, , H, W] = fm.shape;
    featureMap = {
      shape: [...fm.shape],
      stride: 1 / s,
      spatialScale: s,
      source: 'input',
      backbone: null,
      backend: null,
    };
    const scales = params.spatialScales ?? [s];
    const maps = task.levelFeatures ?? [fm];
    levelMaps = { maps, scales };
    if (task.levelFeatures)
      featureMap.levels = levelInfo(
        maps,
        scales.map((x) => 1 / x),
      );
    // Without an image size, coverage is clipped to the extent the feature map covers.
    imageSize = params.imageSize ?? [W / s, H / s];
    frame = {
      width: imageSize[0],
      height: imageSize[1],
      name: params.imageSize
        ? `the ${size(...imageSize)} image (imageSize)`
        : `the ${size(...imageSize)} area the ${W}×${H} feature map covers at spatialScale ${s}`,
    };
    if (params.normalized) boxes = denormalizeBoxes(task.boxes, frame.width, frame.height);
    opBoxes = boxes;
    // Here, not on the HTTP thread: a multipart .npy map's shape is known only once it is parsed.
    if (params.imageSize) {
      const [n, c] = fm.shape;
      const stored: [number, number, number, number] = fm.layout === 'NHWC' ? [n, H, W, c] : [n, c, H, W];
      inputWarnings.push(...layoutWarnings(stored, fm.layout, params.imageSize, s));
    }
  } else {
    throw new Error('executeRoi: task has neither image nor features');
  }
  const spatialScale = featureMap.spatialScale;
  // Each box on the map it runs on: a pyramid's boxes at their own level's scale.
  const boxLevelsOf = boxLevels(levelMaps, opBoxes, opRotated, params.levelMapping);
  checkAdaptiveGrid(
    opBoxes,
    params,
    (k) => (boxLevelsOf ? 2 ** -boxLevelsOf[k] : spatialScale),
    ctx.limits.maxSamplingGrid,
  );
  const opsParams: OpsParams = {
    ops: params.ops,
    spatialScale,
    outputSize: params.outputSize,
    samplingRatio: params.samplingRatio,
    aligned: params.aligned,
    mode: params.mode,
  };
  // RoI Pool, Align and Warp on one map run as they always did (and may be shared with idle workers,
  // `src/runtime/split.ts`); a pyramid, rotated boxes and the position-sensitive ops run here.
  const plain = levelMaps.maps.length === 1 && !opRotated && params.ops.every((op) => isComparedOp(op));
  let outputs: Partial<Record<RoiOp, Pooled>>;
  let levels: Int32Array | undefined;
  if (plain) {
    outputs = await runOps(fm, opBoxes, opsParams, timings, stop);
  } else {
    const shouldStop = stop ? () => stop.shouldStop() : undefined;
    const ran = runLevelOps(levelMaps, {
      ops: params.ops,
      boxes: opBoxes,
      rotated: opRotated,
      params: { ...opRunParams(opsParams), shouldStop, clockwise: params.clockwise ?? false },
      levelMapping: params.levelMapping,
      timed: (op, ms) => {
        timings[op as RoiOp] = ms;
      },
    });
    outputs = ran.outputs as Partial<Record<RoiOp, Pooled>>;
    levels = ran.levels;
  }
  stop?.check();
  const boxCoverage = plain
    ? Array.from({ length: opBoxes.count }, (_, k) =>
        coverage(boxAt(opBoxes, k), { spatialScale, imageSize }),
      )
    : coverageAtLevels(levelMaps, levels, opBoxes, opRotated, imageSize, {
        aligned: params.aligned,
        clockwise: params.clockwise ?? false,
      });
  return {
    params: { ...params, spatialScale },
    image,
    rgb,
    ...(task.includeImage ? { features: fm } : {}),
    featureMap,
    boxes,
    opBoxes,
    outputs,
    coverage: boxCoverage,
    levels: levels ? Array.from(levels) : null,
    warnings: [
      ...task.warnings,
      ...inputWarnings,
      ...boxWarnings(boxes, frame, Object.values(outputs), params.normalized),
    ],
    timings,
  };
}

/**
 * Runs the backbone on one image: `POST /v1/features`.
 *
 * @param bytes - the encoded image
 * @param maxSide - the request's `maxSide`, already capped by `MAX_IMAGE_SIDE`; default the cap alone
 * @param stop - the task's cancel flag and time limit, checked after decoding and after the backbone
 * @returns the feature map `[1, C, H, W]` in NCHW order, with the image and backbone facts
 */
export async function executeFeatures(
  bytes: Uint8Array,
  ctx: PipelineContext,
  maxSide: number | undefined = ctx.limits.maxImageSide,
  stop?: TaskStop,
): Promise<FeaturesResult> {
  const out = await imageToFeatures(bytes, ctx, undefined, maxSide, stop);
  return {
    image: out.image,
    featureMap: out.featureMap,
    features: toLayout(out.fm, 'NCHW'),
    timings: out.timings,
  };
}

/** The backbone's description, backend included (`GET /v1/backbone`). */
export async function describeBackbone(ctx: PipelineContext): Promise<BackboneDescription> {
  const backbone = await ctx.backbone();
  return backbone.describe();
}

/**
 * The kernels that run outside the `/v1/roi` pipeline, as one worker task kind: the Open Inference
 * Protocol models `ps_roi_align` / `ps_roi_pool` (R-FCN), `rotated_roi_align` and
 * `multiscale_roi_align` (FPN). A feature map (or a pyramid) and boxes in, the kernel's output out; no
 * image, no coverage statistics. Maps travel as `.npy` bytes and are read and checked (finite values)
 * in the worker, as `/v1/roi`'s are.
 */
import {
  assertBoxes,
  multiScaleRoi,
  psRoiAlign,
  psRoiPool,
  rotatedRoiAlign,
  type Boxes,
  type LevelMapping,
  type RotatedBoxes,
} from '../ops/index.js';
import type { FeaturesInput } from '../core/task.js';
import { decodeFeaturesInput } from '../core/decode-task.js';

/** Output bins and sampling, shared by every kernel task. */
interface KernelCommon {
  outputSize: [number, number];
  /** Sampling points per bin and axis (`<= 0` adaptive); `ps_pool` does not sample. */
  samplingRatio: number;
}

/** A kernel task, structured-cloneable (its buffers move to the worker). */
export type KernelTask = KernelCommon &
  (
    | {
        op: 'ps_align' | 'ps_pool';
        features: FeaturesInput;
        /** Canonical `[K, 5]` boxes in image pixels; batch indices checked against N in the worker. */
        boxes: Boxes;
        spatialScale: number;
      }
    | {
        op: 'rotated_align';
        features: FeaturesInput;
        /** `[K, 6]` rows `(b, cx, cy, w, h, angle)`, degrees. */
        boxes: RotatedBoxes;
        spatialScale: number;
        aligned: boolean;
        clockwise: boolean;
      }
    | {
        op: 'multiscale_align';
        /** The pyramid, finest first. */
        features: FeaturesInput[];
        boxes: Boxes;
        /** One per level, `2^-k` for consecutive `k`. */
        spatialScales: number[];
        aligned: boolean;
        mapping: LevelMapping;
      }
  );

export type KernelOp = KernelTask['op'];

/** What the worker sends back: the output, the level of each box (multi-scale), the stage timings (ms). */
export interface KernelResult {
  data: Float32Array;
  shape: [number, number, number, number];
  levels: Int32Array | undefined;
  timings: Record<string, number>;
}

/**
 * Runs a {@link KernelTask} (in the worker).
 *
 * @param check - called between stages: throws when the task was cancelled or ran out of time
 * @param shouldStop - given to the kernels, which call it before each box (`TaskStop.shouldStop`), so a
 *   long kernel stops for a client gone away or `TASK_TIMEOUT_SECONDS` too; default: never
 * @throws InvalidInputError naming `features`, `rois` or the parameter at fault; CancelledError
 */
export function runKernel(task: KernelTask, check: () => void, shouldStop?: () => boolean): KernelResult {
  const started = performance.now();
  let result: { data: Float32Array; shape: [number, number, number, number]; levels?: Int32Array };
  let decoded: number;
  const { outputSize, samplingRatio } = task;
  if (task.op === 'multiscale_align') {
    const maps = task.features.map((f) => decodeFeaturesInput(f));
    decoded = performance.now();
    check();
    const out = multiScaleRoi(
      'align',
      maps,
      task.spatialScales,
      task.boxes,
      { outputSize, samplingRatio, aligned: task.aligned, shouldStop },
      task.mapping,
    );
    result = { data: out.output.data, shape: out.output.shape, levels: out.levels };
  } else {
    const map = decodeFeaturesInput(task.features);
    decoded = performance.now();
    check();
    const spatialScale = task.spatialScale;
    if (task.op === 'rotated_align') {
      const { aligned, clockwise } = task;
      result = rotatedRoiAlign(map, task.boxes, {
        spatialScale,
        outputSize,
        samplingRatio,
        aligned,
        clockwise,
        shouldStop,
      });
    } else {
      assertBoxes(task.boxes, map.shape[0], 'rois');
      result =
        task.op === 'ps_align'
          ? psRoiAlign(map, task.boxes, { spatialScale, outputSize, samplingRatio, shouldStop })
          : psRoiPool(map, task.boxes, { spatialScale, outputSize, shouldStop });
    }
  }
  return {
    data: result.data,
    shape: result.shape,
    levels: result.levels,
    timings: { decode: decoded - started, [task.op]: performance.now() - decoded },
  };
}

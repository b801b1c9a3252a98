/**
 * Position-sensitive RoI Align / Pool (R-FCN) as a worker task: the Open Inference Protocol models
 * `ps_roi_align` and `ps_roi_pool`. They run outside the `/v1/roi` pipeline (no image, no coverage
 * statistics): a feature map and boxes in, the kernel's `[K, C_out, PH, PW]` out. The map travels as
 * `.npy` bytes and is read and checked (finite values) in the worker, as `/v1/roi`'s are.
 */
import { assertBoxes, psRoiAlign, psRoiPool, type Boxes } from '../ops/index.js';
import type { FeaturesInput } from '../request.js';
import { decodeFeaturesInput } from '../task-input.js';

/** The position-sensitive operators. */
export type PsOp = 'ps_align' | 'ps_pool';

/** A position-sensitive task, structured-cloneable (its buffers move to the worker). */
export interface PsRoiTask {
  op: PsOp;
  features: FeaturesInput;
  /** Canonical `[K, 5]` boxes in image pixels; the batch indices are checked against N in the worker. */
  boxes: Boxes;
  spatialScale: number;
  outputSize: [number, number];
  /** Only `ps_align` samples. */
  samplingRatio: number;
}

/** What the worker sends back: the output and the stage timings (ms). */
export interface PsRoiResult {
  data: Float32Array;
  shape: [number, number, number, number];
  timings: { decode: number } & Partial<Record<PsOp, number>>;
}

/**
 * Runs a {@link PsRoiTask} (in the worker).
 *
 * @param check - called between stages: throws when the task was cancelled or ran out of time
 * @throws InvalidInputError naming `features`, `rois` or the channel count
 */
export function runPsRoi(task: PsRoiTask, check: () => void): PsRoiResult {
  const started = performance.now();
  const map = decodeFeaturesInput(task.features);
  assertBoxes(task.boxes, map.shape[0], 'rois');
  const decoded = performance.now();
  check();
  const params = { spatialScale: task.spatialScale, outputSize: task.outputSize };
  const out =
    task.op === 'ps_align'
      ? psRoiAlign(map, task.boxes, { ...params, samplingRatio: task.samplingRatio })
      : psRoiPool(map, task.boxes, params);
  return {
    data: out.data,
    shape: out.shape,
    timings: { decode: decoded - started, [task.op]: performance.now() - decoded },
  };
}

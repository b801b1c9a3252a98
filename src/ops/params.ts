/** Parameter checks shared by the RoI operators (errors name the parameter). */
import { InvalidInputError } from '../errors.js';
import type { Layout } from './types.js';

/** Largest sampling grid per axis and per bin (fixed `samplingRatio` or adaptive): a cost guard. */
export const MAX_SAMPLING_GRID = 64;

/**
 * Refuses a missing or non-object parameter bag (a JavaScript caller's `undefined`) with an error
 * naming `params`, before any field is read. `op` names the operator in the message.
 */
export function assertParamsObject(params: unknown, op: string): void {
  if (params === null || typeof params !== 'object') {
    throw new InvalidInputError(`${op} parameters are missing`, 'params', 'an object with spatialScale');
  }
}

/** Resolves `outputSize` (a number or `[PH, PW]`, default 7) to `[PH, PW]`, positive integers. */
export function resolveOutputSize(
  outputSize: number | readonly [number, number] | undefined,
): [number, number] {
  const size = outputSize ?? 7;
  const pair: readonly unknown[] = typeof size === 'number' ? [size, size] : size;
  if (
    !Array.isArray(pair) ||
    pair.length !== 2 ||
    !pair.every((v) => typeof v === 'number' && Number.isInteger(v) && v > 0)
  ) {
    throw new InvalidInputError(
      `outputSize must be a positive integer or [PH, PW] of positive integers, got ${JSON.stringify(outputSize)}`,
      'outputSize',
      'a positive integer or [PH, PW] of positive integers',
    );
  }
  return [pair[0] as number, pair[1] as number];
}

/** Checks `spatialScale` (finite, > 0) and returns it rounded to float32, as the peers store it. */
export function resolveSpatialScale(spatialScale: number): number {
  const s = Math.fround(spatialScale);
  if (typeof spatialScale !== 'number' || !Number.isFinite(s) || s <= 0) {
    throw new InvalidInputError(
      `spatialScale must be a finite number > 0 (1 / stride), got ${String(spatialScale)}`,
      'spatialScale',
      'a finite number > 0, e.g. 0.0625 for stride 16',
    );
  }
  return s;
}

/**
 * Checks `samplingRatio` (default 2): an integer, `<= 0` for adaptive, at most `MAX_SAMPLING_GRID`
 * (the adaptive grid is bounded per box where the box is known).
 */
export function resolveSamplingRatio(samplingRatio: number | undefined): number {
  const r = samplingRatio ?? 2;
  if (typeof r !== 'number' || !Number.isInteger(r) || r > MAX_SAMPLING_GRID) {
    throw new InvalidInputError(
      `samplingRatio must be an integer <= ${MAX_SAMPLING_GRID} (<= 0 = adaptive), got ${String(r)}`,
      'samplingRatio',
      `an integer <= ${MAX_SAMPLING_GRID}; <= 0 for adaptive`,
    );
  }
  return r;
}

/** Checks `outputLayout` (default `'NCHW'`). */
export function resolveLayout(layout: Layout | undefined): Layout {
  const l = layout ?? 'NCHW';
  if (l !== 'NCHW' && l !== 'NHWC') {
    throw new InvalidInputError(
      `outputLayout must be 'NCHW' or 'NHWC', got ${String(l)}`,
      'outputLayout',
      "'NCHW' or 'NHWC'",
    );
  }
  return l;
}

/**
 * The array a kernel writes its result into: `into` when given (it must hold exactly `length`
 * floats), else a fresh one.
 *
 * @throws InvalidInputError (field `into`) for an array of another length
 */
export function resultArray(into: Float32Array | undefined, length: number): Float32Array {
  if (into === undefined) return new Float32Array(length);
  if (!(into instanceof Float32Array) || into.length !== length) {
    throw new InvalidInputError(
      `into holds ${into instanceof Float32Array ? into.length : 'no'} floats; the result has ${length}`,
      'into',
      `a Float32Array of exactly K·C·PH·PW = ${length} floats`,
    );
  }
  return into;
}

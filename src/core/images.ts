/**
 * Several images in one RoI request (`images`): each image goes through the pipeline on its own (its
 * own size, its own backbone pass, its coverage clipped to it) with the boxes whose batch index picks
 * it, and the results are put back together in the boxes' order. So one request with two images gives
 * what two requests with one image give, row for row.
 */
import { InvalidInputError, TooLargeError, UnsupportedMediaError } from '../errors.js';
import type { RoiOp } from '../ops/registry.js';
import type { RotatedBoxes } from '../ops/rotated_roi_align.js';
import type { Boxes, Pooled } from '../ops/types.js';
import { mergeImageWarnings, type RoiWarning } from '../warnings.js';
import type { ImageInfo, RoiResult } from './results.js';
import type { DecodedRoiTask } from './task.js';

/** The rows of `data` (`cols` values each) whose batch index (column 0) is `b`, with it set to 0. */
function rowsOf(
  data: Float32Array,
  count: number,
  cols: number,
  b: number,
): { rows: number[]; data: Float32Array } {
  const rows: number[] = [];
  for (let k = 0; k < count; k++) if (data[cols * k] === b) rows.push(k);
  const out = new Float32Array(cols * rows.length);
  rows.forEach((k, j) => {
    out.set(data.subarray(cols * k, cols * k + cols), cols * j);
    out[cols * j] = 0;
  });
  return { rows, data: out };
}

/** `boxes[j]` of one image's request → `boxes[k]`, the row the client sent (in fields and messages). */
function renameBoxes(warning: RoiWarning, rows: readonly number[]): RoiWarning {
  const rename = (text: string) =>
    text.replace(/boxes\[(\d+)\]/g, (_, j: string) => `boxes[${rows[Number(j)]}]`);
  return {
    ...warning,
    message: rename(warning.message),
    ...(warning.field ? { field: rename(warning.field) } : {}),
  };
}

/**
 * An error about one image (field `image`, as the pipeline names its input) renamed for the request's
 * `images[i]`; other errors pass unchanged.
 */
function imageError(err: unknown, i: number): unknown {
  if (
    !(
      err instanceof InvalidInputError ||
      err instanceof TooLargeError ||
      err instanceof UnsupportedMediaError
    ) ||
    err.field !== 'image'
  ) {
    return err;
  }
  const Kind = err.constructor as new (message: string, field: string, expected: string) => Error;
  return new Kind(`images[${i}]: ${err.message}`, `images[${i}]`, err.expected);
}

/** Runs `run` for image `i`, its errors about `image` renamed `images[i]`. */
async function forImage<T>(i: number, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw imageError(err, i);
  }
}

/**
 * Runs a task with `images`: `checkAll` on the images' own tasks first (the request's limits on the
 * whole request: one request with 8 images must not do 8 × `MAX_WORK`), then `executeOne` (the
 * pipeline's `executeRoi`) once per image on its boxes, then scatters the rows back. The result's
 * `image` and `featureMap` are the first image's; `images` lists each image's. Every image runs, even
 * one no box picks (its map fixes the output's `C`).
 *
 * @param checkAll - given each image's task and a wrapper that renames an image's errors `images[i]`
 * @throws whatever `checkAll` or `executeOne` throws for an image, its message prefixed with `images[i]`
 */
export async function executeImages(
  task: DecodedRoiTask,
  executeOne: (task: DecodedRoiTask) => Promise<RoiResult>,
  checkAll?: (
    tasks: DecodedRoiTask[],
    perImage: <T>(i: number, run: () => Promise<T>) => Promise<T>,
  ) => Promise<void>,
): Promise<RoiResult & { images: ImageInfo[] }> {
  const images = task.images as Uint8Array[];
  const K = task.boxes.count;
  const tasks: { rows: number[]; task: DecodedRoiTask }[] = [];
  for (let i = 0; i < images.length; i++) {
    const picked = rowsOf(task.boxes.data, K, 5, i);
    const boxes: Boxes = { data: picked.data, count: picked.rows.length };
    const rotated: RotatedBoxes | undefined = task.rotated
      ? { data: rowsOf(task.rotated.data, K, 6, i).data, count: picked.rows.length }
      : undefined;
    tasks.push({
      rows: picked.rows,
      task: {
        ...task,
        image: images[i],
        images: undefined,
        boxes,
        ...(rotated ? { rotated } : {}),
        // The task's own warnings once, with the first image.
        warnings: i === 0 ? task.warnings : [],
      },
    });
  }
  await checkAll?.(
    tasks.map((t) => t.task),
    forImage,
  );
  const parts: { rows: number[]; result: RoiResult }[] = [];
  for (const [i, one] of tasks.entries()) {
    parts.push({ rows: one.rows, result: await forImage(i, () => executeOne(one.task)) });
  }
  const first = parts[0].result;
  // Outputs: `[K, C, PH, PW]` per op, each image's rows where its boxes were.
  const outputs: Partial<Record<RoiOp, Pooled>> = {};
  for (const op of Object.keys(first.outputs) as RoiOp[]) {
    const [, C, PH, PW] = (first.outputs[op] as Pooled).shape;
    const row = C * PH * PW;
    const data = new Float32Array(K * row);
    for (const { rows, result } of parts) {
      const pooled = result.outputs[op] as Pooled;
      rows.forEach((k, j) => data.set(pooled.data.subarray(j * row, (j + 1) * row), k * row));
    }
    outputs[op] = { data, shape: [K, C, PH, PW], layout: 'NCHW' };
  }
  const scatterBoxes = (pick: (r: RoiResult) => Boxes): Boxes => {
    const data = new Float32Array(5 * K);
    parts.forEach(({ rows, result }, i) =>
      rows.forEach((k, j) => {
        data.set(pick(result).data.subarray(5 * j, 5 * j + 5), 5 * k);
        data[5 * k] = i;
      }),
    );
    return { data, count: K };
  };
  const coverage: RoiResult['coverage'] = new Array(K);
  const levels: number[] | null = first.levels ? new Array<number>(K) : null;
  const timings = { ...first.timings };
  for (const [i, { rows, result }] of parts.entries()) {
    rows.forEach((k, j) => {
      coverage[k] = result.coverage[j];
      if (levels && result.levels) levels[k] = result.levels[j];
    });
    if (i > 0) {
      for (const key of Object.keys(result.timings) as (keyof typeof timings)[]) {
        timings[key] = (timings[key] ?? 0) + (result.timings[key] ?? 0);
      }
    }
  }
  return {
    ...first,
    boxes: scatterBoxes((r) => r.boxes),
    opBoxes: scatterBoxes((r) => r.opBoxes),
    outputs,
    coverage,
    levels,
    images: parts.map((p) => p.result.image as ImageInfo),
    // One list as one image's would be: box-outside capped over all images, look-alikes said once.
    warnings: mergeImageWarnings(
      parts.map(({ rows, result }) => result.warnings.map((w) => renameBoxes(w, rows))),
      K,
    ),
    timings,
  };
}

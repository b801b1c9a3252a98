/**
 * The operators of one request on one image's feature maps: one map (a single level, any
 * `spatialScale`) or a pyramid (several maps, finest first, powers of two: each box on its level, see
 * `src/ops/multiscale.ts`), upright boxes `[K, 5]` or rotated ones `[K, 6]`; and each box's coverage at
 * the stride it was pooled at. Pure (no HTTP, no decoding): the pipeline calls it once per image.
 */
import { InvalidInputError } from '../errors.js';
import { boxAt } from '../ops/boxes.js';
import { coverage, type BoxCoverage } from '../ops/coverage.js';
import { rotatedCoverage, type RotatedBoxCoverage } from '../ops/coverage-rotated.js';
import {
  mapLevels,
  mapRotatedLevels,
  multiScaleRoi,
  multiScaleRotatedRoiAlign,
  type LevelMapping,
} from '../ops/multiscale.js';
import { operator, type OpRunParams } from '../ops/registry.js';
import type { RotatedBoxes } from '../ops/rotated_roi_align.js';
import type { Boxes, FeatureMap, Pooled } from '../ops/types.js';

/** The box columns an op takes: `rotated_align` reads `(b, cx, cy, w, h, angle)`, the others `(b, x1, y1, x2, y2)`. */
export const ROTATED_OPS: readonly string[] = ['rotated_align'];

/** One image's maps: one, or a pyramid finest first with `2^-k` scales. */
export interface LevelMaps {
  maps: readonly FeatureMap[];
  scales: readonly number[];
}

/** What {@link runOps} needs besides the maps. */
export interface RunOpsRequest {
  ops: readonly string[];
  /** Upright boxes (image px of the frame the maps were computed from); with `rotated`, their upright boxes. */
  boxes: Boxes;
  /** Rotated boxes `(b, cx, cy, w, h, angle)`, when the request's `boxFormat` is `cxcywha`. */
  rotated?: RotatedBoxes;
  params: Omit<OpRunParams, 'spatialScale'> & { clockwise?: boolean };
  levelMapping?: LevelMapping;
  /** Called after each op with its time in ms. */
  timed?: (op: string, ms: number) => void;
}

/** The outputs of {@link runOps}: one `[K, C (or C_out), PH, PW]` tensor per op, and the level of each box (pyramid only). */
export interface RunOpsResult {
  outputs: Record<string, Pooled>;
  /** The level `k` (scale `2^-k`) of each box; undefined with a single map. */
  levels: Int32Array | undefined;
}

/**
 * Runs `ops` on `maps`: with one map, each op's kernel at that map's scale (as `/v1` always did); with
 * several, `multiScaleRoi` / `multiScaleRotatedRoiAlign` (each box on its level, rows in the boxes'
 * order). Rotated boxes go only to `rotated_align` (the caller refuses other ops).
 *
 * @throws InvalidInputError naming the field (`features[i].shape`, `spatialScale[i]`, `boxes[k]…`, the
 *   ps ops' channel count on `features.shape`)
 */
export function runOps(levelMaps: LevelMaps, req: RunOpsRequest): RunOpsResult {
  const { maps, scales } = levelMaps;
  const pyramid = maps.length > 1;
  const outputs: Record<string, Pooled> = {};
  let levels: Int32Array | undefined;
  for (const op of req.ops) {
    const t = performance.now();
    const rotatedOp = ROTATED_OPS.includes(op);
    if (rotatedOp && !req.rotated) {
      throw new InvalidInputError(
        `${op} takes rotated boxes: send boxFormat "cxcywha" with rows (cx, cy, w, h, angle)`,
        'boxFormat',
        '"cxcywha" with rotated_align',
      );
    }
    if (pyramid) {
      const result = rotatedOp
        ? multiScaleRotatedRoiAlign(maps, scales, req.rotated as RotatedBoxes, req.params, req.levelMapping)
        : multiScaleRoi(
            op as Parameters<typeof multiScaleRoi>[0],
            maps,
            scales,
            req.boxes,
            req.params,
            req.levelMapping,
          );
      outputs[op] = result.output;
      levels = result.levels;
    } else if (rotatedOp) {
      outputs[op] = operator('rotated_align').run(maps[0], req.rotated as RotatedBoxes, {
        ...req.params,
        spatialScale: scales[0],
      });
    } else {
      const entry = operator(op as 'pool');
      outputs[op] = (entry.run as (m: FeatureMap, b: Boxes, p: OpRunParams) => Pooled)(maps[0], req.boxes, {
        ...req.params,
        spatialScale: scales[0],
      });
    }
    req.timed?.(op, performance.now() - t);
  }
  // Levels are the boxes' whatever the ops (coverage and the response need them with no op too).
  if (pyramid && levels === undefined)
    levels = boxLevels(levelMaps, req.boxes, req.rotated, req.levelMapping);
  return { outputs, levels };
}

/**
 * Each box's pyramid level (`log2` of its stride), as the multi-level ops assign it (FPN Eq. 1 on the
 * box, or on the rotated box's own size), or `undefined` for one map.
 */
export function boxLevels(
  levelMaps: LevelMaps,
  boxes: Boxes,
  rotated: RotatedBoxes | undefined,
  levelMapping: LevelMapping | undefined,
): Int32Array | undefined {
  const { maps, scales } = levelMaps;
  if (maps.length < 2) return undefined;
  const kMin = -Math.log2(scales[0]);
  const kMax = kMin + maps.length - 1;
  return rotated
    ? mapRotatedLevels(rotated, levelMapping, kMin, kMax)
    : mapLevels(boxes, levelMapping, kMin, kMax);
}

/**
 * Each box's coverage at the scale it was pooled at (its level's, or the one map's), clipped to
 * `imageSize`: `coverage()` of the upright box, or `rotatedCoverage()` of the rotated one.
 */
export function boxCoverage(
  levelMaps: LevelMaps,
  levels: Int32Array | undefined,
  boxes: Boxes,
  rotated: RotatedBoxes | undefined,
  imageSize: readonly [number, number],
  options: { aligned: boolean; clockwise: boolean },
): (BoxCoverage | RotatedBoxCoverage)[] {
  const out: (BoxCoverage | RotatedBoxCoverage)[] = [];
  for (let k = 0; k < boxes.count; k++) {
    const spatialScale = levels ? 2 ** -levels[k] : levelMaps.scales[0];
    if (rotated) {
      const d = rotated.data;
      const o = 6 * k;
      out.push(
        rotatedCoverage(
          { cx: d[o + 1], cy: d[o + 2], w: d[o + 3], h: d[o + 4], angle: d[o + 5] },
          { spatialScale, imageSize, aligned: options.aligned, clockwise: options.clockwise },
        ),
      );
    } else {
      out.push(coverage(boxAt(boxes, k), { spatialScale, imageSize }));
    }
  }
  return out;
}

/**
 * The upright bounding boxes `[K, 5]` of rotated boxes (what `coverage` and the warnings about boxes
 * outside the image read; and what the diff's upright operators pool).
 */
export function uprightBoxes(rotated: RotatedBoxes, clockwise: boolean): Boxes {
  const data = new Float32Array(5 * rotated.count);
  const d = rotated.data;
  for (let k = 0; k < rotated.count; k++) {
    const o = 6 * k;
    const theta = ((clockwise ? -1 : 1) * d[o + 5] * Math.PI) / 180;
    const c = Math.abs(Math.cos(theta));
    const s = Math.abs(Math.sin(theta));
    const hw = (d[o + 3] * c + d[o + 4] * s) / 2;
    const hh = (d[o + 3] * s + d[o + 4] * c) / 2;
    data.set([d[o], d[o + 1] - hw, d[o + 2] - hh, d[o + 1] + hw, d[o + 2] + hh], 5 * k);
  }
  return { data, count: rotated.count };
}

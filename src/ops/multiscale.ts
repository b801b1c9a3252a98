/**
 * Multi-level (FPN) pooling: each box is pooled from the one pyramid level that fits its size
 * (Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017,
 * https://arxiv.org/abs/1612.03144, Eq. 1), as torchvision's `MultiScaleRoIAlign` and detectron2's
 * `ROIPooler` do. It composes the single-level kernels (`roiAlign`, `roiPool`, `roiWarp`,
 * `psRoiAlign`, `psRoiPool`, `rotatedRoiAlign`); nothing here samples a map itself.
 */
import { InvalidInputError } from '../errors.js';
import { assertBoxes } from './boxes.js';
import { assertFeatureShape } from './features.js';
import { resolveLayout, resolveOutputSize } from './params.js';
import type { RoiAlignParams } from './roi_align.js';
import { psChannelsOut } from './ps_roi_align.js';
import type { RotatedBoxes, RotatedRoiAlignParams } from './rotated_roi_align.js';
import { assertRotatedBoxes, rotatedRoiAlign } from './rotated_roi_align.js';
import { UPRIGHT_OPERATORS, type UprightOp } from './registry.js';
import type { Boxes, FeatureMap, Pooled } from './types.js';

/** The level rules: torchvision's `LevelMapper` or detectron2's `assign_boxes_to_levels`. */
export const LEVEL_RULES = ['torchvision', 'detectron2'] as const;

/** FPN's defaults (torchvision's `LevelMapper`): box size 224 is level 4, torchvision's rounding. */
export const LEVEL_MAPPING_DEFAULTS = {
  rule: 'torchvision',
  canonicalBoxSize: 224,
  canonicalLevel: 4,
} as const;
export type LevelRule = (typeof LEVEL_RULES)[number];

/** How boxes are assigned to pyramid levels (FPN Eq. 1). */
export interface LevelMapping {
  /** `'torchvision'` (default) or `'detectron2'`; they differ only at level boundaries. */
  rule?: LevelRule;
  /** `S0`: the box size (sqrt of the area, image pixels) that goes to `canonicalLevel`. Default 224. */
  canonicalBoxSize?: number;
  /** `L0`: the level of a box of `canonicalBoxSize`. Default 4 (stride 16). */
  canonicalLevel?: number;
}

/**
 * The operators `multiScaleRoi` can run per level: the registry's upright-box ones (rotated boxes go
 * through `multiScaleRotatedRoiAlign`).
 */
export const MULTI_SCALE_OPS: readonly MultiScaleOp[] = UPRIGHT_OPERATORS.map((op) => op.name);
export type MultiScaleOp = UprightOp;

/** The kernel behind each op name; all take `(map, boxes, params with spatialScale)`. */
const KERNELS = Object.fromEntries(UPRIGHT_OPERATORS.map((op) => [op.name, op.run])) as Record<
  MultiScaleOp,
  (input: FeatureMap, boxes: Boxes, params: RoiAlignParams) => Pooled
>;

/**
 * Per-level parameters: those of `roiAlign` without `spatialScale` (each level brings its own).
 * `'pool'` and `'ps_pool'` read only `outputSize` and `outputLayout`, `'ps_align'` also
 * `samplingRatio` (its half-pixel offset is always on).
 */
export type MultiScaleParams = Omit<RoiAlignParams, 'spatialScale'>;

/** The result of `multiScaleRoi`. */
export interface MultiScalePooled {
  /** `[K, C, PH, PW]` (`C / (PH·PW)` channels for the ps ops), row `k` is box `k`, whatever its level. */
  output: Pooled;
  /** The level `k` (not an index into the maps: scale `2^-k`) each box was pooled from. */
  levels: Int32Array;
}

const fround = Math.fround;
/** torchvision's `eps` and detectron2's, as float32 (both add them to a float32 tensor). */
const TORCHVISION_EPS = fround(1e-6);
const DETECTRON2_EPS = fround(1e-8);

interface MappingSettings {
  rule: LevelRule;
  s0: number;
  l0: number;
}

function resolveMapping(mapping: LevelMapping | undefined): MappingSettings {
  const m = mapping ?? {};
  if (m === null || typeof m !== 'object') {
    throw new InvalidInputError(
      `levelMapping must be an object, got ${String(m)}`,
      'levelMapping',
      '{ rule, canonicalBoxSize, canonicalLevel }',
    );
  }
  const rule = m.rule ?? LEVEL_MAPPING_DEFAULTS.rule;
  if (!LEVEL_RULES.includes(rule)) {
    throw new InvalidInputError(
      `levelMapping.rule must be one of ${LEVEL_RULES.join(', ')}, got ${String(rule)}`,
      'levelMapping.rule',
      LEVEL_RULES.map((r) => `'${r}'`).join(' or '),
    );
  }
  const s0 = m.canonicalBoxSize ?? LEVEL_MAPPING_DEFAULTS.canonicalBoxSize;
  if (typeof s0 !== 'number' || !Number.isFinite(s0) || s0 <= 0) {
    throw new InvalidInputError(
      `levelMapping.canonicalBoxSize must be a finite number > 0, got ${String(s0)}`,
      'levelMapping.canonicalBoxSize',
      `a finite number > 0 (image pixels), default ${LEVEL_MAPPING_DEFAULTS.canonicalBoxSize}`,
    );
  }
  const l0 = m.canonicalLevel ?? LEVEL_MAPPING_DEFAULTS.canonicalLevel;
  if (typeof l0 !== 'number' || !Number.isInteger(l0) || Math.abs(l0) > 64) {
    throw new InvalidInputError(
      `levelMapping.canonicalLevel must be an integer, got ${String(l0)}`,
      'levelMapping.canonicalLevel',
      `an integer level (scale 2^-level), default ${LEVEL_MAPPING_DEFAULTS.canonicalLevel}`,
    );
  }
  return { rule, s0: fround(s0), l0 };
}

/**
 * The FPN level of every box (Lin et al. 2017, Eq. 1): with `s = sqrt((x2 - x1)·(y2 - y1))` in image
 * pixels (no +1), `S0 = canonicalBoxSize` (224) and `L0 = canonicalLevel` (4):
 * - `'torchvision'` (default, `LevelMapper`): `k = floor(L0 + log2(s / S0) + 1e-6)`;
 * - `'detectron2'` (`assign_boxes_to_levels`): `k = floor(L0 + log2(s / S0 + 1e-8))`;
 *
 * then `k` is clamped to `[kMin, kMax]`; a zero-area box (`log2(0) = -∞`) goes to `kMin`.
 *
 * Every step is rounded to float32 as the libraries compute it on float32 tensors, because that is
 * where the rules part: for `s = 223.9999`, `s / 224 = 0.99999959`, `log2 = -5.9e-7`, and
 * `4 - 5.9e-7 = 3.9999994` in float32. torchvision adds 1e-6 after the log (→ 4.0000005, level 4);
 * detectron2 adds 1e-8 inside the log, below float32's resolution at 1 (→ level 3). The eps only
 * helps near the canonical size: `s = 111.9999` is level 2 under both.
 *
 * Example: a 224×224 box is level 4, 112×112 level 3, 448×448 level 5, 32×32 level 1 → clamped to 2
 * with maps P2..P5.
 *
 * @param boxes `[K, 5]` canonical boxes (image pixels).
 * @param mapping rule and canonical size/level (defaults above).
 * @param kMin finest level present (e.g. 2 for a map at scale 1/4).
 * @param kMax coarsest level present (e.g. 5 for 1/32), `>= kMin`.
 * @returns the level of each box, `Int32Array` of length K.
 * @throws InvalidInputError naming `levelMapping.rule`, `levelMapping.canonicalBoxSize`, ...
 */
export function mapLevels(
  boxes: Boxes,
  mapping: LevelMapping | undefined,
  kMin: number,
  kMax: number,
): Int32Array {
  const d = boxes.data;
  // float32 like torchvision's box_area / detectron2's Boxes.area() on float32 boxes.
  return levelsBySize(boxes.count, mapping, kMin, kMax, (k) => {
    const o = 5 * k;
    const w = fround(fround(d[o + 3]) - fround(d[o + 1]));
    const h = fround(fround(d[o + 4]) - fround(d[o + 2]));
    return fround(w * h);
  });
}

/**
 * `mapLevels` for rotated boxes `(b, cx, cy, w, h, angle)`: `s = sqrt(w·h)` (the area does not depend
 * on the angle; detectron2's `RotatedBoxes.area()`, which its `ROIPooler` uses for
 * `ROIAlignRotated`), then the same rule, clamp and zero-area case.
 */
export function mapRotatedLevels(
  boxes: RotatedBoxes,
  mapping: LevelMapping | undefined,
  kMin: number,
  kMax: number,
): Int32Array {
  const d = boxes.data;
  return levelsBySize(boxes.count, mapping, kMin, kMax, (k) =>
    fround(fround(d[6 * k + 3]) * fround(d[6 * k + 4])),
  );
}

/** FPN Eq. 1 on `count` boxes whose float32 areas `areaAt(k)` gives (see `mapLevels`). */
function levelsBySize(
  count: number,
  mapping: LevelMapping | undefined,
  kMin: number,
  kMax: number,
  areaAt: (k: number) => number,
): Int32Array {
  const { rule, s0, l0 } = resolveMapping(mapping);
  if (!Number.isInteger(kMin) || !Number.isInteger(kMax) || kMax < kMin) {
    throw new InvalidInputError(
      `level range must be integers kMin <= kMax, got [${kMin}, ${kMax}]`,
      'spatialScale',
      'levels kMin <= kMax',
    );
  }
  const levels = new Int32Array(count);
  for (let k = 0; k < count; k++) {
    const s = fround(Math.sqrt(areaAt(k)));
    let t: number;
    if (rule === 'torchvision') {
      t = fround(fround(l0 + fround(Math.log2(fround(s / s0)))) + TORCHVISION_EPS);
    } else {
      t = fround(l0 + fround(Math.log2(fround(fround(s / s0) + DETECTRON2_EPS))));
    }
    // NaN (cannot happen for checked boxes, x2 >= x1) and -∞ (zero area) both go to kMin.
    const lvl = Math.floor(t);
    levels[k] = !(lvl >= kMin) ? kMin : lvl > kMax ? kMax : lvl;
  }
  return levels;
}

/**
 * Checks the pyramid: a non-empty list of maps, finest first, with the same `N` and `C`; one scale per
 * map, each `2^-k` for an integer `k`, consecutive (`spatialScale[i] = spatialScale[i-1] / 2`, as
 * torchvision's `_setup_scales` assumes), and map sizes consistent with the scales (each map's height
 * and width over the first map's, rounded in log2 like torchvision's `_infer_scale`, equal to the scale
 * ratio: catches a pyramid listed coarsest first). Returns the finest level `kMin`.
 */
function checkPyramid(features: readonly FeatureMap[], scales: readonly number[]): number {
  if (!Array.isArray(features) || features.length === 0) {
    throw new InvalidInputError(
      'features must be a non-empty list of feature maps, finest first',
      'features',
      'a non-empty list of maps [N, C, H, W], finest first',
    );
  }
  const L = features.length;
  if (!Array.isArray(scales) || scales.length !== L) {
    throw new InvalidInputError(
      `spatialScale must be a list of ${L} scales, one per feature map, got ${JSON.stringify(scales)}`,
      'spatialScale',
      `${L} powers of two, finest first (e.g. 0.25, 0.125, ...)`,
    );
  }
  features.forEach((fm, i) => assertFeatureShape(fm, `features[${i}]`));
  const [N, C, H0, W0] = features[0].shape;
  let kMin = 0;
  for (let i = 0; i < L; i++) {
    const s = scales[i];
    const k = typeof s === 'number' && s > 0 && Number.isFinite(s) ? -Math.log2(s) : NaN;
    if (!Number.isInteger(k)) {
      throw new InvalidInputError(
        `spatialScale[${i}] must be a power of two 2^-k (a map at scale 2^-k is level k), got ${String(s)}`,
        `spatialScale[${i}]`,
        'a power of two, e.g. 0.25, 0.125, 0.0625, 0.03125',
      );
    }
    if (i === 0) kMin = k;
    else if (k !== kMin + i) {
      throw new InvalidInputError(
        `spatialScale[${i}] must be spatialScale[${i - 1}] / 2 = ${2 ** -(kMin + i)} ` +
          `(levels are consecutive, finest first), got ${s}`,
        `spatialScale[${i}]`,
        `${2 ** -(kMin + i)}`,
      );
    }
    const [n, c, h, w] = features[i].shape;
    if (n !== N || c !== C) {
      throw new InvalidInputError(
        `features[${i}] has N = ${n}, C = ${c}; every level must have those of features[0]: N = ${N}, C = ${C}`,
        `features[${i}].shape`,
        `[${N}, ${C}, H, W]`,
      );
    }
    if (!sizeFitsLevel(h, H0, i) || !sizeFitsLevel(w, W0, i)) {
      throw new InvalidInputError(
        `features[${i}] is ${h}×${w}, not about 1/${2 ** i} of features[0] (${H0}×${W0}) as its scale ` +
          `${s} says (maps are listed finest first)`,
        `features[${i}].shape`,
        `[${N}, ${C}, ~${H0 / 2 ** i}, ~${W0 / 2 ** i}]`,
      );
    }
  }
  return kMin;
}

/**
 * Whether a side of `size` cells is level `i`'s side for a finest level of `size0` cells: about
 * `size0 / 2^i` (the ratio rounded in log2, torchvision's `_infer_scale`), or exactly what halving `i`
 * times gives, rounding up (strided convolutions with padding, the built-in pyramid) or down (unpadded
 * pooling). The exact forms matter for small maps, where the sides bottom out at 1 cell and the log2
 * rounding says "same level": a 16×16 image's own pyramid at strides 8, 16, 32 is 2×2, 1×1, 1×1.
 */
function sizeFitsLevel(size: number, size0: number, i: number): boolean {
  const f = 2 ** i;
  return (
    2 ** Math.round(Math.log2(size / size0)) === 1 / f ||
    size === Math.ceil(size0 / f) ||
    size === Math.max(1, Math.floor(size0 / f))
  );
}

/**
 * Rewrites a kernel error about row `j` of a level's subset (`boxes[j]...` in the message or the
 * field) into one about the request's row `rows[j]`, so that the error points at the box the client
 * sent. Other errors pass unchanged.
 */
function renameRow(e: unknown, rows: Int32Array, level: number): unknown {
  if (!(e instanceof InvalidInputError)) return e;
  const row = /^boxes\[(\d+)\]/;
  const message = e.message.replace(row, (_, j: string) => `boxes[${rows[Number(j)]}] (on level ${level})`);
  const field = e.field.replace(row, (_, j: string) => `boxes[${rows[Number(j)]}]`);
  return new InvalidInputError(message, field, e.expected);
}

/**
 * Multi-level RoI pooling as torchvision's `MultiScaleRoIAlign`: each box is assigned a level by
 * `mapLevels` and pooled by `op` (`'align'` = `roiAlign`, `'pool'` = `roiPool`, `'warp'` = `roiWarp`,
 * `'ps_align'` = `psRoiAlign`, `'ps_pool'` = `psRoiPool`) from that level's map at that level's scale;
 * row `k` of the output is box `k`.
 *
 * The boxes are grouped by level and each kernel runs once per level on its subset (not once per
 * box: the kernels' setup, the WebAssembly workspace and the layout copy, is per call), then the
 * rows are scattered back into the boxes' order. A row is `C·PH·PW` contiguous values in either
 * output layout, so the scatter is one copy per box.
 *
 * torchvision's `MultiScaleRoIAlign` calls `roi_align` with `aligned=False`: pass `aligned: false` to
 * equal it (the default here, as in `roiAlign`, is `true`).
 *
 * Example: maps P2..P5 at `[1/4, 1/8, 1/16, 1/32]`, boxes `[0, 0, 224, 224]` and `[0, 0, 112, 112]`:
 * levels `[4, 3]`; row 0 is `roiAlign(P4, box 0, spatialScale 1/16)`, row 1 `roiAlign(P3, box 1,
 * spatialScale 1/8)`.
 *
 * @param op the per-level operator.
 * @param features maps `[N, C, H_i, W_i]`, finest first, same `N` and `C` (any layouts).
 * @param spatialScale one per map, `2^-k` for consecutive integers `k` (e.g. `[1/4, 1/8, 1/16, 1/32]`).
 * @param boxes `[K, 5]` canonical boxes in image pixels.
 * @param params the kernel's parameters without `spatialScale` (`outputSize` = 7, `samplingRatio` = 2,
 *   `aligned` = true, `mode` = `'avg'`, `outputLayout` = `'NCHW'`).
 * @param mapping the level rule (default torchvision, `S0` = 224, `L0` = 4).
 * @returns `{ output: [K, C, PH, PW], levels }` (`[K, C / (PH·PW), PH, PW]` for the ps ops).
 * @throws InvalidInputError naming the field: `features[i].shape`, `spatialScale[i]`, `boxes[k]...`
 *   (the request's row, even when the kernel that refused it saw a subset), `levelMapping.rule`, ...
 */
export function multiScaleRoi(
  op: MultiScaleOp,
  features: readonly FeatureMap[],
  spatialScale: readonly number[],
  boxes: Boxes,
  params: MultiScaleParams,
  mapping?: LevelMapping,
): MultiScalePooled {
  if (!MULTI_SCALE_OPS.includes(op)) {
    throw new InvalidInputError(
      `op must be one of ${MULTI_SCALE_OPS.join(', ')}, got ${String(op)}`,
      'op',
      MULTI_SCALE_OPS.map((o) => `'${o}'`).join(', '),
    );
  }
  const p: MultiScaleParams = params ?? {};
  const [PH, PW] = resolveOutputSize(p.outputSize);
  const layout = resolveLayout(p.outputLayout);
  const kMin = checkPyramid(features, spatialScale);
  const L = features.length;
  const [N, C] = features[0].shape;
  assertBoxes(boxes, N);
  const levels = mapLevels(boxes, mapping, kMin, kMin + L - 1);

  // The ps ops split C into C / (PH·PW) groups: refuse a C that does not split before any work.
  const Cout = op === 'ps_align' || op === 'ps_pool' ? psChannelsOut(C, PH, PW, 'features[0]') : C;
  const data = poolPerLevel(boxes.data, 5, levels, kMin, L, Cout * PH * PW, (i, sub) =>
    KERNELS[op](features[i], sub, { ...p, spatialScale: spatialScale[i] }),
  );
  return { output: { data, shape: [boxes.count, Cout, PH, PW], layout }, levels };
}

/**
 * Multi-level Rotated RoI Align, as detectron2's `ROIPooler` with `ROIAlignRotated`: each rotated box
 * `(b, cx, cy, w, h, angle)` goes to its level by `mapRotatedLevels` (`s = sqrt(w·h)`, the same rules
 * as `mapLevels`) and is pooled by `rotatedRoiAlign` from that level's map at that level's scale; row
 * `k` of the output is box `k`. Same pyramid checks and grouping by level as `multiScaleRoi`.
 *
 * Example: maps P2..P5, a box `(200, 150, 224, 224, 30)` (224×224 turned by 30°) is level 4, pooled
 * from P4 at `spatialScale` 1/16.
 *
 * @param features maps `[N, C, H_i, W_i]`, finest first, same `N` and `C`.
 * @param spatialScale one per map, `2^-k` for consecutive integers `k`.
 * @param boxes `[K, 6]` rotated boxes (see `toRotatedBoxes`), image pixels, angle in degrees.
 * @param params `rotatedRoiAlign`'s without `spatialScale` (`outputSize` = 7, `samplingRatio` = 2,
 *   `aligned` = true, `clockwise` = false, `outputLayout` = `'NCHW'`).
 * @param mapping the level rule (default torchvision, `S0` = 224, `L0` = 4; detectron2 uses its rule).
 * @returns `{ output: [K, C, PH, PW], levels }`.
 */
export function multiScaleRotatedRoiAlign(
  features: readonly FeatureMap[],
  spatialScale: readonly number[],
  boxes: RotatedBoxes,
  params: Omit<RotatedRoiAlignParams, 'spatialScale'>,
  mapping?: LevelMapping,
): MultiScalePooled {
  const p = params ?? {};
  const [PH, PW] = resolveOutputSize(p.outputSize);
  const layout = resolveLayout(p.outputLayout);
  const kMin = checkPyramid(features, spatialScale);
  const L = features.length;
  const [N, C] = features[0].shape;
  // The finest level has the largest scale: boxes whose products stay finite there do everywhere.
  assertRotatedBoxes(boxes, N, spatialScale[0]);
  const levels = mapRotatedLevels(boxes, mapping, kMin, kMin + L - 1);
  const data = poolPerLevel(boxes.data, 6, levels, kMin, L, C * PH * PW, (i, sub) =>
    rotatedRoiAlign(features[i], sub, { ...p, spatialScale: spatialScale[i] }),
  );
  return { output: { data, shape: [boxes.count, C, PH, PW], layout }, levels };
}

/**
 * Runs `run(i, subset)` once per map `i` on the rows of `rows` (`cols` values per row) at that level,
 * and scatters the results (`rowSize` values per box, contiguous in either layout) back into the
 * rows' order. With no rows at all it still runs map 0 once on the empty subset, so that the
 * kernel's parameter checks (samplingRatio, mode, ...) refuse a bad request with K = 0 too.
 */
function poolPerLevel(
  rows: Float32Array,
  cols: number,
  levels: Int32Array,
  kMin: number,
  L: number,
  rowSize: number,
  run: (i: number, subset: { data: Float32Array; count: number }) => Pooled,
): Float32Array {
  const K = levels.length;
  const out = new Float32Array(K * rowSize);
  // Counting sort of the rows by level: order[start[i] .. start[i + 1]) are those of map i, in order.
  const start = new Int32Array(L + 1);
  for (let k = 0; k < K; k++) start[levels[k] - kMin + 1]++;
  for (let i = 0; i < L; i++) start[i + 1] += start[i];
  const order = new Int32Array(K);
  const fill = start.slice(0, L);
  for (let k = 0; k < K; k++) order[fill[levels[k] - kMin]++] = k;

  for (let i = 0; i < L; i++) {
    const count = start[i + 1] - start[i];
    if (count === 0 && !(K === 0 && i === 0)) continue;
    const mine = order.subarray(start[i], start[i + 1]);
    const sub = new Float32Array(cols * count);
    for (let j = 0; j < count; j++) sub.set(rows.subarray(cols * mine[j], cols * mine[j] + cols), cols * j);
    let pooled: Pooled;
    try {
      pooled = run(i, { data: sub, count });
    } catch (e) {
      throw renameRow(e, mine, kMin + i);
    }
    for (let j = 0; j < count; j++) {
      out.set(pooled.data.subarray(j * rowSize, (j + 1) * rowSize), mine[j] * rowSize);
    }
  }
  return out;
}

/**
 * Non-fatal warnings: things in a request that are valid but probably not what the user meant (boxes
 * that miss the image, boxes that look normalized, a `maxSide` over the server's cap). The request is
 * still served; the warnings say what looks wrong and how to fix it.
 *
 * They travel in the JSON body (`warnings`, always present, `[]` when none), in the safetensors
 * `__metadata__` (`warnings`, JSON text) and, for every format, in the {@link WARNINGS_HEADER}
 * response header (only when there are some).
 */
import { z } from 'zod';
import type { Boxes, Pooled } from './ops/types.js';

/** Response header carrying the warnings as a JSON array (ASCII only, see {@link warningsHeaderValue}). */
export const WARNINGS_HEADER = 'X-Roiserve-Warnings';

/** The warning codes, stable for clients to match on. */
export const WARNING_CODES = [
  'box-outside',
  'boxes-look-normalized',
  'boxes-look-pixels',
  'max-side-capped',
  'layout-suspect',
  'dtype-overflow',
  'field-ignored',
] as const;
export type WarningCode = (typeof WARNING_CODES)[number];

/** One warning. */
export interface RoiWarning {
  code: WarningCode;
  /** What looks wrong and how to fix it, for humans. */
  message: string;
  /** The request field it is about, e.g. `boxes[3]`; absent when about the request as a whole. */
  field?: string;
}

export const warningSchema = z
  .object({
    code: z
      .enum(WARNING_CODES)
      .describe(
        'box-outside: a box lies wholly outside the image / map; boxes-look-normalized: every coordinate ' +
          'is within [0, 1.5] on a larger image; boxes-look-pixels: normalized is true but a coordinate is over ' +
          '1.5 × the image size; max-side-capped: maxSide was over MAX_IMAGE_SIDE; layout-suspect: with ' +
          'imageSize, the features shape fits the image only when read in the other layout; dtype-overflow: ' +
          'finite outputs beyond the range of the requested dtype (float16: ±65504) were sent as ±Infinity; ' +
          'field-ignored: a field that has no effect on this request (levelMapping without a pyramid, ' +
          'clockwise without rotated boxes)',
      ),
    message: z.string().describe('what looks wrong and how to fix it'),
    field: z.string().optional().describe('the request field it is about, e.g. boxes[3]'),
  })
  .describe('a non-fatal warning: the request was served, but something looks unintended');

export const warningsSchema = z
  .array(warningSchema)
  .describe('non-fatal warnings (always present; empty when none); also in the X-Roiserve-Warnings header');

/**
 * {@link WARNINGS_HEADER} for the OpenAPI document: a route's `'x-response-headers'` entry for its 200
 * response (see `finishDocument` in `src/http/openapi.ts`).
 */
export const warningsResponseHeader = {
  [WARNINGS_HEADER]: {
    description:
      'only when there are warnings: the `warnings` array as JSON text, non-ASCII characters escaped ' +
      '(\\u00d7); sent with every format (a .npy body has no room for them)',
    schema: { type: 'string' },
  },
};

/**
 * Most `box-outside` warnings listed one by one; the rest are counted in one more entry, so that the
 * body and (above all) the header stay small whatever the number of boxes.
 */
export const MAX_BOX_WARNINGS = 10;

/**
 * Coordinates all within `[0, NORMALIZED_LOOKALIKE_MAX]` look like fractions of the image size …
 */
export const NORMALIZED_LOOKALIKE_MAX = 1.5;
/** … when the frame's shorter side is at least this many pixels (so 1.5 px is under 10 % of it). */
export const NORMALIZED_LOOKALIKE_MIN_SIDE = 16;

/** The frame boxes are given in, for the messages. */
export interface BoxFrame {
  /** Width and height in the boxes' own units (input-image pixels). */
  width: number;
  height: number;
  /** How to name it: `the 640×480 image`, `the 20×16 area the 10×8 feature map covers`. */
  name: string;
}

/** `640×480`, integers without decimals, others to 4 significant digits. */
export function size(width: number, height: number): string {
  const f = (v: number) => (Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4))));
  return `${f(width)}×${f(height)}`;
}

/** True when every value of box `k` is exactly 0 in every output (box `k` is one contiguous block in both layouts). */
function outputsAllZero(outputs: readonly Pooled[], k: number): boolean {
  for (const out of outputs) {
    const per = out.shape[1] * out.shape[2] * out.shape[3];
    for (let i = k * per; i < (k + 1) * per; i++) if (out.data[i] !== 0) return false;
  }
  return true;
}

/**
 * Warnings about the boxes, in the frame they were given in (after any `normalized` / `boxFormat`
 * conversion, before any resize):
 * - `box-outside`: box `k` does not overlap the frame (`x2 <= 0`, `y2 <= 0`, `x1 >= width` or
 *   `y1 >= height`). The message says whether its outputs are all zeros (usually) or come from the
 *   border cells only (the bilinear sample clamps points within one cell of the edge).
 * - `boxes-look-normalized`: `normalized` is off, there is at least one box, every coordinate lies
 *   within [0, {@link NORMALIZED_LOOKALIKE_MAX}] and the frame's shorter side is at least
 *   {@link NORMALIZED_LOOKALIKE_MIN_SIDE}: fractions sent as pixels.
 * - `boxes-look-pixels`: `normalized` is on and a coordinate is over {@link NORMALIZED_LOOKALIKE_MAX}
 *   times the frame's size (named: the first such box): pixels sent as fractions.
 *
 * @param boxes - canonical boxes in the frame's units
 * @param frame - the image (or the area the map covers) the boxes refer to
 * @param outputs - the operators' outputs, to tell zeros from border values
 * @param normalized - whether the request said `normalized: true`
 */
export function boxWarnings(
  boxes: Boxes,
  frame: BoxFrame,
  outputs: readonly Pooled[],
  normalized: boolean,
): RoiWarning[] {
  const warnings: RoiWarning[] = [];
  const d = boxes.data;
  let outside = 0;
  let allSmall = boxes.count > 0;
  let firstLarge = -1;
  for (let k = 0; k < boxes.count; k++) {
    const o = 5 * k;
    const [x1, y1, x2, y2] = [d[o + 1], d[o + 2], d[o + 3], d[o + 4]];
    if (![x1, y1, x2, y2].every((v) => v >= 0 && v <= NORMALIZED_LOOKALIKE_MAX)) allSmall = false;
    const large = Math.max(x2 / frame.width, y2 / frame.height) > NORMALIZED_LOOKALIKE_MAX;
    if (firstLarge < 0 && large) firstLarge = k;
    if (x2 > 0 && y2 > 0 && x1 < frame.width && y1 < frame.height) continue;
    outside++;
    if (outside > MAX_BOX_WARNINGS) continue;
    const zeros = outputsAllZero(outputs, k);
    warnings.push({
      code: 'box-outside',
      field: `boxes[${k}]`,
      message:
        `boxes[${k}] (${[x1, y1, x2, y2].join(', ')} as x1, y1, x2, y2) lies wholly outside ${frame.name}; ` +
        (zeros
          ? 'its outputs are zeros'
          : 'its outputs only repeat the edge cells (points within one cell of the edge are clamped)'),
    });
  }
  if (outside > MAX_BOX_WARNINGS) {
    warnings.push({
      code: 'box-outside',
      field: 'boxes',
      message: `${outside - MAX_BOX_WARNINGS} more boxes lie wholly outside ${frame.name} (${outside} of ${boxes.count} in all)`,
    });
  }
  if (allSmall && !normalized && Math.min(frame.width, frame.height) >= NORMALIZED_LOOKALIKE_MIN_SIDE) {
    warnings.push({
      code: 'boxes-look-normalized',
      field: 'boxes',
      message:
        `every box coordinate lies within [0, ${NORMALIZED_LOOKALIKE_MAX}] on ${frame.name}: they look like ` +
        'fractions of the image size, read here as pixels; did you mean normalized: true?',
    });
  }
  if (normalized && firstLarge >= 0) {
    const o = 5 * firstLarge;
    const fractions = [
      d[o + 1] / frame.width,
      d[o + 2] / frame.height,
      d[o + 3] / frame.width,
      d[o + 4] / frame.height,
    ];
    warnings.push({
      code: 'boxes-look-pixels',
      field: `boxes[${firstLarge}]`,
      message:
        `normalized is true, but boxes[${firstLarge}] is (${fractions.map((v) => Number(v.toPrecision(4))).join(', ')}) ` +
        `as fractions of ${frame.name}, reaching past ${NORMALIZED_LOOKALIKE_MAX}×: it looks like pixels; ` +
        'did you mean normalized: false?',
    });
  }
  return warnings;
}

/**
 * The warnings of a request with several images (`images`) as one list that keeps the promises of one
 * image's: at most {@link MAX_BOX_WARNINGS} `box-outside` entries name a box (the lowest rows), one
 * more counts the rest over all images; `boxes-look-normalized` and `boxes-look-pixels` once (the first
 * image's that has it). Each image's list comes from {@link boxWarnings} (its rows already renamed to
 * the request's); the count of a "more boxes" entry is read back from the message written above.
 *
 * @param lists - each image's warnings, in image order
 * @param boxCount - the request's box count K
 */
export function mergeImageWarnings(
  lists: readonly (readonly RoiWarning[])[],
  boxCount: number,
): RoiWarning[] {
  const named: { row: number; warning: RoiWarning }[] = [];
  let outside = 0;
  const others: RoiWarning[] = [];
  let outsideAt = -1;
  const once = new Set<WarningCode>();
  for (const warning of lists.flat()) {
    if (warning.code === 'box-outside') {
      if (outsideAt < 0) outsideAt = others.length;
      const row = /^boxes\[(\d+)\]$/.exec(warning.field ?? '');
      if (row) named.push({ row: Number(row[1]), warning });
      outside += row ? 1 : Number(/^(\d+) more boxes/.exec(warning.message)?.[1] ?? 0);
      continue;
    }
    if (warning.code === 'boxes-look-normalized' || warning.code === 'boxes-look-pixels') {
      if (once.has(warning.code)) continue;
      once.add(warning.code);
    }
    others.push(warning);
  }
  named.sort((a, b) => a.row - b.row);
  const outsideWarnings = named.slice(0, MAX_BOX_WARNINGS).map((n) => n.warning);
  if (outside > MAX_BOX_WARNINGS) {
    outsideWarnings.push({
      code: 'box-outside',
      field: 'boxes',
      message: `${outside - MAX_BOX_WARNINGS} more boxes lie wholly outside their images (${outside} of ${boxCount} in all)`,
    });
  }
  if (outsideAt < 0) return others;
  return [...others.slice(0, outsideAt), ...outsideWarnings, ...others.slice(outsideAt)];
}

/**
 * The {@link WARNINGS_HEADER} value: the warnings as a JSON array with every non-ASCII character
 * escaped (`×` → `\u00d7`), so the header is plain ASCII (HTTP clients read header bytes as Latin-1)
 * and still parses with `JSON.parse`. Undefined when there are none (the header is then left out).
 */
export function warningsHeaderValue(warnings: readonly RoiWarning[]): string | undefined {
  if (warnings.length === 0) return undefined;
  return JSON.stringify(warnings).replace(
    /[^\x20-\x7e]/g,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

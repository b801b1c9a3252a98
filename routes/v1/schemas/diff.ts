/**
 * The schemas of `POST /v1/diff` (zod; the OpenAPI document is generated from them): its body (a
 * `/v1/roi` input plus `maxBoxes`, `channel`, `format`) and its JSON response, which the worker builds
 * (`src/imaging/diff-body.ts`, typed by `src/core/wire.ts`; the check at the end proves they agree).
 */
import { z } from 'zod';
import { CHANNEL_REDUCTIONS, DIFF_DEFAULTS, MAX_DIFF_BOXES } from '../../../src/core/diff-options.js';
import type { DiffResponseBody } from '../../../src/core/wire.js';
import { CELL_OPS, DIFF_PAIRS, pairKey, type CellOp } from '../../../src/ops/registry.js';
import { warningsSchema } from '../../../src/warnings.js';
import { roiInputFields } from './request.js';
import {
  boxCoverageSchema,
  featureMapInfoSchema,
  imageInfoSchema,
  roiParamsSchema,
  timingsSchema,
} from './responses.js';

/** Body of `POST /v1/diff` (JSON; multipart carries the same fields, like `/v1/roi`). */
export const diffBodySchema = z
  .strictObject({
    ...roiInputFields,
    // Not on /v1/diff: refused by the schema (400 naming `images`), and the spec says so.
    images: z
      .never({ error: '/v1/diff draws one image: send it as `image` (several images are for /v1/roi)' })
      .optional()
      .describe(
        'not on /v1/diff: the sheet draws one image; send it as `image` (several images are for /v1/roi)',
      ),
    ops: roiInputFields.ops.describe(
      'accepted so that a /v1/roi body works unchanged; the diff always runs and compares all three operators',
    ),
    maxBoxes: z
      .number()
      .int()
      .min(0)
      .max(MAX_DIFF_BOXES)
      .default(DIFF_DEFAULTS.maxBoxes)
      .describe(
        `how many boxes (the first ones) get a row of panels, at most ${MAX_DIFF_BOXES}; stats cover all`,
      ),
    channel: z
      .union([z.number().int().min(0), z.enum(CHANNEL_REDUCTIONS)])
      .default(DIFF_DEFAULTS.channel)
      .describe(
        'what heatmaps show: a channel index, or a reduction over channels (mean, meanabs = mean of |x|, max); ' +
          'difference panels reduce the per-channel |a − b| the same way',
      ),
    format: z
      .enum(['png', 'json'])
      .default(DIFF_DEFAULTS.format)
      .describe('png: one sheet; json: coverage, difference statistics and the pictures as base64 PNGs'),
  })
  .meta({ id: 'DiffRequest', description: 'the input of POST /v1/diff' });
export type DiffBody = z.output<typeof diffBodySchema>;

const pairStatsSchema = z.object({
  meanAbs: z.number().describe('mean of |a − b| over all channels and cells'),
  maxAbs: z.number().describe('max of |a − b|'),
  relL2: z
    .number()
    .nullable()
    .describe('‖a − b‖₂ / ‖a‖₂ (a = the first op of the pair); null when ‖a‖ = 0 < ‖a − b‖'),
});

const pairsSchema = z
  .object(Object.fromEntries(DIFF_PAIRS.map(([a, b]) => [pairKey(a, b), pairStatsSchema])))
  .describe('per pair of ops "a-b"');

const spreadSchema = z.object({ min: z.number(), median: z.number(), max: z.number() });

const opSummarySchema = z.object({
  iou: spreadSchema.describe('IoU of the read area with the box'),
  gainedFraction: spreadSchema.describe('gained area / box area'),
  lostFraction: spreadSchema.describe('lost area / box area'),
  iouHistogram: z
    .array(z.number().int())
    .describe('box counts in 10 IoU bins over [0, 1]: bin i holds [i/10, (i+1)/10), the last also 1'),
});

const base64Png = z.string().describe('a PNG image, base64');

export const diffResponseSchema = z
  .object({
    params: roiParamsSchema
      .omit({ format: true, encoding: true })
      .extend({
        maxBoxes: z.number().int(),
        channel: z.union([z.number().int(), z.enum(CHANNEL_REDUCTIONS)]),
        format: z.literal('json'),
      })
      .describe('the parameters used, defaults filled in'),
    image: imageInfoSchema.nullable().describe('null for features input'),
    featureMap: featureMapInfoSchema,
    boxes: z
      .array(z.tuple([z.number(), z.number(), z.number(), z.number(), z.number()]))
      .describe(
        'canonical boxes (b, x1, y1, x2, y2) in input-image pixels (whatever boxFormat and normalized), float32-rounded',
      ),
    boxesShown: z.number().int().describe('boxes with a row of panels: min(K, maxBoxes)'),
    coverage: z.array(boxCoverageSchema).describe('per box (all of them), from the ops module'),
    differences: z
      .array(z.object({ box: z.number().int().describe('0-based box index'), pairs: pairsSchema }))
      .describe('per box: how far apart the ops outputs are'),
    differencesAll: z.object({ pairs: pairsSchema }).describe('the same over all boxes'),
    summary: z
      .object({
        boxes: z.number().int().describe('K: every box, shown in a row or not'),
        ...(Object.fromEntries(CELL_OPS.map((op) => [op, opSummarySchema])) as Record<
          CellOp,
          typeof opSummarySchema
        >),
      })
      .describe(
        "how RoI Pool's and RoI Warp's read areas compare with the boxes, over all boxes (the sheet's summary)",
      ),
    images: z.object({
      sheet: base64Png.describe(
        'the whole sheet, the same PNG bytes as `format: "png"` answers: one request gives both the picture and the data',
      ),
      overlay: base64Png
        .nullable()
        .describe(
          'the image with what RoI Pool and RoI Warp read, lose and gain, and a legend; null without an image',
        ),
      rows: z.array(base64Png).describe('per shown box: heatmaps of the three outputs and their differences'),
      featureHeatmap: base64Png.describe('the feature map (channel as requested) with the boxes outlined'),
    }),
    notes: z
      .array(z.string())
      .describe('what the pictures leave out and why (e.g. no overlay for features input)'),
    warnings: warningsSchema,
    timings: timingsSchema.describe('milliseconds per stage; `encode` is rendering and PNG encoding'),
  })
  .meta({ id: 'DiffResponse', description: 'the visual diff as data' });
export type DiffResponse = z.output<typeof diffResponseSchema>;

// The worker's body validates against the schema (a compile-time check, erased at run time).
export const diffBodyMatchesSchema = (b: DiffResponseBody): z.input<typeof diffResponseSchema> => b;

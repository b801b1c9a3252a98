/**
 * `POST /v1/diff`: the same input as `/v1/roi`, out come pictures of what RoI Pool, RoI Align and RoI Warp
 * keep, lose and gain: one PNG sheet by default, or (`format: "json"`) the same content as data with the
 * pictures as base64 PNGs. Thin: parse (`src/request.ts`) → work (`app.work`) → render (`src/imaging`).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { CHANNEL_REDUCTIONS, checkChannel, MAX_DIFF_BOXES } from '../src/diff-options.js';
import { admitWork, slotOf } from '../src/admission.js';
import { clientGoneSignal } from '../src/cancel.js';
import { answerOptionsOf, sendEncoded } from '../src/http/answers.js';
import {
  binaryPartsOf,
  knownChannels,
  limitsFrom,
  multipartToJsonBody,
  prepareRoi,
  roiInputFields,
} from '../src/request.js';
import { CELL_OPS, DIFF_PAIRS, pairKey, ROI_OPS, type CellOp } from '../src/ops/registry.js';
import {
  boxCoverageSchema,
  featureMapInfoSchema,
  imageInfoSchema,
  roiParamsSchema,
  timingsSchema,
} from '../src/responses.js';
import { warningsSchema, warningsResponseHeader } from '../src/warnings.js';
import { workErrorResponses } from './roi.js';

export { MAX_DIFF_BOXES };

/** Body of `POST /v1/diff` (JSON; multipart carries the same fields, like `/v1/roi`). */
export const diffBodySchema = z
  .strictObject({
    ...roiInputFields,
    ops: roiInputFields.ops.describe(
      'accepted so that a /v1/roi body works unchanged; the diff always runs and compares all three operators',
    ),
    maxBoxes: z
      .number()
      .int()
      .min(0)
      .max(MAX_DIFF_BOXES)
      .default(8)
      .describe(
        `how many boxes (the first ones) get a row of panels, at most ${MAX_DIFF_BOXES}; stats cover all`,
      ),
    channel: z
      .union([z.number().int().min(0), z.enum(CHANNEL_REDUCTIONS)])
      .default('meanabs')
      .describe(
        'what heatmaps show: a channel index, or a reduction over channels (mean, meanabs = mean of |x|, max); ' +
          'difference panels reduce the per-channel |a − b| the same way',
      ),
    format: z
      .enum(['png', 'json'])
      .default('png')
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

const diffRoutes: FastifyPluginAsyncZod = async (app) => {
  // Answers go out in chunks, counted, and are cut when the client stops reading (src/http/answers.ts).
  const answerOptions = answerOptionsOf(app);
  const limits = limitsFrom(app.config);

  app.route({
    method: 'POST',
    url: '/v1/diff',
    schema: {
      operationId: 'diff',
      summary: 'Pictures of what RoI Pool, RoI Align and RoI Warp keep, lose and gain',
      description:
        'Same input as `/v1/roi` (JSON or multipart), plus `maxBoxes` and `channel`. The default response is ' +
        'one PNG sheet: the image with, per box, the exact box, the feature grid, the areas RoI Pool and RoI ' +
        'Warp read, and the lost / gained areas; then per box the three pooled outputs as heatmaps on one ' +
        'scale, |align − pool| and |align − warp| on their own, and the coverage numbers. `format: "json"` ' +
        'returns the same as data. With `features` input there is no image: no overlay (the sheet and ' +
        '`notes` say so), the boxes are drawn on the feature heatmap.',
      tags: ['roi'],
      consumes: ['application/json', 'multipart/form-data'],
      security: [{ bearer: [] }, { apiKey: [] }],
      body: diffBodySchema,
      // A 4×4 map (values 0 to 15) at stride 4 and one box off the grid: the PNG sheet.
      'x-response-headers': { 200: warningsResponseHeader },
      'x-example': {
        features: {
          shape: [1, 1, 4, 4],
          layout: 'NCHW',
          data: 'AAAAAAAAgD8AAABAAABAQAAAgEAAAKBAAADAQAAA4EAAAABBAAAQQQAAIEEAADBBAABAQQAAUEEAAGBBAABwQQ==',
        },
        spatialScale: 0.25,
        boxes: [[2, 3, 13, 12]],
        outputSize: 2,
      },
      response: {
        200: {
          description: 'the diff sheet (PNG), or the same content as JSON',
          content: {
            'image/png': { schema: z.string().meta({ format: 'binary' }).describe('the diff sheet') },
            'application/json': { schema: diffResponseSchema },
          },
        },
        ...workErrorResponses,
      },
    },
    // A place in the queue before the body is read: 503 up front when there is none.
    onRequest: admitWork,
    preValidation: multipartToJsonBody,
    handler: async (request, reply) => {
      const body = request.body;
      const task = prepareRoi({ ...body, ops: [...ROI_OPS] }, limits, true, binaryPartsOf(request));
      // Refuse early when the channel count is known (features, or a loaded backbone); the worker checks
      // again once the feature map exists.
      const channels = knownChannels(task, app.readiness.backbone?.outputChannels);
      if (channels !== undefined) checkChannel(body.channel, channels);
      // The worker runs the operators, renders the pictures and encodes the body; this thread only sends
      // it (rendering a sheet here stalled every other request, /healthz included).
      const out = await app.work.diff(
        task,
        { maxBoxes: body.maxBoxes, channel: body.channel, format: body.format },
        { slot: slotOf(request), signal: clientGoneSignal(reply.raw) },
      );
      for (const op of ROI_OPS) app.metrics.boxes.inc({ op }, out.boxCount);
      if (!out.overlay) reply.header('X-Diff-Overlay', 'none; features input without an image');
      // Streamed, warnings in a header; its JSON form is `diffResponseSchema` (tested).
      return sendEncoded(request, reply, out, answerOptions, 'inline');
    },
  });
};

export default diffRoutes;

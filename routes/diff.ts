/**
 * `POST /v1/diff`: the same input as `/v1/roi`, out come pictures of what RoI Pool, RoI Align and RoI Warp
 * keep, lose and gain: one PNG sheet by default, or (`format: "json"`) the same content as data with the
 * pictures as base64 PNGs. Thin: parse (`src/request.ts`) → work (`app.work`) → render (`src/imaging`).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { InvalidInputError } from '../src/errors.js';
import { renderDiff, diffStats, type PairDiff } from '../src/imaging/render-sheet.js';
import { toPng, type ChannelSelect, type RgbImage } from '../src/imaging/render.js';
import { loadFont } from '../src/imaging/text.js';
import { observeStages, serverTiming } from '../src/metrics.js';
import type { FeatureMap, Pooled } from '../src/ops/types.js';
import { limitsFrom, multipartToJsonBody, prepareRoi, roiInputFields, ROI_OPS } from '../src/request.js';
import {
  boxCoverageSchema,
  boxRows,
  echoedParams,
  featureMapInfoSchema,
  imageInfoSchema,
  JSON_CONTENT_TYPE,
  roiParamsSchema,
  timingsSchema,
} from '../src/responses.js';
import { workErrorResponses } from './roi.js';

/** Most boxes one sheet shows (each adds a ~190 px row). */
export const MAX_DIFF_BOXES = 32;

const CHANNEL_REDUCTIONS = ['mean', 'meanabs', 'max'] as const;

/** Body of `POST /v1/diff` (JSON; multipart carries the same fields, like `/v1/roi`). */
export const diffBodySchema = z.strictObject({
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
});
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
  .object({ 'align-pool': pairStatsSchema, 'align-warp': pairStatsSchema, 'pool-warp': pairStatsSchema })
  .describe('per pair of ops "a-b"');

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
      .describe('canonical boxes (b, x1, y1, x2, y2) in input-image pixels, float32-rounded'),
    boxesShown: z.number().int().describe('boxes with a row of panels: min(K, maxBoxes)'),
    coverage: z.array(boxCoverageSchema).describe('per box (all of them), from the ops module'),
    differences: z
      .array(z.object({ box: z.number().int().describe('0-based box index'), pairs: pairsSchema }))
      .describe('per box: how far apart the ops outputs are'),
    differencesAll: z.object({ pairs: pairsSchema }).describe('the same over all boxes'),
    images: z.object({
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
    timings: timingsSchema.describe('milliseconds per stage; `encode` is rendering and PNG encoding'),
  })
  .describe('the visual diff as data');
export type DiffResponse = z.output<typeof diffResponseSchema>;

function pairsOf(list: PairDiff[]): z.output<typeof pairsSchema> {
  const entry = (a: string, b: string) => {
    const p = list.find((d) => d.a === a && d.b === b) as PairDiff;
    return { meanAbs: p.meanAbs, maxAbs: p.maxAbs, relL2: p.relL2 };
  };
  return {
    'align-pool': entry('align', 'pool'),
    'align-warp': entry('align', 'warp'),
    'pool-warp': entry('pool', 'warp'),
  };
}

function checkChannel(channel: ChannelSelect, channels: number): void {
  if (typeof channel === 'number' && channel >= channels) {
    throw new InvalidInputError(
      `channel ${channel} does not exist: the feature map has ${channels} channels`,
      'channel',
      `a channel index from 0 to ${channels - 1}, or one of ${CHANNEL_REDUCTIONS.join(', ')}`,
    );
  }
}

const diffRoutes: FastifyPluginAsyncZod = async (app) => {
  const limits = limitsFrom(app.config);
  // Parse the sheet fonts now (~0.5 s), not in the first request; a missing font file fails at start.
  loadFont('normal');
  loadFont('bold');

  // Error responses carry the header too (all stages 0 when the work never ran).
  app.addHook('onSend', async (_request, reply, payload) => {
    if (!reply.hasHeader('Server-Timing')) reply.header('Server-Timing', serverTiming({}));
    return payload;
  });

  app.route({
    method: 'POST',
    url: '/v1/diff',
    schema: {
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
    preValidation: multipartToJsonBody,
    handler: async (request, reply) => {
      const body = request.body;
      const started = performance.now();
      const task = prepareRoi({ ...body, ops: [...ROI_OPS] }, limits, true);
      // Refuse early when the channel count is known (features, or a loaded backbone); again after the work.
      const knownChannels = task.features?.shape[1] ?? app.readiness.backbone?.outputChannels;
      if (knownChannels !== undefined) checkChannel(body.channel, knownChannels);
      const result = await app.work.roi(task);
      // Always there with includeImage (task.features itself was transferred to the worker).
      const features = result.features as FeatureMap;
      checkChannel(body.channel, result.featureMap.shape[1]);

      const renderStart = performance.now();
      const pooled = result.outputs as Record<(typeof ROI_OPS)[number], Pooled>;
      const image = result.image;
      const imageSize: [number, number] = image
        ? [image.width, image.height]
        : (result.params.imageSize ?? [
            features.shape[3] / result.params.spatialScale,
            features.shape[2] / result.params.spatialScale,
          ]);
      const resizedNote =
        image && image.scale !== 1
          ? `the image was resized from ${image.originalWidth}×${image.originalHeight} to ${image.width}×${image.height} px for the backbone: pictures and coverage use the resized frame`
          : undefined;
      const shown = Math.min(result.boxes.count, body.maxBoxes);
      const notes = [
        ...(image
          ? []
          : [
              'features input without an image: no image overlay; the boxes are drawn on the feature heatmap',
            ]),
        ...(resizedNote ? [resizedNote] : []),
        ...(shown < result.boxes.count
          ? [`${result.boxes.count} boxes: the first ${shown} have panels (maxBoxes); statistics cover all`]
          : []),
      ];
      const rendered = await renderDiff({
        image:
          image && result.rgb
            ? { data: result.rgb, width: image.width, height: image.height, channels: 3 }
            : undefined,
        imageSize,
        features,
        spatialScale: result.params.spatialScale,
        boxes: result.opBoxes,
        coverage: result.coverage,
        pooled,
        params: result.params,
        channel: body.channel,
        maxBoxes: body.maxBoxes,
        notes: resizedNote ? [resizedNote] : [],
      });

      let payload: Buffer | DiffResponse;
      if (body.format === 'png') {
        payload = await toPng(rendered.sheet);
        reply.type('image/png').header('Content-Disposition', 'inline; filename="roi-diff.png"');
        if (!image) reply.header('X-Diff-Overlay', 'none; features input without an image');
      } else {
        const stats = diffStats(pooled);
        const [overlay, rows, featureHeatmap] = await Promise.all([
          rendered.overlay ? toPng(rendered.overlay) : null,
          Promise.all(rendered.rows.map(toPng)),
          // Always there: the pipeline returns the feature map with includeImage.
          toPng(rendered.featureHeatmap as RgbImage),
        ]);
        const { format: _format, encoding: _encoding, ...roiParams } = echoedParams(result, 'json', 'base64');
        payload = {
          params: {
            ...roiParams,
            ops: [...ROI_OPS],
            maxBoxes: body.maxBoxes,
            channel: body.channel,
            format: 'json',
          },
          image,
          featureMap: result.featureMap,
          boxes: boxRows(result.boxes),
          boxesShown: rendered.boxesShown,
          coverage: result.coverage,
          differences: stats.perBox.map((list, box) => ({ box, pairs: pairsOf(list) })),
          differencesAll: { pairs: pairsOf(stats.total) },
          images: {
            overlay: overlay ? overlay.toString('base64') : null,
            rows: rows.map((png) => png.toString('base64')),
            featureHeatmap: featureHeatmap.toString('base64'),
          },
          notes,
          timings: { ...result.timings, encode: 0, total: 0 },
        };
        reply.type(JSON_CONTENT_TYPE);
      }
      const timings = { ...result.timings, encode: performance.now() - renderStart };
      if (!Buffer.isBuffer(payload)) {
        payload.timings.encode = timings.encode;
        payload.timings.total = performance.now() - started;
      }
      observeStages(app.metrics, timings);
      for (const op of ROI_OPS) app.metrics.boxes.inc({ op }, result.boxes.count);
      reply.header('Server-Timing', serverTiming(timings));
      // The PNG buffer bypasses the JSON serializer; the cast only widens the reply type.
      return reply.send(payload as Exclude<typeof payload, Buffer>);
    },
  });
};

export default diffRoutes;

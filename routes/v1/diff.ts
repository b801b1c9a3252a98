/**
 * `POST /v1/diff`: the same input as `/v1/roi`, out come pictures of what RoI Pool, RoI Align and RoI Warp
 * keep, lose and gain: one PNG sheet by default, or (`format: "json"`) the same content as data with the
 * pictures as base64 PNGs. Thin: parse (`routes/v1/schemas/`, `src/core/prepare.ts`) → work (`app.work`) → render (`src/imaging`).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { admitWork, slotOf } from '../../src/admission.js';
import { clientGoneSignal } from '../../src/cancel.js';
import { checkChannel } from '../../src/core/diff-options.js';
import { prepareRoi } from '../../src/core/prepare.js';
import { knownChannels, limitsFrom } from '../../src/core/task.js';
import { answerOptionsOf, sendEncoded } from '../../src/http/answers.js';
import { binaryPartsOf, multipartToJsonBody } from '../../src/http/multipart.js';
import { COMPARED_OPS } from '../../src/ops/registry.js';
import { warningsResponseHeader } from '../../src/warnings.js';
import { diffBodySchema, diffResponseSchema } from './schemas/diff.js';
import { workErrorResponses } from './schemas/errors.js';
import { roiInputOf } from './schemas/request.js';

const diffRoutes: FastifyPluginAsyncZod = async (app) => {
  // Answers go out in chunks, counted, and are cut when the client stops reading (src/http/answers.ts).
  const answerOptions = answerOptionsOf(app);
  const limits = limitsFrom(app.config);

  app.route({
    method: 'POST',
    url: '/diff',
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
      const task = prepareRoi(
        { ...roiInputOf(body, binaryPartsOf(request)), ops: COMPARED_OPS },
        limits,
        true,
        // Rotated boxes are drawn as such; Pool, Align and Warp read their upright boxes.
        true,
      );
      // Refuse early when the channel count is known (features, or a loaded backbone); the worker checks
      // again once the feature map exists.
      const channels = knownChannels(task, app.readiness.backbone);
      if (channels !== undefined) checkChannel(body.channel, channels);
      // The worker runs the operators, renders the pictures and encodes the body; this thread only sends
      // it (rendering a sheet here stalled every other request, /healthz included).
      const out = await app.work.diff(
        task,
        { maxBoxes: body.maxBoxes, channel: body.channel, format: body.format },
        { slot: slotOf(request), signal: clientGoneSignal(reply.raw) },
      );
      for (const op of COMPARED_OPS) app.metrics.boxes.inc({ op }, out.boxCount);
      if (!out.overlay) reply.header('X-Diff-Overlay', 'none; features input without an image');
      // Streamed, warnings in a header; its JSON form is `diffResponseSchema` (tested).
      return sendEncoded(request, reply, out, answerOptions, 'inline');
    },
  });
};

export default diffRoutes;

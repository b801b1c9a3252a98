/** `POST /v1/features`: an image in, the backbone's feature map `[1, C, H, W]` out (JSON or `.npy`). */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { admitWork, slotOf } from '../../src/admission.js';
import { clientGoneSignal } from '../../src/cancel.js';
import { answerOptionsOf, sendEncoded } from '../../src/http/answers.js';
import { NPY_CONTENT_TYPE } from '../../src/core/encode.js';
import { resolveMaxSide } from '../../src/core/prepare.js';
import { binaryPartsOf, multipartToJsonBody } from '../../src/http/multipart.js';
import { WARNINGS_HEADER, warningsHeaderValue, warningsResponseHeader } from '../../src/warnings.js';
import { workErrorResponses } from './schemas/errors.js';
import { maxSideField } from './schemas/request.js';
import { featuresResponseSchema } from './schemas/responses.js';

export const featuresBodySchema = z
  .strictObject({
    image: z.string().min(1).describe('an encoded image, base64 (a file part in multipart)'),
    format: z
      .enum(['json', 'npy'])
      .default('json')
      .describe('json (base64 float32) or npy ([1, C, H, W] float32)'),
    maxSide: maxSideField,
  })
  .meta({ id: 'FeaturesRequest', description: 'the input of POST /v1/features' });

/** A 32×32 PNG, base64: an orange square on blue (the OpenAPI example of `/v1/features`). */
export const TINY_PNG_BASE64 =
  'iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAMAAABEpIrGAAAABlBMVEXmoB4oWshGLhZuAAAACXBIWXMAAAPoAAAD6AG1e1JrAAAAGklEQVQ4y2NgJAAYRpgCBjQwqmBkKxjh+QIANHoDAXgKPAMAAAAASUVORK5CYII=';

const featuresRoutes: FastifyPluginAsyncZod = async (app) => {
  // Answers go out in chunks, counted, and are cut when the client stops reading (src/http/answers.ts).
  const answerOptions = answerOptionsOf(app);
  app.route({
    method: 'POST',
    url: '/features',
    schema: {
      operationId: 'features',
      summary: 'Run the backbone on an image: the feature map [1, C, H, W]',
      tags: ['backbone'],
      consumes: ['application/json', 'multipart/form-data'],
      security: [{ bearer: [] }, { apiKey: [] }],
      body: featuresBodySchema,
      // A 32×32 PNG (an orange square on blue, 122 bytes): a 2×2 feature map at stride 16.
      'x-response-headers': { 200: warningsResponseHeader },
      'x-example': { image: TINY_PNG_BASE64 },
      response: {
        200: {
          description: 'the feature map, JSON or .npy',
          content: {
            'application/json': { schema: featuresResponseSchema },
            [NPY_CONTENT_TYPE]: { schema: z.string().meta({ format: 'binary' }) },
          },
        },
        ...workErrorResponses,
      },
    },
    // A place in the queue before the body is read: 503 up front when there is none.
    onRequest: admitWork,
    preValidation: multipartToJsonBody,
    handler: async (request, reply) => {
      // A file part's bytes, or the JSON's base64 text: the worker decodes it.
      const image = binaryPartsOf(request).image ?? request.body.image;
      const { maxSide, warnings } = resolveMaxSide(request.body.maxSide, app.config.maxImageSide);
      const header = warningsHeaderValue(warnings);
      if (header !== undefined) reply.header(WARNINGS_HEADER, header);
      // The worker runs the backbone and encodes the body; this thread only sends it.
      const out = await app.work.features(image, request.body.format, maxSide, {
        slot: slotOf(request),
        signal: clientGoneSignal(reply.raw),
      });
      // Streamed; its JSON form is `featuresResponseSchema` (tested).
      return sendEncoded(request, reply, out, answerOptions);
    },
  });
};

export default featuresRoutes;

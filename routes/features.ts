/** `POST /v1/features`: an image in, the backbone's feature map `[1, C, H, W]` out (JSON or `.npy`). */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { observeStages, serverTiming } from '../src/metrics.js';
import { multipartToJsonBody } from '../src/request.js';
import { featureMapInfoSchema, imageInfoSchema, tensorJson } from '../src/responses.js';
import { decodeBase64Bytes } from '../src/tensors/base64.js';
import { writeNpy } from '../src/tensors/npy.js';
import { NPY_CONTENT_TYPE, workErrorResponses } from './roi.js';

export const featuresBodySchema = z.strictObject({
  image: z.string().min(1).describe('an encoded image, base64 (a file part in multipart)'),
  format: z
    .enum(['json', 'npy'])
    .default('json')
    .describe('json (base64 float32) or npy ([1, C, H, W] float32)'),
});

export const featuresResponseSchema = z.object({
  features: z
    .object({
      shape: z.tuple([z.number().int(), z.number().int(), z.number().int(), z.number().int()]),
      layout: z.literal('NCHW'),
      dtype: z.literal('float32'),
      data: z.string().describe('base64 of little-endian float32 values, NCHW order'),
    })
    .describe('the feature map [1, C, H, W]; send it back to /v1/roi as `features`'),
  featureMap: featureMapInfoSchema,
  image: imageInfoSchema,
  timings: z.object({ decode: z.number(), backbone: z.number(), encode: z.number() }),
});

const featuresRoutes: FastifyPluginAsyncZod = async (app) => {
  app.route({
    method: 'POST',
    url: '/v1/features',
    schema: {
      summary: 'Run the backbone on an image: the feature map [1, C, H, W]',
      tags: ['backbone'],
      consumes: ['application/json', 'multipart/form-data'],
      security: [{ bearer: [] }, { apiKey: [] }],
      body: featuresBodySchema,
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
    preValidation: multipartToJsonBody,
    handler: async (request, reply) => {
      const image = decodeBase64Bytes(request.body.image, 'image');
      const result = await app.work.features(image);
      const encodeStart = performance.now();
      const { features } = result;
      let payload: Buffer | z.output<typeof featuresResponseSchema>;
      if (request.body.format === 'npy') {
        payload = writeNpy(features.data, features.shape);
        reply.type(NPY_CONTENT_TYPE).header('Content-Disposition', 'attachment; filename="features.npy"');
      } else {
        const tensor = tensorJson(features.data, features.shape, 'base64');
        payload = {
          features: {
            shape: [features.shape[0], features.shape[1], features.shape[2], features.shape[3]],
            layout: 'NCHW',
            dtype: 'float32',
            data: tensor.data as string,
          },
          featureMap: result.featureMap,
          image: result.image,
          timings: { ...result.timings, encode: 0 },
        };
      }
      const timings = { ...result.timings, encode: performance.now() - encodeStart };
      if (!Buffer.isBuffer(payload)) payload.timings.encode = timings.encode;
      observeStages(app.metrics, timings);
      reply.header('Server-Timing', serverTiming(timings));
      // Buffers (npy, safetensors) bypass the JSON serializer; the cast only widens the reply type.
      return reply.send(payload as Exclude<typeof payload, Buffer>);
    },
  });
};

export default featuresRoutes;

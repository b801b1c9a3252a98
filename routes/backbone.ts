/** `GET /v1/backbone`: what the built-in (or configured) backbone is, layer by layer. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { problemResponse } from '../src/http/openapi.js';

const layerSchema = z.object({
  name: z.string(),
  type: z
    .string()
    .describe('input, conv, maxpool, concat, upsample, add, or the tfjs class name for user models'),
  inputs: z.array(z.string()),
  outputShape: z.array(z.number()).describe('[N, C, H, W] at the reference input size'),
  kernel: z.number().optional(),
  stride: z.number().optional(),
  params: z.number(),
  multiplyAdds: z.number(),
  multiplyAddsWithoutBottleneck: z.number().optional(),
  receptiveField: z.number(),
  totalStride: z.number(),
});

const pyramidSchema = z
  .object({
    channels: z.number().int().describe('channels of every level'),
    strides: z.array(z.number().int()).describe('stride of each level, finest first (8, 16, 32)'),
    levels: z.array(
      z.object({
        name: z.string().describe('the node the level is read from (fpn/p3, …)'),
        level: z.number().int().describe('FPN level k: stride 2^k'),
        stride: z.number().int(),
        outputShape: z.array(z.number()).describe('[N, C, H, W] at the reference input size'),
        receptiveField: z.number(),
      }),
    ),
    totalParams: z.number().describe('parameters of the whole pyramid network, the backbone included'),
    totalMultiplyAdds: z
      .number()
      .describe('multiply-adds of one pyramid forward pass at referenceInput, the backbone included'),
    layers: z.array(layerSchema).describe('the layers the pyramid adds to the backbone'),
  })
  .meta({
    id: 'BackbonePyramid',
    description: 'the feature pyramid `pyramid: true` gives (a light FPN on the built-in backbone)',
  });

export const backboneDescriptionSchema = z
  .object({
    name: z.string(),
    backend: z.string().describe('tfjs backend: tensorflow, wasm or cpu'),
    backendReason: z.string().describe('why that backend (TF_BACKEND and what loaded), in words'),
    tfjsNodeError: z
      .string()
      .nullable()
      .describe(
        'why @tensorflow/tfjs-node is not in use: its load error when it was tried (TF_BACKEND auto); else null',
      ),
    inputChannels: z.number().int(),
    outputChannels: z.number().int(),
    stride: z.number(),
    receptiveField: z.number(),
    totalParams: z.number(),
    totalMultiplyAdds: z.number().describe('multiply-adds of one forward pass at referenceInput'),
    referenceInput: z.tuple([z.number(), z.number()]).describe('[H, W]'),
    inputNormalization: z.string(),
    layers: z.array(layerSchema),
    pyramid: pyramidSchema.optional().describe('absent when the backbone has no pyramid (user models)'),
  })
  .meta({ id: 'BackboneDescription', description: 'the backbone, layer by layer' });

const backboneRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/v1/backbone',
    {
      schema: {
        operationId: 'backbone',
        summary: 'The backbone: layers, shapes, parameters, multiply-adds, stride, backend',
        tags: ['backbone'],
        security: [{ bearer: [] }, { apiKey: [] }],
        response: {
          200: backboneDescriptionSchema,
          401: problemResponse('missing or wrong API key (only when API_KEY is set)'),
          503: problemResponse('the backbone is still loading, or the work queue is full'),
        },
      },
    },
    async () => app.readiness.backbone ?? (await app.work.describe()),
  );
};

export default backboneRoutes;

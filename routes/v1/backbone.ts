/** `GET /v1/backbone`: what the built-in (or configured) backbone is, layer by layer. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { RoiServeError } from '../../src/errors.js';
import { problemResponse } from '../../src/http/openapi.js';

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
    engine: z
      .enum(['tfjs', 'onnx'])
      .describe('what runs the backbone: tfjs (on `backend`) or onnx (ONNX Runtime); BACKBONE_ENGINE'),
    engineReason: z
      .string()
      .describe(
        'why that engine, in words (e.g. "onnx: auto: tfjs-node not in use (…); ONNX Runtime 1.30.0 loaded")',
      ),
    engineCheck: z
      .object({
        maxAbs: z.number().describe('max |ONNX Runtime − tfjs| over the probe features'),
        relative: z
          .number()
          .describe('maxAbs over max |tfjs feature|; at most 1e-4 or the service refuses to start'),
        probe: z.tuple([z.number(), z.number()]).describe('[width, height] of the probe image'),
      })
      .nullable()
      .describe('the start-up agreement check of the onnx engine on the built-in net; null when not run'),
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
    '/backbone',
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

  app.get(
    '/backbone/model.onnx',
    {
      schema: {
        operationId: 'backboneOnnx',
        summary: 'The backbone as an ONNX model, with the weights the service runs',
        description:
          'The built-in backbone exported to ONNX (opset 15): input `image` `[1, 3, H, W]` float32, RGB in [0, 1] ' +
          '(NCHW); output `features` `[1, 256, ceil(H/16), ceil(W/16)]` float32. The same network and weights ' +
          'as `/v1/features`, so it runs elsewhere (ONNX Runtime, PyTorch via onnx2torch, …) to the same ' +
          'features within float32 rounding. 404 when the configured backbone is a tfjs model (BACKBONE_DIR).',
        tags: ['backbone'],
        security: [{ bearer: [] }, { apiKey: [] }],
        produces: ['application/octet-stream'],
        response: {
          200: z.any().describe('the .onnx file (application/octet-stream)'),
          401: problemResponse('missing or wrong API key (only when API_KEY is set)'),
          404: problemResponse('the configured backbone is a tfjs model, which has no ONNX form here'),
          503: problemResponse('the backbone is still loading, or the work queue is full'),
        },
      },
    },
    async (_request, reply) => {
      const bytes = await app.work.onnxModel();
      if (bytes === null)
        throw new RoiServeError(
          404,
          'The configured backbone (BACKBONE_DIR) is a tfjs model; only the built-in backbone and ONNX backbones are served as ONNX',
        );
      return reply
        .type('application/octet-stream')
        .header('Content-Disposition', 'attachment; filename="roiserve-backbone.onnx"')
        .send(bytes);
    },
  );
};

export default backboneRoutes;

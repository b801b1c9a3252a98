/**
 * `POST /v1/roi`: an image (or a feature map) and boxes in; RoI Pool / Align / Warp outputs out, as
 * JSON, `.npy` or safetensors. Thin: parse (`routes/v1/schemas/`, `src/core/prepare.ts`) → work (`app.work`) → encode.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { admitWork, slotOf } from '../../src/admission.js';
import { clientGoneSignal } from '../../src/cancel.js';
import { answerOptionsOf, sendEncoded } from '../../src/http/answers.js';
import {
  checkArrayEncoding,
  checkRoiFormat,
  NPY_CONTENT_TYPE,
  SAFETENSORS_CONTENT_TYPE,
} from '../../src/core/encode.js';
import { outputValueCount, prepareRoi } from '../../src/core/prepare.js';
import { knownChannels, limitsFrom } from '../../src/core/task.js';
import { binaryPartsOf, multipartToJsonBody } from '../../src/http/multipart.js';
import { warningsResponseHeader } from '../../src/warnings.js';
import { workErrorResponses } from './schemas/errors.js';
import { roiBodySchema, roiInputOf } from './schemas/request.js';
import { roiResponseSchema } from './schemas/responses.js';

const binary = z.string().meta({ format: 'binary' });

/**
 * A feature map `[1, 1, 2, 2]` holding 1, 2, 3, 4 (base64 little-endian float32): small enough to
 * read, and a request needs neither an image nor the backbone. The README's JSON example uses it too.
 */
export const TINY_FEATURES = { shape: [1, 1, 2, 2], layout: 'NCHW', data: 'AACAPwAAAEAAAEBAAACAQA==' };

const roiRoutes: FastifyPluginAsyncZod = async (app) => {
  // Answers go out in chunks, counted, and are cut when the client stops reading (src/http/answers.ts).
  const answerOptions = answerOptionsOf(app);
  const limits = limitsFrom(app.config);

  app.route({
    method: 'POST',
    url: '/roi',
    schema: {
      operationId: 'roi',
      summary: 'Run RoI Pool / RoI Align / RoI Warp on an image or a feature map',
      description:
        'Send `application/json`, or `multipart/form-data` with the same fields: `image` or `features` (a float32 ' +
        '4-D .npy, with a `layout=NHWC` field for channels-last data) as file parts, array/object fields as ' +
        'JSON text (`boxes=[[0,0,10,10]]`), plain values plain (`spatialScale=0.25`, `format=npy`). ' +
        '`features.shape` is the shape as stored: [N, H, W, C] for NHWC. Every response carries `Server-Timing`.',
      tags: ['roi'],
      consumes: ['application/json', 'multipart/form-data'],
      security: [{ bearer: [] }, { apiKey: [] }],
      body: roiBodySchema,
      // RoI Align of the whole 2×2 map into one cell: the mean, 2.5.
      'x-response-headers': { 200: warningsResponseHeader },
      'x-example': {
        features: TINY_FEATURES,
        spatialScale: 1,
        boxes: [[0, 0, 2, 2]],
        outputSize: 1,
        ops: ['align'],
        encoding: 'array',
      },
      response: {
        200: {
          description: 'the outputs; JSON by default, `.npy` or safetensors on request',
          content: {
            'application/json': { schema: roiResponseSchema },
            [NPY_CONTENT_TYPE]: {
              schema: binary.describe(
                '.npy of [K, C, PH, PW] float32, or float16 with dtype=float16 (format=npy)',
              ),
            },
            [SAFETENSORS_CONTENT_TYPE]: {
              schema: binary.describe('safetensors with a tensor per op and the parameters in its metadata'),
            },
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
      // Before any work: one op per .npy, and no bfloat16 in one (the worker's encoder refuses it too).
      checkRoiFormat(body);
      const task = prepareRoi(roiInputOf(body, binaryPartsOf(request)), limits);
      if (body.format === 'json' && body.encoding === 'array') {
        // Refuse early when the channel count is known (features, or a loaded backbone).
        const channels = knownChannels(task, app.readiness.backbone);
        if (typeof channels === 'number') {
          checkArrayEncoding(
            outputValueCount(task.boxes.count, channels, task.params.outputSize, task.params.ops),
            'array',
          );
        }
      }
      // The worker runs the operators and encodes the body; this thread only sends it.
      // Cancelled (queued: dropped; running: stopped at the next box) if the client goes away.
      const signal = clientGoneSignal(reply.raw);
      const out = await app.work.roiEncoded(
        task,
        body.format,
        body.encoding,
        { slot: slotOf(request), signal },
        body.dtype,
      );
      for (const op of out.ops) app.metrics.boxes.inc({ op }, out.boxCount);
      // Streamed, warnings in a header; its JSON form is `roiResponseSchema` (tested).
      return sendEncoded(request, reply, out, answerOptions);
    },
  });
};

export default roiRoutes;

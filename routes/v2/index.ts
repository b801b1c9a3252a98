/**
 * The Open Inference Protocol v2 (KServe / Triton HTTP/REST) under `/v2`, one encapsulated plugin
 * (register it with `prefix: '/v2'`): the RoI operators as models any inference client can call.
 *
 * - `GET /v2` server metadata, `GET /v2/health/live`, `GET /v2/health/ready`;
 * - `GET /v2/models/{model}` metadata, `GET /v2/models/{model}/ready`, `POST /v2/models/{model}/infer`,
 *   each also under `/versions/1` (other versions: 404).
 *
 * Its own error format, as the protocol says: `{"error": "<message>"}` with `Content-Type:
 * application/json` exactly (KServe's client reads the message only then), from this scope's error
 * and not-found handlers. Its own body parsers, in this scope only: `application/json`,
 * `application/octet-stream` and no `Content-Type` at all (what `tritonclient.http` sends) are read
 * as bytes, because a body may be JSON followed by binary tensors (`Inference-Header-Content-Length`).
 * Other content types stay a 415.
 *
 * The API key (`API_KEY`) guards every route but the two health probes, decided by the matched route
 * as on `/v1` (`src/http/auth.ts`); its 401 is in this format too. Limits, the work queue (admission)
 * and the worker pool are `/v1`'s: an inference is the task `POST /v1/roi` runs.
 *
 * Why one file of ~520 lines: most of it is the routes' OpenAPI schemas and their descriptions; the
 * handlers are short and call `src/oip/codec.ts` (wire format) and `src/oip/models.ts` (tasks).
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { admitWork, slotOf } from '../../src/admission.js';
import { clientGoneSignal } from '../../src/cancel.js';
import { BusyError, RoiServeError, UnsupportedMediaError } from '../../src/errors.js';
import { type KeyRefusal, requireApiKey } from '../../src/http/auth.js';
import { recordTimings } from '../../src/http/timing.js';
import {
  encodeInferenceResponse,
  int64Tensor,
  outputTensor,
  HEADER_LENGTH,
  headerLength,
  parseInferenceRequest,
  wantsBinary,
} from '../../src/oip/codec.js';
import { answerOptionsOf, sendAnswer } from '../../src/http/answers.js';
import { type RoiWarning, WARNINGS_HEADER, warningsHeaderValue } from '../../src/warnings.js';
import {
  backboneInput,
  outputDatatype,
  multiScaleTask,
  psTask,
  rotatedTask,
  MODEL_VERSION,
  MODELS,
  npyParts,
  roiTask,
  type Model,
} from '../../src/oip/models.js';
import { limitsFrom } from '../../src/core/task.js';

/** `Content-Type` of every JSON answer and error, exactly (no charset: KServe's client compares it). */
export const OIP_JSON = 'application/json';

/** The server's name in `GET /v2`. */
const SERVER_NAME = 'roiserve';

/** The protocol extensions served (Triton's names). */
export const EXTENSIONS = ['binary_tensor_data'];

/**
 * Sends `value` as JSON with `Content-Type: application/json` exactly: as bytes, because fastify adds
 * `; charset=utf-8` to a string body.
 */
function sendJson(reply: FastifyReply, value: unknown, status = 200): FastifyReply {
  return reply
    .code(status)
    .header('content-type', OIP_JSON)
    .send(Buffer.from(JSON.stringify(value), 'utf8'));
}

/** Sends `{"error": message}` with `status`. */
function sendError(reply: FastifyReply, status: number, message: string): FastifyReply {
  return sendJson(reply, { error: message }, status);
}

const errorSchema = z
  .object({ error: z.string().describe('what went wrong, in words naming the input or parameter') })
  .meta({ id: 'InferenceError', description: 'an Open Inference Protocol error' });

function errorResponse(description: string) {
  return { description, content: { [OIP_JSON]: { schema: errorSchema } } };
}

const tensorMetadata = z.object({
  name: z.string(),
  datatype: z.string(),
  shape: z.array(z.number().int()).describe('-1 for a free dimension'),
});

const modelMetadataSchema = z
  .object({
    name: z.string(),
    versions: z.array(z.string()),
    platform: z.string(),
    inputs: z.array(tensorMetadata),
    outputs: z.array(tensorMetadata),
  })
  .meta({ id: 'ModelMetadata', description: 'inputs and outputs of a model' });

const requestTensor = z.object({
  name: z.string(),
  shape: z.array(z.number().int()),
  datatype: z
    .string()
    .describe('FP32 for features and rois; INT64 or INT32 for batch_indices; BYTES for image'),
  parameters: z
    .record(z.string(), z.unknown())
    .optional()
    .describe('`binary_data_size` for binary tensor data'),
  data: z.array(z.unknown()).optional().describe('row-major values, flat or nested'),
});

const inferenceRequestSchema = z
  .object({
    id: z.string().optional(),
    parameters: z
      .record(z.string(), z.unknown())
      .optional()
      .describe(
        'spatial_scale (required with features), output_size or output_height / output_width (7), ' +
          'sampling_ratio (2), aligned (true), mode (avg | max | onnx_max), max_side (image only), ' +
          'dtype (FP32 | FP16 | BF16: the output datatype), binary_data_output',
      ),
    inputs: z.array(requestTensor),
    outputs: z
      .array(z.object({ name: z.string(), parameters: z.record(z.string(), z.unknown()).optional() }))
      .optional(),
  })
  .meta({ id: 'InferenceRequest', description: 'an Open Inference Protocol inference request' });

const inferenceResponseSchema = z
  .object({
    model_name: z.string(),
    model_version: z.string(),
    id: z.string().optional(),
    outputs: z.array(
      z.object({
        name: z.string(),
        datatype: z.string(),
        shape: z.array(z.number().int()),
        parameters: z.record(z.string(), z.unknown()).optional(),
        data: z.array(z.number()).optional(),
      }),
    ),
  })
  .meta({ id: 'InferenceResponse', description: 'an Open Inference Protocol inference response' });

const modelParams = z.object({
  model: z
    .string()
    .describe(`a model: ${[...MODELS.keys()].join(', ')}`)
    .meta({ example: 'roi_align' }),
});

/** RoI Align of the 2×2 map 1, 2, 3, 4 into one cell: 2.5 (the same example as /v1/roi's). */
const INFER_EXAMPLE = {
  id: 'example',
  parameters: { spatial_scale: 1, output_size: 1 },
  inputs: [
    { name: 'features', shape: [1, 1, 2, 2], datatype: 'FP32', data: [1, 2, 3, 4] },
    { name: 'rois', shape: [1, 5], datatype: 'FP32', data: [0, 0, 0, 2, 2] },
  ],
};

/**
 * The model a URL names, or a 404: an unknown model, or a version other than `1`.
 */
function resolveModel(request: FastifyRequest): Model {
  const { model, version } = request.params as { model: string; version?: string };
  const found = MODELS.get(model);
  if (found === undefined) {
    throw new RoiServeError(404, `unknown model "${model}"; models: ${[...MODELS.keys()].join(', ')}`);
  }
  if (version !== undefined && version !== MODEL_VERSION) {
    throw new RoiServeError(
      404,
      `model "${model}" has no version "${version}"; its only version is ${MODEL_VERSION}`,
    );
  }
  return found;
}

/** Whether the workers are ready (the same rule as `/readyz`). */
function serverReady(app: FastifyInstance): boolean {
  return app.readiness.state === 'ready' && app.work.readyWorkers > 0;
}

/** The 401 of this scope: `requireApiKey`'s decision, this protocol's `{"error"}` body. */
const refuseKey: KeyRefusal = (_request, reply, given) =>
  sendError(
    reply,
    401,
    given
      ? 'the API key is not valid'
      : 'this route needs an API key (Authorization: Bearer <key> or X-API-Key: <key>)',
  );

/** Reads every body of this scope as bytes (see the module comment). */
function useBinaryBodies(scope: FastifyInstance): void {
  scope.removeContentTypeParser('application/json');
  const asBytes = (
    _request: FastifyRequest,
    body: Buffer,
    done: (err: Error | null, body?: unknown) => void,
  ) => done(null, body);
  scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, asBytes);
  scope.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, asBytes);
  // No Content-Type at all reaches the catch-all parser; any other unknown type stays a 415.
  scope.addContentTypeParser('*', { parseAs: 'buffer' }, (request, body, done) => {
    const type = request.headers['content-type'];
    if (type !== undefined && type !== '') {
      done(
        new UnsupportedMediaError(
          `Content-Type ${type} is not accepted; send application/json, application/octet-stream or no Content-Type`,
        ),
      );
      return;
    }
    done(null, body);
  });
}

/** Options of the plugin. */
export interface V2Options {
  /** The server version `GET /v2` reports (package.json's). */
  version: string;
}

const v2Routes: FastifyPluginAsyncZod<V2Options> = async (app, options) => {
  const limits = limitsFrom(app.config);
  const answerOptions = answerOptionsOf(app);
  useBinaryBodies(app);

  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof RoiServeError) {
      if (err instanceof BusyError) reply.header('Retry-After', String(err.retryAfterSeconds));
      if (err.status >= 500 && !(err instanceof BusyError)) request.log.error({ err }, 'request failed');
      return sendError(reply, err.status, err.message);
    }
    const status = err.statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500)
      return sendError(reply, status, err.message);
    request.log.error({ err }, 'request failed');
    return sendError(reply, 500, 'internal server error');
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0];
    const allowed = app.routeIndex.allowedMethods(request.url);
    if (allowed.length > 0) {
      reply.header('Allow', allowed.join(', '));
      return sendError(
        reply,
        405,
        `${request.method} is not allowed on ${path}; it accepts ${allowed.join(', ')}`,
      );
    }
    return sendError(reply, 404, `no route ${request.method} ${path}`);
  });

  // The health probes: open, like /healthz and /readyz.
  await app.register(async (open) => {
    requireApiKey(open, undefined);
    open.get(
      '/health/live',
      {
        schema: {
          operationId: 'v2Live',
          summary: 'Open Inference Protocol: server live',
          tags: ['v2'],
          response: { 200: z.object({ live: z.boolean() }) },
        },
      },
      async (_request, reply) => sendJson(reply, { live: true }),
    );
    open.get(
      '/health/ready',
      {
        schema: {
          operationId: 'v2Ready',
          summary: 'Open Inference Protocol: server ready (200), or not yet (503); the body says it too',
          tags: ['v2'],
          response: { 200: z.object({ ready: z.boolean() }), 503: z.object({ ready: z.boolean() }) },
        },
      },
      async (_request, reply) => {
        const ready = serverReady(app);
        return sendJson(reply, { ready }, ready ? 200 : 503);
      },
    );
  });

  await app.register(async (keyed) => {
    requireApiKey(keyed, app.config.apiKey, refuseKey);
    const security: Array<Record<string, string[]>> = [{ bearer: [] }, { apiKey: [] }];
    const errors = {
      401: errorResponse('missing or wrong API key (only when API_KEY is set)'),
      404: errorResponse('unknown model, or a version other than 1'),
    };

    keyed.get(
      '',
      {
        schema: {
          operationId: 'v2ServerMetadata',
          summary: 'Open Inference Protocol: server metadata (name, version, extensions)',
          tags: ['v2'],
          security,
          response: {
            200: z.object({ name: z.string(), version: z.string(), extensions: z.array(z.string()) }),
            401: errors[401],
          },
        },
      },
      async (_request, reply) =>
        sendJson(reply, { name: SERVER_NAME, version: options.version, extensions: EXTENSIONS }),
    );

    for (const versioned of [false, true]) {
      const base = versioned ? '/models/:model/versions/:version' : '/models/:model';
      const params = versioned ? modelParams.extend({ version: z.string() }) : modelParams;
      // The `/versions/1` spellings work but stay out of the document (one operation per endpoint).
      const hide = versioned;

      keyed.get(
        base,
        {
          schema: {
            hide,
            operationId: 'v2ModelMetadata',
            summary: 'Open Inference Protocol: model metadata (also under /versions/1)',
            tags: ['v2'],
            security,
            params,
            response: { 200: modelMetadataSchema, ...errors },
          },
        },
        async (request, reply) => {
          const model = resolveModel(request);
          const body = {
            name: model.name,
            versions: [MODEL_VERSION],
            platform: 'roiserve',
            inputs: model.inputs,
            outputs: model.outputs,
          };
          return sendJson(reply, body);
        },
      );

      keyed.get(
        `${base}/ready`,
        {
          schema: {
            hide,
            operationId: 'v2ModelReady',
            summary: 'Open Inference Protocol: model ready (200), or not yet (503) (also under /versions/1)',
            tags: ['v2'],
            security,
            params,
            response: {
              200: z.object({ name: z.string(), ready: z.boolean() }),
              503: z.object({ name: z.string(), ready: z.boolean() }),
              ...errors,
            },
          },
        },
        async (request, reply) => {
          const model = resolveModel(request);
          const ready = serverReady(app);
          return sendJson(reply, { name: model.name, ready }, ready ? 200 : 503);
        },
      );

      keyed.post(
        `${base}/infer`,
        {
          schema: {
            hide,
            operationId: 'v2Infer',
            summary: 'Open Inference Protocol: run a RoI model (also under /versions/1)',
            description:
              'Inputs: `features` FP32 [N, C, H, W] (or `image` BYTES [1], an encoded image run through the ' +
              'backbone) and `rois` FP32 [K, 5] (b, x1, y1, x2, y2) in image pixels, or [K, 4] plus ' +
              '`batch_indices` INT64/INT32 [K]. Output: `pooled` FP32 [K, C, PH, PW], bit for bit what ' +
              'POST /v1/roi gives. Binary tensor data (Triton): send `Inference-Header-Content-Length` ' +
              'and `parameters.binary_data_size` per input; ask for binary outputs with ' +
              '`parameters.binary_data` per output or `binary_data_output` on the request.',
            tags: ['v2'],
            security,
            params,
            consumes: [OIP_JSON, 'application/octet-stream'],
            body: inferenceRequestSchema,
            'x-example': INFER_EXAMPLE,
            response: {
              200: {
                description: 'JSON, or the JSON header then binary outputs (application/octet-stream)',
                content: {
                  [OIP_JSON]: { schema: inferenceResponseSchema },
                  'application/octet-stream': {
                    schema: z
                      .string()
                      .meta({ format: 'binary' })
                      .describe('the JSON header (Inference-Header-Content-Length bytes), then the outputs'),
                  },
                },
              },
              400: errorResponse('invalid input; the message names the input or parameter'),
              ...errors,
              413: errorResponse('body, rois, output or estimated work (MAX_WORK) over a limit'),
              415: errorResponse('unsupported content type or image format'),
              503: errorResponse('the work queue is full: retry after `Retry-After` seconds'),
              504: errorResponse('the request ran longer than TASK_TIMEOUT_SECONDS in its worker'),
            },
          },
          // The body is raw bytes (JSON, perhaps followed by binary tensors): checked by the codec, not
          // by the schema, which is there for the document.
          validatorCompiler: () => (value: unknown) => ({ value }),
          // A place in the queue before the body is read, as on /v1.
          onRequest: admitWork,
          // Every answer counted by model (a name the server does not have is `unknown`: bounded labels).
          onResponse: async (request, reply) => {
            const { model } = request.params as { model: string };
            app.metrics.inferences.inc({
              model: MODELS.has(model) ? model : 'unknown',
              status: String(reply.statusCode),
            });
          },
        },
        async (request, reply) => {
          const model = resolveModel(request);
          const body = request.body as unknown;
          if (!Buffer.isBuffer(body)) {
            throw new UnsupportedMediaError(
              'send the inference request as application/json, application/octet-stream or with no Content-Type',
            );
          }
          const infer = parseInferenceRequest(
            body,
            headerLength(request.headers[HEADER_LENGTH], body.length),
          );
          for (const output of infer.outputs ?? []) {
            if (!model.outputs.some((o) => o.name === output.name)) {
              throw new RoiServeError(
                400,
                `model ${model.name} has no output "${output.name}"; its output is ${model.outputs.map((o) => o.name).join(', ')}`,
                'outputs',
              );
            }
          }
          const options = { slot: slotOf(request), signal: clientGoneSignal(reply.raw) };
          const datatype = outputDatatype(infer.parameters);
          // The output as float32 bytes: the worker's `.npy` data as they are (bit for bit /v1's).
          let output: { shape: number[]; data: Uint8Array };
          let levels: Int32Array | undefined;
          const warnings: RoiWarning[] = [];
          if (model.kind === 'backbone') {
            const { image, maxSide } = backboneInput(infer, model, limits);
            const out = await app.work.features(image, 'npy', maxSide, options);
            recordTimings(request, app.metrics, out.timings);
            output = npyParts(out.body);
          } else if (model.kind !== 'roi') {
            const task =
              model.kind === 'ps'
                ? psTask(infer, model, limits)
                : model.kind === 'rotated'
                  ? rotatedTask(infer, model, limits)
                  : multiScaleTask(infer, model, limits);
            const out = await app.work.kernel(task, options);
            recordTimings(request, app.metrics, out.timings);
            levels = out.levels;
            output = {
              shape: out.shape,
              data: new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength),
            };
          } else {
            const task = roiTask(infer, model, limits);
            const out = await app.work.roiEncoded(task, 'npy', 'base64', options);
            recordTimings(request, app.metrics, out.timings);
            for (const op of out.ops) app.metrics.boxes.inc({ op }, out.boxCount);
            warnings.push(...out.warnings);
            output = npyParts(out.body);
          }
          const name = model.outputs[0].name;
          const { tensor, overflow } = outputTensor(name, output.shape, output.data, datatype);
          if (overflow > 0) {
            warnings.push({
              code: 'dtype-overflow',
              field: 'parameters.dtype',
              message: `${overflow} finite values of "${name}" are outside ${datatype}'s range and were sent as ±Infinity; use FP32${datatype === 'FP16' ? " (or BF16, which has float32's range)" : ''}`,
            });
          }
          const tensors = [tensor];
          if (levels !== undefined) tensors.push(int64Tensor('levels', levels));
          // Only the outputs asked for, when the request names some (the protocol's `outputs`).
          const asked = infer.outputs?.map((o) => o.name);
          const encoded = encodeInferenceResponse(
            { model_name: model.name, model_version: MODEL_VERSION, id: infer.id },
            tensors
              .filter((t) => asked === undefined || asked.includes(t.name))
              .map((t) => ({ ...t, binary: wantsBinary(infer, t.name) })),
          );
          // The same warnings header as /v1 (max-side-capped, dtype-overflow, …).
          const warningsHeader = warningsHeaderValue(warnings);
          if (warningsHeader !== undefined) reply.header(WARNINGS_HEADER, warningsHeader);
          if (encoded.jsonLength === undefined) reply.header('content-type', OIP_JSON);
          else {
            reply
              .header('content-type', 'application/octet-stream')
              .header('Inference-Header-Content-Length', String(encoded.jsonLength));
          }
          // In chunks with back-pressure, counted against MAX_RESPONSE_BYTES_IN_FLIGHT, as /v1's answers.
          return sendAnswer(reply, encoded.body, answerOptions);
        },
      );
    }
  });
};

export default v2Routes;

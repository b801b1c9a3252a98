/**
 * RFC 9457 problem details: the one error body of the service (`application/problem+json`), its zod
 * schema for the OpenAPI document, and the mapping from any thrown error to a problem.
 */
import type { FastifyError } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { RoiServeError } from './errors.js';
import { fieldFromPath, validationFields, type ValidationContext } from './http/validation-messages.js';

export { fieldFromPath };

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

export const problemFieldSchema = z
  .object({
    field: z
      .string()
      .describe('path of the offending field, e.g. `boxes[3][2]`; empty when about the whole request'),
    expected: z.string().describe('what was expected there'),
    message: z.string(),
  })
  .meta({ id: 'ProblemField', description: 'one offending field of a problem' });

export const problemSchema = z
  .object({
    type: z.string().describe('a URI naming the problem kind, e.g. `urn:roiserve:problem:invalid-input`'),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string().optional().describe('the request path'),
    errors: z.array(problemFieldSchema).optional(),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details (application/problem+json)' });

export type Problem = z.infer<typeof problemSchema>;
export type ProblemField = z.infer<typeof problemFieldSchema>;

const KINDS: Record<number, { type: string; title: string }> = {
  400: { type: 'invalid-input', title: 'Invalid input' },
  401: { type: 'unauthorized', title: 'Unauthorized' },
  404: { type: 'not-found', title: 'Not found' },
  405: { type: 'method-not-allowed', title: 'Method not allowed' },
  406: { type: 'not-acceptable', title: 'Not acceptable' },
  408: { type: 'timeout', title: 'Request timeout' },
  411: { type: 'length-required', title: 'Length required' },
  413: { type: 'too-large', title: 'Too large' },
  415: { type: 'unsupported-media-type', title: 'Unsupported media type' },
  429: { type: 'too-many-requests', title: 'Too many requests' },
  431: { type: 'headers-too-large', title: 'Request header fields too large' },
  499: { type: 'client-closed-request', title: 'Client closed request' },
  500: { type: 'internal', title: 'Internal server error' },
  503: { type: 'unavailable', title: 'Service unavailable' },
  504: { type: 'task-timeout', title: 'Task timed out' },
};

/**
 * The path of a request target, a problem's `instance`: without its query string, and without the
 * scheme and host of an absolute-form target (`GET http://host/v1/roi`, which the router also accepts),
 * so the answer names the path, not whatever host the client wrote.
 */
export function requestPath(url: string): string {
  return url.split('?')[0].replace(/^[a-z][a-z\d+.-]*:\/\/[^/]*/i, '');
}

/** Builds a problem for `status` (type and title from the status). */
export function problem(status: number, detail: string, errors?: ProblemField[], instance?: string): Problem {
  const kind = KINDS[status] ?? (status >= 500 ? KINDS[500] : KINDS[400]);
  const out: Problem = { type: `urn:roiserve:problem:${kind.type}`, title: kind.title, status, detail };
  if (instance !== undefined) out.instance = instance;
  if (errors !== undefined && errors.length > 0) out.errors = errors;
  return out;
}

/**
 * Turns any error thrown while handling a request into a problem. Client mistakes (typed errors,
 * validation, fastify's 4xx errors) keep their status and message; anything else becomes a 500 whose
 * detail says nothing about internals (`internal: true` tells the caller to log it).
 */
export function problemFromError(
  err: unknown,
  instance?: string,
  context: { contentType?: string; bodyLimitBytes?: number } & Omit<ValidationContext, 'multipart'> = {},
): { problem: Problem; internal: boolean } {
  const code = (err as FastifyError | undefined)?.code;
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    const given = context.contentType
      ? `content type ${context.contentType}`
      : 'a request without a content type';
    const message = `${given} is not accepted here`;
    return {
      problem: problem(
        415,
        message,
        [{ field: 'Content-Type', expected: 'application/json or multipart/form-data', message }],
        instance,
      ),
      internal: false,
    };
  }
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE' || code === 'FST_REQ_FILE_TOO_LARGE') {
    const limit = context.bodyLimitBytes === undefined ? 'the limit' : `${context.bodyLimitBytes} bytes`;
    const message =
      code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? `the request body is larger than ${limit}`
        : `a file part is larger than ${limit}`;
    return {
      problem: problem(
        413,
        message,
        [{ field: 'body', expected: `at most ${limit} (BODY_LIMIT_BYTES)`, message }],
        instance,
      ),
      internal: false,
    };
  }
  if (hasZodFastifySchemaValidationErrors(err)) {
    const errors: ProblemField[] = validationFields(err.validation, {
      body: context.body,
      bodySchema: context.bodySchema,
      multipart: context.contentType?.toLowerCase().startsWith('multipart/form-data') === true,
    });
    const first = errors[0];
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
    return {
      problem: problem(400, `${first.field}: ${first.message}${more}`, errors, instance),
      internal: false,
    };
  }
  // 504 (TaskTimeoutError) is the request's cost, not a bug: its message and field are the client's to see.
  if (err instanceof RoiServeError && (err.status < 500 || err.status === 504)) {
    const errors = err.field
      ? [{ field: err.field, expected: err.expected, message: err.message }]
      : undefined;
    return { problem: problem(err.status, err.message, errors, instance), internal: false };
  }
  if (err instanceof RoiServeError && err.status === 503) {
    return { problem: problem(503, err.message, undefined, instance), internal: false };
  }
  const statusCode = (err as FastifyError | undefined)?.statusCode;
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    const message = err instanceof Error ? err.message : String(err);
    return { problem: problem(statusCode, message, undefined, instance), internal: false };
  }
  return {
    problem: problem(
      500,
      'The server failed to handle this request; it has been logged.',
      undefined,
      instance,
    ),
    internal: true,
  };
}

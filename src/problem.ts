/**
 * RFC 9457 problem details: the one error body of the service (`application/problem+json`), its zod
 * schema for the OpenAPI document, and the mapping from any thrown error to a problem.
 */
import type { FastifyError } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { RoiServeError } from './errors.js';

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
  500: { type: 'internal', title: 'Internal server error' },
  503: { type: 'unavailable', title: 'Service unavailable' },
};

/** Builds a problem for `status` (type and title from the status). */
export function problem(status: number, detail: string, errors?: ProblemField[], instance?: string): Problem {
  const kind = KINDS[status] ?? (status >= 500 ? KINDS[500] : KINDS[400]);
  const out: Problem = { type: `urn:roiserve:problem:${kind.type}`, title: kind.title, status, detail };
  if (instance !== undefined) out.instance = instance;
  if (errors !== undefined && errors.length > 0) out.errors = errors;
  return out;
}

/** `/boxes/0/2` → `boxes[0][2]`; `/features/shape` → `features.shape`. */
export function fieldFromPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number' || /^\d+$/.test(String(key))) out += `[${String(key)}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

interface ZodIssueParams {
  expected?: unknown;
  values?: unknown[];
  minimum?: unknown;
  maximum?: unknown;
  origin?: string;
  inclusive?: boolean;
  keys?: string[];
  format?: string;
}

/** What a zod issue expected, in words. */
function expectedFromIssue(code: string, params: ZodIssueParams): string {
  switch (code) {
    case 'invalid_type':
      return `${String(params.expected)}`;
    case 'invalid_value':
      return `one of ${(params.values ?? []).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'too_small': {
      const what = params.origin === 'array' ? 'items' : params.origin === 'string' ? 'characters' : '';
      return `${params.origin === 'number' ? 'a number' : `at least`} ${params.inclusive === false ? '>' : '>='} ${String(params.minimum)} ${what}`
        .replace('at least >=', 'at least')
        .replace('at least >', 'more than')
        .trim();
    }
    case 'too_big': {
      const what = params.origin === 'array' ? 'items' : params.origin === 'string' ? 'characters' : '';
      return `${params.origin === 'number' ? 'a number' : `at most`} ${params.inclusive === false ? '<' : '<='} ${String(params.maximum)} ${what}`
        .replace('at most <=', 'at most')
        .replace('at most <', 'fewer than')
        .trim();
    }
    case 'unrecognized_keys':
      return 'no such field (see the API documentation for the accepted fields)';
    case 'invalid_union':
      return 'one of the accepted forms (see the API documentation)';
    case 'not_multiple_of':
      return 'an integer';
    default:
      return 'a valid value';
  }
}

/**
 * Turns any error thrown while handling a request into a problem. Client mistakes (typed errors,
 * validation, fastify's 4xx errors) keep their status and message; anything else becomes a 500 whose
 * detail says nothing about internals (`internal: true` tells the caller to log it).
 */
export function problemFromError(
  err: unknown,
  instance?: string,
  context: { contentType?: string; bodyLimitBytes?: number } = {},
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
    const errors: ProblemField[] = [];
    for (const issue of err.validation) {
      const path = issue.instancePath.split('/').filter((s) => s !== '');
      const params = issue.params as ZodIssueParams;
      if (issue.keyword === 'unrecognized_keys' && params.keys) {
        for (const key of params.keys) {
          errors.push({
            field: fieldFromPath([...path, key]),
            expected: expectedFromIssue(issue.keyword, params),
            message: `unknown field ${fieldFromPath([...path, key])}`,
          });
        }
        continue;
      }
      const field = fieldFromPath(path) || 'body';
      errors.push({
        field,
        expected: expectedFromIssue(issue.keyword, params),
        message: issue.message ?? 'invalid',
      });
    }
    const first = errors[0];
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
    return {
      problem: problem(400, `${first.field}: ${first.message}${more}`, errors, instance),
      internal: false,
    };
  }
  if (err instanceof RoiServeError && err.status < 500) {
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

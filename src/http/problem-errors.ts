/**
 * Errors as problem+json (RFC 9457): the error handler that turns typed errors into status codes and
 * hides 5xx internals, and the 404 / 405 answers. The service's default format: the app sets it at its
 * root (open routes, unmatched paths) and `/v1` sets it in its own scope (`routes/v1/index.ts`); `/v2`
 * answers `{"error": …}` instead (`routes/v2/index.ts`).
 */
import type { FastifyInstance } from 'fastify';
import { BusyError } from '../errors.js';
import { PROBLEM_CONTENT_TYPE, problem, problemFromError, requestPath } from '../problem.js';

/**
 * Sets `scope`'s error handler to problem+json: the status and fields of the typed errors, a hint that
 * quotes the value sent, `Retry-After` on a 503 busy, the internals of a 5xx logged and never sent.
 *
 * @param bodyLimitBytes - `BODY_LIMIT_BYTES`, named in the 413 for a body over it
 */
export function useProblemErrors(scope: FastifyInstance, bodyLimitBytes: number): void {
  scope.setErrorHandler((err, request, reply) => {
    const { problem: body, internal } = problemFromError(err, requestPath(request.url), {
      contentType: request.headers['content-type'],
      bodyLimitBytes,
      // For hints that quote the value sent and suggest the right field name.
      body: request.body,
      bodySchema: request.routeOptions.schema?.body,
    });
    if (internal) request.log.error({ err }, 'request failed');
    if (err instanceof BusyError) reply.header('Retry-After', String(err.retryAfterSeconds));
    void reply.code(body.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
  });
}

/**
 * Unmatched requests: a 405 with `Allow` when the path exists with other methods (RFC 9110 §15.5.6; it
 * reveals no more than /openapi.json does), else a 404, both problem+json. Needs `app.routeIndex`.
 */
export function useProblemNotFound(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    const path = requestPath(request.url);
    // The key is checked by the route that matches.
    const allowed = app.routeIndex.allowedMethods(request.url);
    if (allowed.length > 0) {
      const list = allowed.join(', ');
      const message = `${request.method} is not allowed on ${path}; it accepts ${list}`;
      const body = problem(405, message, [{ field: 'method', expected: list, message }], path);
      void reply.code(405).header('Allow', list).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
      return;
    }
    const body = problem(404, `no route ${request.method} ${path}`, undefined, path);
    void reply.code(404).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
  });
}

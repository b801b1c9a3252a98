/**
 * The API key (`API_KEY`): an `onRequest` hook added to an encapsulated scope, so it guards exactly
 * the routes registered in that scope. The decision follows the route the router MATCHED, never the
 * URL text: a percent-encoded path (`/%76%31/roi`), an absolute-form target (`http://x/v1/roi`) or a
 * query string all reach the same route, and so the same hook. A URL that matches no route runs no
 * route hook and gets the same 404 with or without a key.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { PROBLEM_CONTENT_TYPE, problem, requestPath } from '../problem.js';

/** Constant-time comparison of digests, so neither the key's content nor its length leaks through timing. */
export function keyMatches(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** The key a request presents: `Authorization: Bearer <key>` first, else `X-API-Key: <key>`. */
export function presentedKey(headers: Record<string, string | string[] | undefined>): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === 'string') {
    const match = /^Bearer\s+(.+)$/i.exec(auth.trim());
    if (match) return match[1];
  }
  const key = headers['x-api-key'];
  return typeof key === 'string' ? key : undefined;
}

/**
 * How a scope answers a request without a valid key: `given` says a key was presented, but not this
 * one. The `WWW-Authenticate: Bearer` header is already set. `/v1` answers problem+json
 * ({@link problemRefusal}); `/v2` answers its protocol's `{"error"}`.
 */
export type KeyRefusal = (request: FastifyRequest, reply: FastifyReply, given: boolean) => FastifyReply;

/** The 401 as problem+json, naming the `Authorization` header. */
export const problemRefusal: KeyRefusal = (request, reply, given) => {
  const instance = requestPath(request.url);
  const body = problem(
    401,
    given ? 'the API key is not valid' : 'this route needs an API key',
    [
      {
        field: 'Authorization',
        expected: 'Authorization: Bearer <key> or X-API-Key: <key>',
        message: given ? 'invalid key' : 'missing key',
      },
    ],
    instance,
  );
  return reply.code(401).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
};

/**
 * Makes every route registered in `scope` (after this call, in it or its children) require `apiKey`.
 * Call it inside an encapsulated plugin (`app.register(async (scope) => { requireApiKey(scope, key); … })`)
 * so the hook stays in that scope. No-op when `apiKey` is undefined (no `API_KEY`: everything is open).
 *
 * Every route of the scope is marked `config.auth = true` (through `onRoute`), so tests and the route
 * index can list the protected routes from the app itself.
 *
 * @param refuse - the 401's body, in the scope's error format (problem+json by default)
 */
export function requireApiKey(
  scope: FastifyInstance,
  apiKey: string | undefined,
  refuse: KeyRefusal = problemRefusal,
): void {
  scope.addHook('onRoute', (route) => {
    route.config = { ...(route.config as object | undefined), auth: apiKey !== undefined };
  });
  if (apiKey === undefined) return;
  scope.addHook('onRequest', async (request, reply) => {
    const presented = presentedKey(request.headers);
    if (keyMatches(presented, apiKey)) return;
    reply.header('WWW-Authenticate', 'Bearer');
    return refuse(request, reply, presented !== undefined);
  });
}

/**
 * What the /v1 route tests share: a sample feature map and boxes, the problem+json content type, the
 * "strict" app's configuration (API key, tiny limits), a `POST /v1/roi` shorthand and multipart forms
 * as inject payloads.
 */
import type { FastifyInstance } from 'fastify';
import type { Config } from '../../src/config.js';
import { randomMap, testConfig } from './fixtures.js';

export const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

/** The strict app's `API_KEY`. */
export const STRICT_API_KEY = 'test-key-0123456789';

/** An app with an API key, no queue, and limits small enough to reach: 3 boxes, 1000 output values, 4 kB bodies, 5000-pixel images, 32-pixel sides. */
export function strictConfig(): Config {
  return testConfig({
    apiKey: STRICT_API_KEY,
    queueLimit: 0,
    maxBoxes: 3,
    maxOutputValues: 1000,
    bodyLimitBytes: 4096,
    maxImagePixels: 5000,
    maxImageSide: 32,
  });
}

/** A `[2, 3, 10, 12]` NCHW map and three boxes on it (one zero-width), for the route tests. */
export const sampleMap = randomMap([2, 3, 10, 12], 7);
export const sampleBoxes = [
  [0, 1.5, 2.25, 13.75, 15],
  [1, 0, 0, 20, 18],
  [0, 4, 4, 4, 9],
];

/** `roi(payload, target?, headers?)`: `POST /v1/roi` through `inject`, to `server.app` unless told. */
export function roiPoster(server: { readonly app: FastifyInstance }) {
  return (payload: Record<string, unknown>, target?: FastifyInstance, headers: Record<string, string> = {}) =>
    (target ?? server.app).inject({ method: 'POST', url: '/v1/roi', headers, payload });
}

/** A multipart form as an inject payload: its bytes and its content type (with the boundary). */
export async function formPayload(
  form: FormData,
): Promise<{ payload: Buffer; headers: Record<string, string> }> {
  const encoded = new Response(form);
  return {
    payload: Buffer.from(await encoded.arrayBuffer()),
    headers: { 'content-type': encoded.headers.get('content-type') as string },
  };
}

/** `POST url` of `app` with a multipart form. */
export async function postForm(app: FastifyInstance, url: string, form: FormData) {
  return app.inject({ method: 'POST', url, ...(await formPayload(form)) });
}

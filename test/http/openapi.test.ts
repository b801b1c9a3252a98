/** The OpenAPI document and /docs through `inject` (the typed client and the served spec in use: test/openapi.test.ts). */
import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { useApp } from '../support/app.js';

const server = useApp();

describe('OpenAPI', () => {
  it('GET /openapi.json is a valid OpenAPI 3 document covering every route', async () => {
    const r = await server.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(r.statusCode).toBe(200);
    const doc = r.json();
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toMatch(/^3\./);
    for (const path of [
      '/v1/roi',
      '/v1/diff',
      '/v1/features',
      '/v1/backbone',
      '/healthz',
      '/readyz',
      '/metrics',
    ]) {
      expect(Object.keys(doc.paths)).toContain(path);
    }
    const body = doc.paths['/v1/roi'].post.requestBody.content;
    expect(Object.keys(body).sort()).toEqual(['application/json', 'multipart/form-data']);
    const jsonBody = doc.components.schemas[body['application/json'].schema.$ref.split('/').pop()];
    expect(jsonBody.properties.samplingRatio.default).toBe(2);
    expect(Object.keys(doc.paths['/v1/roi'].post.responses).sort()).toEqual([
      '200',
      '400',
      '401',
      '413',
      '415',
      '503',
      '504',
    ]);
  });

  it('GET /docs serves the interactive documentation', async () => {
    const r = await server.app.inject({ method: 'GET', url: '/docs/' });
    expect(r.statusCode).toBe(200);
    expect(r.body).toContain('swagger');
  });
});

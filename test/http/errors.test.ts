/**
 * Errors with the fix in them (issue 10) and the JSON body errors (issue 11 item 13): the wrong method,
 * malformed JSON, prototype keys, and the common mistakes in a body's fields.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/server.js';
import { testConfig } from '../support/fixtures.js';

const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

let app: FastifyInstance;

beforeAll(async () => {
  app = await buildApp(testConfig());
});

afterAll(async () => {
  await app?.close();
});

describe('405 with Allow', () => {
  it('a path that exists with other methods answers 405, Allow and a problem naming them', async () => {
    const r = await app.inject({ method: 'GET', url: '/v1/roi?x=1' });
    expect(r.statusCode).toBe(405);
    expect(r.headers.allow).toBe('POST');
    expect(r.headers['content-type']).toBe(PROBLEM_TYPE);
    expect(r.json()).toEqual({
      type: 'urn:roiserve:problem:method-not-allowed',
      title: 'Method not allowed',
      status: 405,
      detail: 'GET is not allowed on /v1/roi; it accepts POST',
      instance: '/v1/roi',
      errors: [
        { field: 'method', expected: 'POST', message: 'GET is not allowed on /v1/roi; it accepts POST' },
      ],
    });
  });

  it.each([
    ['DELETE', '/v1/backbone', 'GET, HEAD'],
    ['POST', '/healthz', 'GET, HEAD'],
    ['PUT', '/v1/diff', 'POST'],
    ['OPTIONS', '/v1/features', 'POST'],
    ['GET', '/%76%31/roi', 'POST'],
  ])('%s %s → 405, Allow: %s', async (method, url, allow) => {
    const r = await app.inject({ method: method as 'GET', url });
    expect(r.statusCode).toBe(405);
    expect(r.headers.allow).toBe(allow);
  });

  it('a path with no route at all stays a 404', async () => {
    for (const url of ['/v1/nothing', '/V1/roi', '/v1/roi/']) {
      const r = await app.inject({ method: 'GET', url });
      expect(r.statusCode, url).toBe(404);
      expect(r.headers.allow, url).toBeUndefined();
    }
  });
});

function postJson(payload: string, url = '/v1/roi') {
  return app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload });
}

/** A multipart body of plain text fields (no files). */
async function postForm(fields: Record<string, string>, url = '/v1/roi') {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  const request = new Request('http://localhost/', { method: 'POST', body: form });
  return app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': request.headers.get('content-type') ?? '' },
    payload: Buffer.from(await request.arrayBuffer()),
  });
}

describe('JSON bodies: where the syntax breaks, and prototype keys', () => {
  it('malformed JSON: problem+json with errors[body] giving line, column and offset', async () => {
    const r = await postJson('{\n  "boxes": [[0, 0, 10, 10]],\n  "ops": [align]\n}');
    expect(r.statusCode).toBe(400);
    expect(r.headers['content-type']).toBe(PROBLEM_TYPE);
    const message =
      'the body is not valid JSON: at line 3, column 11 (offset 41), expected a value (object, array, string, number, true, false or null) or \']\', found "a"';
    expect(r.json()).toEqual({
      type: 'urn:roiserve:problem:invalid-input',
      title: 'Invalid input',
      status: 400,
      detail: message,
      instance: '/v1/roi',
      errors: [
        {
          field: 'body',
          expected:
            "valid JSON: a value (object, array, string, number, true, false or null) or ']' at line 3, column 11",
          message,
        },
      ],
    });
  });

  it('a truncated body and an empty one', async () => {
    const cut = await postJson('{"boxes": [');
    expect(cut.json().errors[0]).toMatchObject({ field: 'body' });
    expect(cut.json().detail).toMatch(/at line 1, column 12 \(offset 11\).*found the end of the body/);
    const empty = await postJson('');
    expect(empty.statusCode).toBe(400);
    expect(empty.json().errors[0]).toEqual({
      field: 'body',
      expected: 'a JSON object',
      message: 'the body is empty, but Content-Type says application/json',
    });
  });

  it.each([
    ['{"boxes": [], "__proto__": {"admin": true}}', '__proto__', '__proto__'],
    [
      '{"boxes": [], "features": {"constructor": {"prototype": {}}}}',
      'features.constructor.prototype',
      'constructor.prototype',
    ],
  ])('%s: the key is named, the JSON is not called invalid', async (payload, field, key) => {
    const r = await postJson(payload);
    expect(r.statusCode).toBe(400);
    const body = r.json();
    expect(body.detail).toBe(`the key ${key} is not allowed (at ${field}); the JSON itself is valid`);
    expect(body.errors).toEqual([
      { field, expected: 'field names other than __proto__ and constructor.prototype', message: body.detail },
    ]);
  });
});

describe('errors with the fix in them', () => {
  it('a flat box list: one entry saying how to wrap it', async () => {
    const r = await postJson(JSON.stringify({ image: 'AAAA', boxes: [0, 0, 10, 10] }));
    expect(r.statusCode).toBe(400);
    expect(r.json().detail).toBe(
      'boxes: boxes is a flat list of numbers; wrap each box in its own list: [[0, 0, 10, 10]]',
    );
    expect(r.json().errors).toEqual([
      {
        field: 'boxes',
        expected: 'a list of boxes, each a list: [[x1, y1, x2, y2], …] (or [b, x1, y1, x2, y2] rows)',
        message: 'boxes is a flat list of numbers; wrap each box in its own list: [[0, 0, 10, 10]]',
      },
    ]);
    const two = await postJson(JSON.stringify({ image: 'AAAA', boxes: [0, 0, 10, 10, 5, 5, 20, 20] }));
    expect(two.json().errors[0].message).toMatch(/\[\[0, 0, 10, 10\], \[5, 5, 20, 20\]\]$/);
  });

  it('a missing required field says "required"', async () => {
    const r = await postJson(JSON.stringify({ image: 'AAAA' }));
    expect(r.json().detail).toBe('boxes: required');
    expect(r.json().errors).toEqual([{ field: 'boxes', expected: 'array (required)', message: 'required' }]);
    const nested = await postJson(JSON.stringify({ boxes: [], spatialScale: 1, features: { data: 'AAAA' } }));
    expect(nested.json().errors).toContainEqual({
      field: 'features.shape',
      expected: 'tuple (required)',
      message: 'required',
    });
  });

  it.each([
    ['output_size', 'outputSize'],
    ['sampling_ratio', 'samplingRatio'],
    ['spatial_scale', 'spatialScale'],
    ['box_format', 'boxFormat'],
    ['image_size', 'imageSize'],
    ['OutputSize', 'outputSize'],
    ['samplingRatoi', 'samplingRatio'],
  ])('unknown field %s: did you mean %s?', async (given, meant) => {
    const r = await postJson(JSON.stringify({ image: 'AAAA', boxes: [], [given]: 2 }));
    expect(r.statusCode).toBe(400);
    expect(r.json().errors).toEqual([
      {
        field: given,
        expected: `${meant} (field names are camelCase)`,
        message: `unknown field ${given}: did you mean ${meant}?`,
      },
    ]);
  });

  it('snake_case inside features and on /v1/diff; a field like nothing stays plain "unknown field"', async () => {
    const nested = await postJson(
      JSON.stringify({
        boxes: [],
        spatialScale: 1,
        features: { shape: [1, 1, 1, 1], data: 'AAAAAA==', LAYOUT: 'NHWC' },
      }),
    );
    expect(nested.json().errors[0]).toMatchObject({
      field: 'features.LAYOUT',
      message: 'unknown field features.LAYOUT: did you mean layout?',
    });
    const diff = await postJson(JSON.stringify({ image: 'AAAA', boxes: [], max_boxes: 2 }), '/v1/diff');
    expect(diff.json().errors[0].message).toBe('unknown field max_boxes: did you mean maxBoxes?');
    const plain = await postJson(JSON.stringify({ image: 'AAAA', boxes: [], colour: 'red' }));
    expect(plain.json().errors[0]).toEqual({
      field: 'colour',
      expected: 'no such field (see the API documentation for the accepted fields)',
      message: 'unknown field colour',
    });
  });

  it('a single op where a list is expected (JSON)', async () => {
    const r = await postJson(JSON.stringify({ image: 'AAAA', boxes: [], ops: 'align' }));
    expect(r.json().errors).toEqual([
      { field: 'ops', expected: 'a list, e.g. ["align"]', message: 'ops must be a list: write ["align"]' },
    ]);
  });

  it('multipart array fields not written as JSON text: say how to write them', async () => {
    const r = await postForm({ image: 'AAAA', boxes: '0,0,10,10', ops: 'align', outputSize: '7,7' });
    expect(r.statusCode).toBe(400);
    expect(r.json().errors).toEqual([
      {
        field: 'boxes',
        expected: 'JSON text, e.g. boxes=[[0,0,10,10]]',
        message:
          'boxes=0,0,10,10 is not JSON text; in multipart, write array and object fields as JSON, e.g. boxes=[[0,0,10,10]]',
      },
      {
        field: 'ops',
        expected: 'JSON text, e.g. ops=["align"]',
        message:
          'ops=align is not JSON text; in multipart, write array and object fields as JSON, e.g. ops=["align"]',
      },
      {
        field: 'outputSize',
        expected: 'JSON text, e.g. outputSize=[7,7]',
        message:
          'outputSize=7,7 is not JSON text; in multipart, write array and object fields as JSON, e.g. outputSize=[7,7]',
      },
    ]);
    // Written as JSON text, the same fields are accepted (the request then fails on the image bytes).
    const ok = await postForm({
      image: 'AAAA',
      boxes: '[[0,0,10,10]]',
      ops: '["align"]',
      outputSize: '[7,7]',
    });
    expect(ok.json().errors?.map((e: { field: string }) => e.field)).not.toContain('boxes');
  });
});

describe('no route, no parsing', () => {
  it('a malformed or empty JSON body to a path without that method is still 404 / 405, not 400', async () => {
    const cases = [
      ['POST', '/nothing', '{bad', 404],
      ['PUT', '/v1/roi', '{bad', 405],
      ['DELETE', '/v1/roi', '', 405],
    ] as const;
    for (const [method, url, payload, status] of cases) {
      const r = await app.inject({ method, url, headers: { 'content-type': 'application/json' }, payload });
      expect(r.statusCode, `${method} ${url}`).toBe(status);
    }
  });
});

/**
 * `POST /v1/roi`'s refusals through `inject`: 400s naming the field and what was expected, 415 for an
 * image format it does not read, 413 for MAX_BOXES, MAX_OUTPUT_VALUES and `array` over 1 M values.
 */
import { describe, expect, it } from 'vitest';
import { encodeFloat32Base64 } from '../../../src/tensors/base64.js';
import { useApp } from '../../support/app.js';
import { featuresField, randomMap, testPng } from '../../support/fixtures.js';
import {
  PROBLEM_TYPE,
  STRICT_API_KEY as API_KEY,
  roiPoster,
  sampleBoxes as boxes,
  sampleMap as fm,
  strictConfig,
} from '../../support/v1.js';

const server = useApp();
const strictServer = useApp(strictConfig());
const roi = roiPoster(server);

describe('errors: 400 with the field and what was expected', () => {
  const base = () => ({ features: featuresField(fm), spatialScale: 0.5, boxes });

  it('neither image nor features', async () => {
    const r = await roi({ boxes });
    expect(r.statusCode).toBe(400);
    expect(r.headers['content-type']).toBe(PROBLEM_TYPE);
    // No work ran: only the request's own total and its parsing (stages that did not run are left out).
    expect(r.headers['server-timing']).toMatch(/^total;dur=[\d.]+, parse;dur=[\d.]+$/);
    expect(r.json()).toEqual({
      type: 'urn:roiserve:problem:invalid-input',
      title: 'Invalid input',
      status: 400,
      detail: 'missing input: give image or features',
      instance: '/v1/roi',
      errors: [
        {
          field: 'image',
          expected: 'exactly one of `image` (an encoded image) or `features` (a feature map)',
          message: 'missing input: give image or features',
        },
      ],
    });
  });

  it('schema violations name every offending field (path, expected, message)', async () => {
    const r = await roi({ ...base(), boxes: [[0, 0, 'a', 1]], ops: ['crop'], outputSize: 0, colour: 'red' });
    expect(r.statusCode).toBe(400);
    expect(r.json()).toEqual({
      type: 'urn:roiserve:problem:invalid-input',
      title: 'Invalid input',
      status: 400,
      detail: 'boxes[0][2]: Invalid input: expected number, received string (and 3 more)',
      instance: '/v1/roi',
      errors: [
        {
          field: 'boxes[0][2]',
          expected: 'number',
          message: 'Invalid input: expected number, received string',
        },
        {
          field: 'ops[0]',
          expected: 'one of "pool", "align", "warp", "ps_align", "ps_pool", "rotated_align"',
          message:
            'Invalid option: expected one of "pool"|"align"|"warp"|"ps_align"|"ps_pool"|"rotated_align"',
        },
        {
          field: 'outputSize',
          expected: 'a number > 0',
          message: 'Too small: expected number to be >0',
        },
        {
          field: 'colour',
          expected: 'no such field (see the API documentation for the accepted fields)',
          message: 'unknown field colour',
        },
      ],
    });
  });

  const cases: Array<[string, Record<string, unknown>, number, string, RegExp]> = [
    ['both inputs', { image: 'AAAA' }, 400, 'features', /not both/],
    [
      'features without spatialScale',
      { spatialScale: undefined },
      400,
      'spatialScale',
      /required with features/,
    ],
    ['a bad box (x2 < x1)', { boxes: [[5, 0, 1, 1]] }, 400, 'boxes[0][2]', /x2/],
    ['a batch index out of range', { boxes: [[2, 0, 0, 1, 1]] }, 400, 'boxes[0][0]', /N = 2/],
    // Checked before the map is decoded: said without an N (it said "N = 9007199254740991").
    [
      'a fractional batch index',
      { boxes: [[0.5, 0, 0, 1, 1]] },
      400,
      'boxes[0][0]',
      /0\.5, not a batch index/,
    ],
    ['a negative batch index', { boxes: [[-1, 0, 0, 1, 1]] }, 400, 'boxes[0][0]', /-1, not a batch index/],
    [
      'a fractional batch index of a rotated box',
      { boxes: [[0.5, 2, 2, 2, 2, 90]], boxFormat: 'cxcywha', ops: ['rotated_align'] },
      400,
      'boxes[0][0]',
      /0\.5, not a batch index/,
    ],
    ['a box row of 3 numbers', { boxes: [[1, 2, 3]] }, 400, 'boxes[0]', /.+/],
    ['outputSize over 64', { outputSize: 65 }, 400, 'outputSize', /exceeds the limit 64/],
    ['outputSize pair over 64', { outputSize: [2, 100] }, 400, 'outputSize[1]', /exceeds the limit 64/],
    ['samplingRatio over 64', { samplingRatio: 65 }, 400, 'samplingRatio', /exceeds the limit 64/],
    ['npy with three ops', { format: 'npy' }, 400, 'ops', /one tensor/],
    [
      'features data of the wrong length',
      { features: { shape: [1, 1, 2, 2], data: 'AAAAAA==' } },
      400,
      'features.data',
      /needs 4/,
    ],
    [
      'features data that is not base64',
      { features: { shape: [1, 1, 1, 1], data: '@@@@' } },
      400,
      'features.data',
      /base64/,
    ],
    [
      'NaN in the feature map',
      { features: { shape: [1, 1, 1, 2], data: encodeFloat32Base64(Float32Array.from([1, NaN])) } },
      400,
      'features.data[1]',
      /NaN/,
    ],
    [
      'an unknown layout',
      { features: { shape: [1, 1, 1, 1], layout: 'CHW', data: 'AAAAAA==' } },
      400,
      'features.layout',
      /.+/,
    ],
    ['a negative spatialScale', { spatialScale: -1 }, 400, 'spatialScale', /.+/],
    ['imageSize of one number', { imageSize: [5] }, 400, 'imageSize', /.+/],
    [
      'an image that is not base64',
      { features: undefined, spatialScale: undefined, image: '###', boxes: [] },
      400,
      'image',
      /base64/,
    ],
  ];
  it.each(cases)('%s', async (_name, patch, status, field, message) => {
    const r = await roi({ ...base(), ...patch });
    expect(r.statusCode).toBe(status);
    expect(r.headers['content-type']).toBe(PROBLEM_TYPE);
    const problem = r.json();
    expect(problem).toMatchObject({ status, instance: '/v1/roi' });
    expect(problem.errors.map((e: { field: string }) => e.field)).toContain(field);
    const entry = problem.errors.find((e: { field: string }) => e.field === field);
    expect(entry.message).toMatch(message);
    expect(entry.expected.length).toBeGreaterThan(0);
  });

  it('a finite box × a large spatialScale that overflows float32 names the coordinate and spatialScale', async () => {
    // Was "boxes[0][3] is Infinity": the box is finite, its product with spatialScale is not.
    const r = await roi({ features: featuresField(fm), spatialScale: 1e36, boxes: [[0, 0, 1000, 10]] });
    expect(r.statusCode).toBe(400);
    const [e] = r.json().errors;
    expect(e.field).toBe('boxes[0]');
    expect(e.message).toMatch(/^boxes\[0\]: x2 × spatialScale = 1000 × 1e\+36 = 1e\+39 overflows float32/);
    expect(e.message).toContain('3.402823e+38');
    expect(e.message).not.toContain('Infinity');
  });

  it('spatialScale or imageSize with an image', async () => {
    const r = await roi({ image: (await testPng(16, 16)).toString('base64'), boxes: [], spatialScale: 0.5 });
    expect(r.statusCode).toBe(400);
    expect(r.json().errors[0]).toEqual({
      field: 'spatialScale',
      expected: 'no spatialScale with `image` (only with `features`)',
      message: 'spatialScale is set by the backbone (1/stride) when the input is an image',
    });
  });

  it('malformed JSON and an empty body', async () => {
    const bad = await server.app.inject({
      method: 'POST',
      url: '/v1/roi',
      headers: { 'content-type': 'application/json' },
      payload: '{"boxes": [',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ type: 'urn:roiserve:problem:invalid-input', status: 400 });
    const empty = await server.app.inject({
      method: 'POST',
      url: '/v1/roi',
      headers: { 'content-type': 'application/json' },
    });
    expect(empty.statusCode).toBe(400);
  });
});

describe('errors: 415 for an image', () => {
  it('415 for bytes that are not a supported image, naming the field', async () => {
    const bmp = Buffer.concat([Buffer.from('BM'), Buffer.alloc(64)]);
    const r = await roi({ image: bmp.toString('base64'), boxes: [] });
    expect(r.statusCode).toBe(415);
    expect(r.json()).toMatchObject({ status: 415, errors: [{ field: 'image' }] });
    expect(r.json().detail).toContain('bmp');
  });
});

describe('errors: 413 for work over the limits', () => {
  it('413 for more boxes than MAX_BOXES', async () => {
    const small = randomMap([1, 1, 2, 2]);
    const r = await roi(
      {
        features: featuresField(small),
        spatialScale: 1,
        boxes: [
          [0, 0, 1, 1],
          [0, 0, 1, 1],
          [0, 0, 1, 1],
          [0, 0, 1, 1],
        ],
      },
      strictServer.app,
      { authorization: `Bearer ${API_KEY}` },
    );
    expect(r.statusCode).toBe(413);
    expect(r.json()).toEqual({
      type: 'urn:roiserve:problem:too-large',
      title: 'Too large',
      status: 413,
      detail: '4 boxes exceed the limit of 3 per request',
      instance: '/v1/roi',
      errors: [
        { field: 'boxes', expected: 'at most 3 boxes', message: '4 boxes exceed the limit of 3 per request' },
      ],
    });
  });

  it('413 for outputs over MAX_OUTPUT_VALUES', async () => {
    const small = randomMap([1, 2, 2, 2]);
    const r = await roi(
      { features: featuresField(small), spatialScale: 1, boxes: [[0, 0, 1, 1]], outputSize: 16 },
      strictServer.app,
      { 'x-api-key': API_KEY },
    );
    expect(r.statusCode).toBe(413);
    expect(r.json().errors[0].field).toBe('boxes');
    expect(r.json().detail).toContain('over the limit of 1000');
  });

  it('413 for encoding "array" over 1 M values', async () => {
    const one = randomMap([1, 1, 4, 4]);
    const many = Array.from({ length: 250 }, () => [0, 0, 3, 3]);
    const r = await roi({
      features: featuresField(one),
      spatialScale: 1,
      boxes: many,
      ops: ['pool'],
      outputSize: 64,
      encoding: 'array',
    });
    expect(r.statusCode).toBe(413);
    expect(r.json().errors[0]).toMatchObject({
      field: 'encoding',
      expected: '"base64", or at most 1000000 values with "array"',
    });
  });
});

/**
 * Request semantics of `/v1/roi` and `/v1/diff` through `inject`: feature-map layouts (the shape as
 * stored), warnings, box conventions (`yxyx`, `normalized`) and the per-request `maxSide`.
 */
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toLayout } from '../../../src/ops/index.js';
import { limitsFrom } from '../../../src/core/task.js';
import { prepareRoi } from '../../../src/core/prepare.js';
import { roiBodySchema, roiInputOf } from '../../../routes/v1/schemas/request.js';
import { buildApp } from '../../../src/server.js';
import { writeNpy } from '../../../src/tensors/npy.js';
import { readSafetensors } from '../../../src/tensors/safetensors.js';
import { featuresField, randomMap, tensorData, testConfig, testPng } from '../../support/fixtures.js';
import { formPayload, postForm } from '../../support/v1.js';

let app: FastifyInstance;

beforeAll(async () => {
  app = await buildApp(testConfig());
});

afterAll(async () => {
  await app?.close();
});

function roi(payload: Record<string, unknown>) {
  return app.inject({ method: 'POST', url: '/v1/roi', payload });
}

/** A multipart body built by the platform's `FormData` (what `fetch` would send). */
async function multipart(
  fields: Record<string, string | [Uint8Array, string]>,
): Promise<{ payload: Buffer; headers: Record<string, string> }> {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    if (typeof value === 'string') form.append(name, value);
    else form.append(name, new Blob([value[0] as Uint8Array<ArrayBuffer>]), value[1]);
  }
  return formPayload(form);
}

async function roiMultipart(fields: Record<string, string | [Uint8Array, string]>) {
  return app.inject({ method: 'POST', url: '/v1/roi', ...(await multipart(fields)) });
}

/** A map whose N, C, H and W all differ, so that any mix-up of axes changes the result. */
const nchw = randomMap([2, 3, 5, 7], 11);
const nhwc = toLayout(nchw, 'NHWC');
const boxes = [
  [0, 1, 0.5, 9.5, 8],
  [1, 3, 2, 13, 10],
];
const common = { spatialScale: 0.5, boxes, outputSize: [2, 3] };

describe('features layout: shape is the array shape as stored', () => {
  it('JSON: NHWC data with its own shape [N, H, W, C] gives the NCHW results of the transposed data', async () => {
    const nhwcField = featuresField(nhwc);
    expect(nhwcField.shape).toEqual([2, 5, 7, 3]);
    const [a, b] = await Promise.all([
      roi({ features: featuresField(nchw), ...common }),
      roi({ features: nhwcField, ...common }),
    ]);
    expect([a.statusCode, b.statusCode]).toEqual([200, 200]);
    const [ja, jb] = [a.json(), b.json()];
    // The echoed featureMap.shape is the logical [N, C, H, W] either way.
    expect(jb.featureMap.shape).toEqual([2, 3, 5, 7]);
    expect(ja.featureMap.shape).toEqual([2, 3, 5, 7]);
    for (const op of ['pool', 'align', 'warp']) {
      expect(jb.outputs[op].shape).toEqual([2, 3, 2, 3]);
      expect(tensorData(jb.outputs[op])).toEqual(tensorData(ja.outputs[op]));
    }
  });

  it('JSON: an NHWC shape whose element count does not match the data is refused', async () => {
    const field = { ...featuresField(nhwc), shape: [2, 5, 7, 4] };
    const r = await roi({ features: field, ...common });
    expect(r.statusCode).toBe(400);
    expect(r.json().errors[0].field).toBe('features.data');
  });

  it('multipart: a .npy part with a layout=NHWC field gives the NCHW results of the transposed data', async () => {
    const text = { spatialScale: '0.5', boxes: JSON.stringify(boxes), outputSize: '[2, 3]' };
    const [a, b, c] = await Promise.all([
      roiMultipart({ features: [writeNpy(nchw.data, [2, 3, 5, 7]), 'a.npy'], ...text }),
      roiMultipart({ features: [writeNpy(nhwc.data, [2, 5, 7, 3]), 'b.npy'], layout: 'NHWC', ...text }),
      // The field may come before the part, and NCHW may be said explicitly.
      roiMultipart({ layout: 'NCHW', features: [writeNpy(nchw.data, [2, 3, 5, 7]), 'a.npy'], ...text }),
    ]);
    expect([a.statusCode, b.statusCode, c.statusCode]).toEqual([200, 200, 200]);
    expect(b.json().featureMap.shape).toEqual([2, 3, 5, 7]);
    for (const op of ['pool', 'align', 'warp']) {
      expect(tensorData(b.json().outputs[op])).toEqual(tensorData(a.json().outputs[op]));
      expect(tensorData(c.json().outputs[op])).toEqual(tensorData(a.json().outputs[op]));
    }
  });

  it('multipart: layout without a features part, or given twice, is a 400 naming `layout`', async () => {
    const noFeatures = await roiMultipart({ layout: 'NHWC', boxes: '[[0,0,1,1]]' });
    expect(noFeatures.statusCode).toBe(400);
    expect(noFeatures.json().errors[0].field).toBe('layout');
    const twice = await roiMultipart({
      features: JSON.stringify(featuresField(nhwc)),
      layout: 'NHWC',
      ...{ spatialScale: '0.5', boxes: JSON.stringify(boxes) },
    });
    expect(twice.statusCode).toBe(400);
    expect(twice.json().errors[0].field).toBe('layout');
    const bad = await roiMultipart({
      features: [writeNpy(nhwc.data, [2, 5, 7, 3]), 'b.npy'],
      layout: 'HWC',
      spatialScale: '0.5',
      boxes: JSON.stringify(boxes),
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors[0].field).toBe('features.layout');
  });
});

describe('field-ignored: a field that changes nothing in the request', () => {
  const map = featuresField(randomMap([1, 1, 4, 4], 3));
  const body = { features: map, spatialScale: 1, boxes: [[0, 0, 2, 2]], ops: ['align'] };

  it('levelMapping with one map, clockwise with upright boxes: served, each named in a warning', async () => {
    const r = await roi({ ...body, levelMapping: { canonicalLevel: 2 }, clockwise: true });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json().warnings).toEqual([
      { code: 'field-ignored', field: 'levelMapping', message: expect.stringContaining('one map') },
      { code: 'field-ignored', field: 'clockwise', message: expect.stringContaining('no angle') },
    ]);
    // The same outputs as without them.
    const plain = await roi(body);
    expect(tensorData(r.json().outputs.align)).toEqual(tensorData(plain.json().outputs.align));
  });

  it('not said where they apply: levelMapping with a list of maps, clockwise with rotated boxes', async () => {
    const levels = await roi({
      features: [featuresField(randomMap([1, 1, 8, 8], 4)), map],
      spatialScale: [1, 0.5],
      levelMapping: { canonicalLevel: 2 },
      boxes: [[0, 0, 2, 2]],
      ops: ['align'],
    });
    expect(levels.statusCode, levels.body).toBe(200);
    expect(levels.json().warnings).toEqual([]);
    const rotated = await roi({
      ...body,
      boxFormat: 'cxcywha',
      clockwise: true,
      boxes: [[2, 2, 2, 2, 30]],
      ops: ['rotated_align'],
    });
    expect(rotated.statusCode, rotated.body).toBe(200);
    expect(rotated.json().warnings).toEqual([]);
  });
});

describe('multipart: repeated images parts', () => {
  /** A multipart body of repeated fields, in order. */
  async function roiParts(parts: Array<[string, string | Uint8Array]>) {
    const form = new FormData();
    for (const [name, value] of parts) {
      if (typeof value === 'string') form.append(name, value);
      else form.append(name, new Blob([value as Uint8Array<ArrayBuffer>]), `${name}.bin`);
    }
    return postForm(app, '/v1/roi', form);
  }

  it('an images file part after an images text field is refused naming images (it replaced the text images)', async () => {
    const png = new Uint8Array(await testPng(16, 16));
    const r = await roiParts([
      ['images', JSON.stringify([Buffer.from(png).toString('base64')])],
      ['images', png],
      ['boxes', '[[0, 0, 0, 8, 8]]'],
    ]);
    expect(r.statusCode, r.body).toBe(400);
    expect(r.json().errors[0].field).toBe('images');
  });

  it('a 9th file part is a 413 naming the field and the limit (was "reach files limit", no field)', async () => {
    const png = new Uint8Array(await testPng(8, 8));
    const images = await roiParts([
      ...Array.from({ length: 9 }, () => ['images', png] as [string, Uint8Array]),
    ]);
    expect(images.statusCode).toBe(413);
    expect(images.json().errors[0]).toMatchObject({
      field: 'images',
      expected: expect.stringContaining('8'),
    });
    const levels = await roiParts(
      Array.from({ length: 9 }, () => ['features', writeNpy(new Float32Array(4), [1, 1, 2, 2])]),
    );
    expect(levels.statusCode).toBe(413);
    expect(levels.json().errors[0].field).toBe('features');
  });
});

describe('multipart: a layout field with a list of features', () => {
  const levels = [
    toLayout(randomMap([1, 2, 4, 6], 31), 'NHWC'),
    toLayout(randomMap([1, 2, 2, 3], 32), 'NHWC'),
  ];
  const common = { spatialScale: [1, 0.5], boxes: [[0, 0, 0, 3, 2]], ops: ['align'], encoding: 'array' };

  it('is refused when an entry has its own layout too (it was silently overwritten)', async () => {
    const form = new FormData();
    form.append('features', JSON.stringify(levels.map((m) => ({ ...featuresField(m), layout: 'NHWC' }))));
    form.append('layout', 'NCHW');
    form.append('spatialScale', '[1, 0.5]');
    form.append('boxes', '[[0, 0, 0, 3, 2]]');
    const r = await postForm(app, '/v1/roi', form);
    expect(r.statusCode, r.body).toBe(400);
    expect(r.json().errors[0]).toMatchObject({ field: 'layout', message: expect.stringContaining('twice') });
  });

  it('applies to every .npy level: the same answer as JSON levels that each say NHWC', async () => {
    const form = new FormData();
    for (const [i, m] of levels.entries())
      form.append(
        'features',
        new Blob([
          writeNpy(m.data, [m.shape[0], m.shape[2], m.shape[3], m.shape[1]]) as Uint8Array<ArrayBuffer>,
        ]),
        `p${i}.npy`,
      );
    form.append('layout', 'NHWC');
    for (const [name, value] of Object.entries(common)) form.append(name, JSON.stringify(value));
    const parts = await postForm(app, '/v1/roi', form);
    expect(parts.statusCode, parts.body).toBe(200);
    const json = await roi({
      ...common,
      features: levels.map((m) => ({ ...featuresField(m), layout: 'NHWC' })),
    });
    expect(json.statusCode, json.body).toBe(200);
    expect(parts.json().outputs).toEqual(json.json().outputs);
  });
});

describe('layout-suspect: with imageSize, a shape that fits only in the other layout', () => {
  const map = toLayout(randomMap([1, 3, 8, 10], 4), 'NHWC'); // H 8, W 10: 40×32 pixels at 1/4
  const body = { spatialScale: 0.25, imageSize: [40, 32], boxes: [[0, 0, 8, 8]], ops: ['align'] };

  it('NHWC data labelled NCHW: served as sent, with a warning naming features.layout', async () => {
    const mislabelled = { ...featuresField(map), layout: 'NCHW' }; // shape [1, 8, 10, 3]
    const r = await roi({ ...body, features: mislabelled });
    expect(r.statusCode).toBe(200);
    expect(r.json().featureMap.shape).toEqual([1, 8, 10, 3]);
    expect(r.json().warnings).toEqual([
      {
        code: 'layout-suspect',
        field: 'features.layout',
        message: expect.stringContaining('Did you mean layout "NHWC"?'),
      },
    ]);
  });

  it('multipart: an NHWC .npy sent without layout gets the warning too (its shape is read in the worker)', async () => {
    const r = await roiMultipart({
      features: [writeNpy(map.data, [1, 8, 10, 3]), 'map.npy'],
      spatialScale: '0.25',
      imageSize: '[40, 32]',
      boxes: '[[0, 0, 8, 8]]',
      ops: '["align"]',
    });
    expect(r.statusCode).toBe(200);
    expect(r.json().warnings).toEqual([expect.objectContaining({ code: 'layout-suspect' })]);
    const right = await roiMultipart({
      features: [writeNpy(map.data, [1, 8, 10, 3]), 'map.npy'],
      layout: 'NHWC',
      spatialScale: '0.25',
      imageSize: '[40, 32]',
      boxes: '[[0, 0, 8, 8]]',
      ops: '["align"]',
    });
    expect(right.json().warnings).toEqual([]);
  });

  it('labelled right, or without imageSize: no warning', async () => {
    const right = await roi({ ...body, features: featuresField(map) });
    expect(right.json().warnings).toEqual([]);
    const { imageSize: _, ...noSize } = body;
    const unknown = await roi({ ...noSize, features: { ...featuresField(map), layout: 'NCHW' } });
    expect(unknown.json().warnings).toEqual([]);
  });
});

describe('warnings', () => {
  const small = randomMap([1, 2, 10, 12], 5); // spatialScale 0.5: covers 24×20 pixels
  const base = { features: featuresField(small), spatialScale: 0.5, outputSize: 2 };

  it('none: `warnings` is [] and there is no X-Roiserve-Warnings header', async () => {
    const r = await roi({ ...base, boxes: [[2, 2, 10, 12]] });
    expect(r.statusCode).toBe(200);
    expect(r.json().warnings).toEqual([]);
    expect(r.headers['x-roiserve-warnings']).toBeUndefined();
  });

  it('a box wholly outside the map: a box-outside warning naming it, in the body and the header', async () => {
    const r = await roi({
      ...base,
      boxes: [
        [2, 2, 10, 12],
        [30, 2, 40, 12],
        [-3, 0, -0.2, 6],
      ],
    });
    expect(r.statusCode).toBe(200);
    const { warnings } = r.json();
    expect(warnings).toEqual([
      {
        code: 'box-outside',
        field: 'boxes[1]',
        message:
          'boxes[1] (30, 2, 40, 12 as x1, y1, x2, y2) lies wholly outside the 24×20 area the 12×10 feature map ' +
          'covers at spatialScale 0.5; its outputs are zeros',
      },
      {
        code: 'box-outside',
        field: 'boxes[2]',
        message: expect.stringMatching(/^boxes\[2\] .* its outputs only repeat the edge cells/),
      },
    ]);
    const header = r.headers['x-roiserve-warnings'] as string;
    expect(header).toMatch(/^[\x20-\x7e]+$/); // ASCII: × is escaped as \u00d7
    expect(JSON.parse(header)).toEqual(warnings);
    expect(tensorData(r.json().outputs.align).subarray(8, 16)).toEqual(new Float32Array(8));
  });

  it('with imageSize the frame is the image; more than 10 outside boxes are summed up in one entry', async () => {
    const outside = Array.from({ length: 13 }, () => [100, 100, 120, 120]);
    const r = await roi({ ...base, imageSize: [64, 48], boxes: [[0, 0, 4, 4], ...outside] });
    const { warnings } = r.json();
    expect(warnings).toHaveLength(11);
    expect(warnings[0].message).toContain('lies wholly outside the 64×48 image (imageSize)');
    expect(warnings[10]).toEqual({
      code: 'box-outside',
      field: 'boxes',
      message: '3 more boxes lie wholly outside the 64×48 image (imageSize) (13 of 14 in all)',
    });
  });

  it('boxes that look normalized: did you mean normalized: true?', async () => {
    const r = await roi({
      ...base,
      boxes: [
        [0.1, 0.2, 0.5, 0.9],
        [0, 0, 1.5, 1],
      ],
    });
    expect(r.json().warnings).toEqual([
      {
        code: 'boxes-look-normalized',
        field: 'boxes',
        message: expect.stringContaining('did you mean normalized: true?'),
      },
    ]);
    // Not on a frame so small that such boxes are plausible pixels.
    const tiny = await roi({
      features: featuresField(randomMap([1, 1, 2, 2])),
      spatialScale: 1,
      boxes: [[0, 0, 1, 1]],
    });
    expect(tiny.json().warnings).toEqual([]);
  });

  it('.npy: in the header; safetensors: in the header and in __metadata__', async () => {
    const boxesOut = [[30, 2, 40, 12]];
    const npy = await roi({ ...base, boxes: boxesOut, ops: ['pool'], format: 'npy' });
    expect(npy.statusCode).toBe(200);
    expect(JSON.parse(npy.headers['x-roiserve-warnings'] as string)[0]).toMatchObject({
      code: 'box-outside',
      field: 'boxes[0]',
    });
    const st = await roi({ ...base, boxes: boxesOut, format: 'safetensors' });
    const fromHeader = JSON.parse(st.headers['x-roiserve-warnings'] as string);
    expect(JSON.parse(readSafetensors(st.rawPayload).metadata.warnings)).toEqual(fromHeader);
  });

  it('/v1/diff JSON carries them too', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/diff',
      payload: {
        ...base,
        boxes: [
          [2, 2, 10, 12],
          [30, 2, 40, 12],
        ],
        format: 'json',
        maxBoxes: 1,
      },
    });
    expect(r.statusCode).toBe(200);
    expect(r.json().warnings).toEqual([expect.objectContaining({ code: 'box-outside', field: 'boxes[1]' })]);
    expect(JSON.parse(r.headers['x-roiserve-warnings'] as string)).toEqual(r.json().warnings);
  });

  it('image input: the frame is the image as sent', async () => {
    await app.readiness.settled;
    const r = await app.inject({
      method: 'POST',
      url: '/v1/roi',
      payload: {
        image: (await testPng(96, 64)).toString('base64'),
        boxes: [[200, 0, 220, 10]],
        ops: ['align'],
      },
    });
    expect(r.statusCode).toBe(200);
    expect(r.json().warnings[0].message).toContain(
      'lies wholly outside the 96×64 image; its outputs are zeros',
    );
  });
});

describe('box conventions: boxFormat yxyx and normalized', () => {
  const map = randomMap([1, 2, 10, 12], 9); // spatialScale 0.5: covers 24×20 pixels
  const base = { features: featuresField(map), spatialScale: 0.5, outputSize: [2, 3] };
  const pixels = [
    [3, 2, 15, 11],
    [0, 0, 24, 20],
  ];

  async function expectSameOutputs(a: ReturnType<typeof roi>, b: ReturnType<typeof roi>) {
    const [ja, jb] = [(await a).json(), (await b).json()];
    for (const op of ['pool', 'align', 'warp']) {
      expect(tensorData(jb.outputs[op])).toEqual(tensorData(ja.outputs[op]));
    }
    expect(jb.boxes).toEqual(ja.boxes);
    expect(jb.coverage).toEqual(ja.coverage);
    return jb;
  }

  it('yxyx gives the xyxy results; boxes are echoed as canonical xyxy pixels', async () => {
    const yxyx = pixels.map(([x1, y1, x2, y2]) => [y1, x1, y2, x2]);
    const body = await expectSameOutputs(
      roi({ ...base, boxes: pixels }),
      roi({ ...base, boxes: yxyx, boxFormat: 'yxyx' }),
    );
    expect(body.boxes).toEqual([
      [0, 3, 2, 15, 11],
      [0, 0, 0, 24, 20],
    ]);
    expect(body.params).toMatchObject({ boxFormat: 'yxyx', normalized: false });
  });

  it('normalized with features: fractions of the area the map covers (W / spatialScale × H / spatialScale)', async () => {
    const fractions = pixels.map(([x1, y1, x2, y2]) => [x1 / 24, y1 / 20, x2 / 24, y2 / 20]);
    const body = await expectSameOutputs(
      roi({ ...base, boxes: pixels }),
      roi({ ...base, boxes: fractions, normalized: true }),
    );
    expect(body.params.normalized).toBe(true);
    expect(body.warnings).toEqual([]); // no "did you mean normalized" once it is said
  });

  it('normalized with features and imageSize: fractions of imageSize; combines with yxyx', async () => {
    const fractions = pixels.map(([x1, y1, x2, y2]) => [y1 / 40, x1 / 32, y2 / 40, x2 / 32]);
    await expectSameOutputs(
      roi({ ...base, imageSize: [32, 40], boxes: pixels }),
      roi({ ...base, imageSize: [32, 40], boxes: fractions, boxFormat: 'yxyx', normalized: true }),
    );
  });

  it('normalized with an image: fractions of the image as sent', async () => {
    await app.readiness.settled;
    const image = (await testPng(96, 64)).toString('base64');
    const px = [[12, 8, 60, 40]];
    const body = await expectSameOutputs(
      roi({ image, boxes: px, outputSize: 2 }),
      roi({ image, boxes: [[12 / 96, 8 / 64, 60 / 96, 40 / 64]], normalized: true, outputSize: 2 }),
    );
    expect(body.boxes).toEqual([[0, 12, 8, 60, 40]]);
  });

  it('normalized but the boxes look like pixels: a boxes-look-pixels warning', async () => {
    const r = await roi({
      ...base,
      boxes: [
        [0.1, 0.1, 0.5, 0.5],
        [3, 2, 15, 11],
      ],
      normalized: true,
    });
    expect(r.statusCode).toBe(200);
    expect(r.json().warnings).toContainEqual({
      code: 'boxes-look-pixels',
      field: 'boxes[1]',
      message: expect.stringContaining('did you mean normalized: false?'),
    });
  });
});

describe('maxSide', () => {
  it('shrinks the image so its longer side fits; boxes stay in the pixels sent; echoed in params', async () => {
    await app.readiness.settled;
    const image = (await testPng(96, 64)).toString('base64');
    const [full, half] = await Promise.all([
      roi({ image, boxes: [[12, 8, 60, 40]], ops: ['align'], outputSize: 2 }),
      roi({ image, boxes: [[12, 8, 60, 40]], ops: ['align'], outputSize: 2, maxSide: 48 }),
    ]);
    expect([full.statusCode, half.statusCode]).toEqual([200, 200]);
    expect(full.json().params.maxSide).toBeNull();
    expect(full.json().featureMap.shape).toEqual([1, 256, 4, 6]);
    const body = half.json();
    expect(body.params.maxSide).toBe(48);
    expect(body.image).toMatchObject({
      width: 48,
      height: 32,
      originalWidth: 96,
      originalHeight: 64,
      scale: 0.5,
    });
    expect(body.featureMap.shape).toEqual([1, 256, 2, 3]);
    expect(body.boxes).toEqual([[0, 12, 8, 60, 40]]);
    expect(body.coverage[0].box).toEqual({ x1: 6, y1: 4, x2: 30, y2: 20 });
    expect(body.warnings).toEqual([]);
  });

  it('makes the 413 for an image over the backbone limit true: the maxSide it suggests is served', async () => {
    await app.readiness.settled;
    const png = await sharp({ create: { width: 8200, height: 300, channels: 3, background: '#808080' } })
      .png()
      .toBuffer();
    const image = png.toString('base64');
    const refused = await roi({ image, boxes: [[0, 0, 100, 100]], ops: ['pool'], outputSize: 1 });
    expect(refused.statusCode).toBe(413);
    expect(refused.json().detail).toContain('send maxSide: 8192 (or less)');
    const served = await roi({
      image,
      boxes: [[0, 0, 100, 100]],
      ops: ['pool'],
      outputSize: 1,
      maxSide: 512,
    });
    expect(served.statusCode).toBe(200);
    expect(served.json().image).toMatchObject({ width: 512, height: 19, originalWidth: 8200 });
  });

  it('/v1/features and /v1/diff take it too', async () => {
    await app.readiness.settled;
    const image = (await testPng(96, 64)).toString('base64');
    const features = await app.inject({
      method: 'POST',
      url: '/v1/features',
      payload: { image, maxSide: 32 },
    });
    expect(features.statusCode).toBe(200);
    expect(features.json().image).toMatchObject({ width: 32, height: 21 });
    const diff = await app.inject({
      method: 'POST',
      url: '/v1/diff',
      payload: { image, boxes: [[12, 8, 60, 40]], maxSide: 48, format: 'json', maxBoxes: 0 },
    });
    expect(diff.statusCode).toBe(200);
    expect(diff.json().params.maxSide).toBe(48);
    expect(diff.json().image.width).toBe(48);
  });

  it('with features: 400 naming maxSide; not a positive integer: 400', async () => {
    const withFeatures = await roi({ features: featuresField(nchw), spatialScale: 0.5, boxes, maxSide: 10 });
    expect(withFeatures.statusCode).toBe(400);
    expect(withFeatures.json().errors[0].field).toBe('maxSide');
    const bad = await roi({ image: 'AAAA', boxes, maxSide: 0.5 });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors[0].field).toBe('maxSide');
  });

  it('is capped by MAX_IMAGE_SIDE: a larger value uses the cap, with a max-side-capped warning', () => {
    const limits = limitsFrom(testConfig({ maxImageSide: 64 }));
    const body = (maxSide?: number) =>
      roiBodySchema.parse({ image: 'AAAA', boxes: [[0, 0, 1, 1]], ...(maxSide ? { maxSide } : {}) });
    expect(prepareRoi(roiInputOf(body()), limits).params.maxSide).toBe(64);
    expect(prepareRoi(roiInputOf(body(32)), limits).params.maxSide).toBe(32);
    expect(prepareRoi(roiInputOf(body(32)), limits).warnings).toEqual([]);
    const capped = prepareRoi(roiInputOf(body(1000)), limits);
    expect(capped.params.maxSide).toBe(64);
    expect(capped.warnings).toEqual([
      {
        code: 'max-side-capped',
        field: 'maxSide',
        message:
          "maxSide 1000 is over this server's MAX_IMAGE_SIDE of 64: images are shrunk so their longer side is at most 64",
      },
    ]);
    expect(prepareRoi(roiInputOf(body(1000)), { ...limits, maxImageSide: undefined }).params.maxSide).toBe(
      1000,
    );
  });
});

describe('OpenAPI', () => {
  it('documents the X-Roiserve-Warnings header on the 200 of /v1/roi, /v1/diff and /v1/features', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    for (const path of ['/v1/roi', '/v1/diff', '/v1/features']) {
      expect(doc.paths[path].post.responses['200'].headers['X-Roiserve-Warnings']).toMatchObject({
        schema: { type: 'string' },
      });
      expect(doc.paths[path].post['x-response-headers']).toBeUndefined();
    }
  });
});

/**
 * The Open Inference Protocol v2 (issue 15) over a real socket. The request bodies are written here
 * from the protocol documents (kserve/open-inference-protocol `inference_rest.md`, Triton's
 * `extension_binary_data.md`), not with the server's encoder: a JSON header as text, then the raw
 * little-endian tensor bytes, with `Inference-Header-Content-Length`, and no `Content-Type` (what
 * `tritonclient.http` sends) or `application/octet-stream`. Results are compared with `POST /v1/roi`
 * bit for bit.
 */
import { request as httpRequest } from 'node:http';
import { describe, expect, it } from 'vitest';
import {
  multiScaleRoi,
  psRoiAlign,
  psRoiPool,
  rotatedRoiAlign,
  toCanonicalBoxes,
  toRotatedBoxes,
} from '../../../src/ops/index.js';
import { buildApp } from '../../../src/server.js';
import { useListeningApp } from '../../support/app.js';
import { featuresField, randomMap, tensorData, testConfig, testPng } from '../../support/fixtures.js';

const server = useListeningApp();

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** Sends exactly these headers (names as written, no Content-Type unless given) and body bytes. */
function send(
  method: string,
  path: string,
  body?: Buffer,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port: server.port,
        method,
        path,
        headers: body === undefined ? headers : { ...headers, 'Content-Length': String(body.length) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON read back in assertions
function json(answer: Answer): any {
  return JSON.parse(answer.body.toString('utf8'));
}

/** Little-endian bytes of float32 values, as numpy's `tobytes()` writes them. */
function f32(values: ArrayLike<number>): Buffer {
  const out = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i], 4 * i);
  return out;
}

function i64(values: number[]): Buffer {
  const out = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => out.writeBigInt64LE(BigInt(v), 8 * i));
  return out;
}

/** POST /v1/roi's output for one op, as float32 values. */
async function v1(body: Record<string, unknown>, op: string): Promise<Float32Array> {
  const r = await send('POST', '/v1/roi', Buffer.from(JSON.stringify({ ...body, ops: [op] })), {
    'Content-Type': 'application/json',
  });
  expect(r.status, r.body.toString()).toBe(200);
  return tensorData(json(r).outputs[op]);
}

const MAP = randomMap([2, 3, 9, 11], 7);
// Float32-exact coordinates, so that /v1's float64 JSON numbers and the FP32 rois are the same values.
const ROIS = [
  [0, 0.5, 1.25, 30.75, 20.5],
  [1, 4, 3, 12.5, 33],
  [0, -3, -2, 50, 40],
];

describe('POST /v2/models/{model}/infer, JSON tensors (KServe)', () => {
  it('gives what POST /v1/roi gives, bit for bit, for roi_align, roi_pool and roi_warp; id and model echoed', async () => {
    for (const [model, op] of [
      ['roi_align', 'align'],
      ['roi_pool', 'pool'],
      ['roi_warp', 'warp'],
    ]) {
      // KServe's InferRequest.to_rest(): id, model_name, parameters, inputs with flat data.
      const text = `{"id": "req-${model}", "model_name": "${model}", "parameters": {"spatial_scale": 0.25, "output_size": 3, "sampling_ratio": 0, "aligned": false},
        "inputs": [
          {"name": "features", "shape": [2, 3, 9, 11], "datatype": "FP32", "data": [${Array.from(MAP.data).join(', ')}]},
          {"name": "rois", "shape": [3, 5], "datatype": "FP32", "data": [${ROIS.flat().join(', ')}]}
        ]}`;
      const r = await send('POST', `/v2/models/${model}/infer`, Buffer.from(text), {
        'Content-Type': 'application/json',
      });
      expect(r.status, r.body.toString()).toBe(200);
      expect(r.headers['content-type']).toBe('application/json');
      const body = json(r);
      expect(body).toMatchObject({ model_name: model, model_version: '1', id: `req-${model}` });
      expect(body.outputs).toHaveLength(1);
      expect(body.outputs[0]).toMatchObject({ name: 'pooled', datatype: 'FP32', shape: [3, 3, 3, 3] });
      const expected = await v1(
        {
          features: featuresField(MAP),
          boxes: ROIS,
          spatialScale: 0.25,
          outputSize: 3,
          samplingRatio: 0,
          aligned: false,
        },
        op,
      );
      expect(Float32Array.from(body.outputs[0].data as number[])).toEqual(expected);
    }
  });

  it('takes nested data and the [K, 4] + batch_indices form; defaults as /v1 (7×7, ratio 2, aligned)', async () => {
    const nested = [0, 1].map((n) =>
      [0, 1, 2].map((c) =>
        Array.from({ length: 9 }, (_, y) =>
          Array.from(MAP.data.subarray(((n * 3 + c) * 9 + y) * 11, ((n * 3 + c) * 9 + y + 1) * 11)),
        ),
      ),
    );
    const body = {
      inputs: [
        { name: 'features', shape: [2, 3, 9, 11], datatype: 'FP32', data: nested },
        { name: 'rois', shape: [3, 4], datatype: 'FP32', data: ROIS.map((r) => r.slice(1)) },
        { name: 'batch_indices', shape: [3], datatype: 'INT32', data: ROIS.map((r) => r[0]) },
      ],
      parameters: { spatial_scale: 0.5 },
    };
    const r = await send('POST', '/v2/models/roi_align/infer', Buffer.from(JSON.stringify(body)), {
      'content-type': 'application/json',
    });
    expect(r.status, r.body.toString()).toBe(200);
    const out = json(r).outputs[0];
    expect(out.shape).toEqual([3, 3, 7, 7]);
    expect(json(r).id).toBeUndefined();
    const expected = await v1({ features: featuresField(MAP), boxes: ROIS, spatialScale: 0.5 }, 'align');
    expect(Float32Array.from(out.data as number[])).toEqual(expected);
  });
});

describe('binary tensor data (Triton extension), both ways', () => {
  /** A request as tritonclient.http builds it: JSON header, then features and rois bytes. */
  function binaryRequest(
    extra = '',
    outputs = '"outputs": [{"name": "pooled", "parameters": {"binary_data": true}}]',
  ) {
    const features = f32(MAP.data);
    const rois = f32(ROIS.flat());
    const header =
      `{"inputs":[{"name":"features","shape":[2,3,9,11],"datatype":"FP32","parameters":{"binary_data_size":${features.length}}},` +
      `{"name":"rois","shape":[3,5],"datatype":"FP32","parameters":{"binary_data_size":${rois.length}}}],` +
      `"parameters":{"spatial_scale":0.25,"output_height":2,"output_width":4${extra}}${outputs ? `,${outputs}` : ''}}`;
    const head = Buffer.from(header);
    return { head, body: Buffer.concat([head, features, rois]) };
  }

  /** Splits a binary response into its JSON header and the bytes after it. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON read back in assertions
  function splitResponse(r: Answer): { header: any; tail: Buffer } {
    const length = Number(r.headers['inference-header-content-length']);
    return { header: JSON.parse(r.body.subarray(0, length).toString()), tail: r.body.subarray(length) };
  }

  it('no Content-Type, lower-case header name: binary output equals /v1 bit for bit', async () => {
    const { head, body } = binaryRequest();
    const r = await send('POST', '/v2/models/roi_align/infer', body, {
      'inference-header-content-length': String(head.length),
    });
    expect(r.status, r.body.toString()).toBe(200);
    expect(r.headers['content-type']).toBe('application/octet-stream');
    const { header, tail } = splitResponse(r);
    expect(header).toEqual({
      model_name: 'roi_align',
      model_version: '1',
      outputs: [
        {
          name: 'pooled',
          datatype: 'FP32',
          shape: [3, 3, 2, 4],
          parameters: { binary_data_size: 3 * 3 * 2 * 4 * 4 },
        },
      ],
    });
    const expected = await v1(
      { features: featuresField(MAP), boxes: ROIS, spatialScale: 0.25, outputSize: [2, 4] },
      'align',
    );
    expect(tail.equals(f32(expected))).toBe(true);
  });

  it('application/octet-stream, upper-case header name, binary_data_output for all outputs', async () => {
    const { head, body } = binaryRequest(',"binary_data_output":true', '');
    const r = await send('POST', '/v2/models/roi_pool/versions/1/infer', body, {
      'Content-Type': 'application/octet-stream',
      'INFERENCE-HEADER-CONTENT-LENGTH': String(head.length),
    });
    expect(r.status, r.body.toString()).toBe(200);
    const { header, tail } = splitResponse(r);
    expect(header.outputs[0].parameters).toEqual({ binary_data_size: tail.length });
    const expected = await v1(
      { features: featuresField(MAP), boxes: ROIS, spatialScale: 0.25, outputSize: [2, 4] },
      'pool',
    );
    expect(tail.equals(f32(expected))).toBe(true);
  });

  it('a per-output binary_data: false wins over binary_data_output: true (JSON answer)', async () => {
    const { head, body } = binaryRequest(
      ',"binary_data_output":true',
      '"outputs":[{"name":"pooled","parameters":{"binary_data":false}}]',
    );
    const r = await send('POST', '/v2/models/roi_warp/infer', body, {
      'Inference-Header-Content-Length': String(head.length),
    });
    expect(r.status, r.body.toString()).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers['inference-header-content-length']).toBeUndefined();
    expect(json(r).outputs[0].data).toHaveLength(3 * 3 * 2 * 4);
  });

  it('INT64 batch_indices as binary, rois [K, 4] as JSON, in one request', async () => {
    const features = f32(MAP.data);
    const indices = i64(ROIS.map((r) => r[0]));
    const head = Buffer.from(
      JSON.stringify({
        inputs: [
          {
            name: 'features',
            shape: [2, 3, 9, 11],
            datatype: 'FP32',
            parameters: { binary_data_size: features.length },
          },
          { name: 'rois', shape: [3, 4], datatype: 'FP32', data: ROIS.map((r) => r.slice(1)).flat() },
          {
            name: 'batch_indices',
            shape: [3],
            datatype: 'INT64',
            parameters: { binary_data_size: indices.length },
          },
        ],
        parameters: { spatial_scale: 0.25, output_size: 2, binary_data_output: true },
      }),
    );
    const r = await send('POST', '/v2/models/roi_align/infer', Buffer.concat([head, features, indices]), {
      'Inference-Header-Content-Length': String(head.length),
    });
    expect(r.status, r.body.toString()).toBe(200);
    const expected = await v1(
      { features: featuresField(MAP), boxes: ROIS, spatialScale: 0.25, outputSize: 2 },
      'align',
    );
    expect(splitResponse(r).tail.equals(f32(expected))).toBe(true);
  });
});

describe('errors: {"error": message} with Content-Type application/json exactly', () => {
  async function error(r: Answer, status: number): Promise<string> {
    expect(r.status, r.body.toString()).toBe(status);
    expect(r.headers['content-type']).toBe('application/json');
    const body = json(r);
    expect(Object.keys(body)).toEqual(['error']);
    return body.error as string;
  }
  const post = (path: string, body: unknown) =>
    send('POST', path, Buffer.from(JSON.stringify(body)), { 'Content-Type': 'application/json' });
  const features = { name: 'features', shape: [1, 1, 2, 2], datatype: 'FP32', data: [1, 2, 3, 4] };
  const rois = { name: 'rois', shape: [1, 5], datatype: 'FP32', data: [0, 0, 0, 2, 2] };

  it('404 for an unknown model, an unknown version, an unknown path', async () => {
    expect(await error(await post('/v2/models/resnet/infer', { inputs: [features] }), 404)).toMatch(
      /unknown model "resnet"/,
    );
    expect(await error(await send('GET', '/v2/models/roi_align/versions/2'), 404)).toMatch(/no version "2"/);
    expect(await error(await send('GET', '/v2/models/resnet/ready'), 404)).toMatch(/unknown model/);
    expect(await error(await send('GET', '/v2/nothing/here'), 404)).toMatch(/no route/);
  });

  it('400 naming the input: shape × datatype against the element count, datatype, missing input', async () => {
    const short = { ...features, shape: [1, 1, 2, 3] };
    const msg = await error(
      await post('/v2/models/roi_align/infer', { inputs: [short, rois], parameters: { spatial_scale: 1 } }),
      400,
    );
    expect(msg).toMatch(/input "features": shape \[1, 1, 2, 3\] has 6 elements, but the data holds 4/);
    expect(
      await error(
        await post('/v2/models/roi_align/infer', {
          inputs: [features, { ...rois, datatype: 'INT32' }],
          parameters: { spatial_scale: 1 },
        }),
        400,
      ),
    ).toMatch(/input "rois" has datatype INT32; this model takes FP32/);
    expect(
      await error(
        await post('/v2/models/roi_align/infer', { inputs: [features], parameters: { spatial_scale: 1 } }),
        400,
      ),
    ).toMatch(/missing input "rois"/);
    expect(await error(await post('/v2/models/roi_align/infer', { inputs: [features, rois] }), 400)).toMatch(
      /spatial_scale is required/,
    );
    expect(
      await error(
        await post('/v2/models/roi_align/infer', {
          inputs: [features, rois],
          parameters: { spatial_scale: 1, outputsize: 2 },
        }),
        400,
      ),
    ).toMatch(/no parameter "outputsize"/);
    const badBatch = { ...rois, data: [3, 0, 0, 2, 2] };
    expect(
      await error(
        await post('/v2/models/roi_align/infer', {
          inputs: [features, badBatch],
          parameters: { spatial_scale: 1 },
        }),
        400,
      ),
    ).toMatch(/rois/);
  });

  it('400 for binary sizes that do not add up, and for bad JSON', async () => {
    const head = Buffer.from(
      '{"inputs":[{"name":"features","shape":[1,1,2,2],"datatype":"FP32","parameters":{"binary_data_size":12}},' +
        '{"name":"rois","shape":[1,5],"datatype":"FP32","data":[0,0,0,2,2]}],"parameters":{"spatial_scale":1}}',
    );
    const r = await send('POST', '/v2/models/roi_align/infer', Buffer.concat([head, Buffer.alloc(12)]), {
      'Inference-Header-Content-Length': String(head.length),
    });
    expect(await error(r, 400)).toMatch(/needs 16 bytes, but binary_data_size is 12/);
    const trailing = await send(
      'POST',
      '/v2/models/roi_align/infer',
      Buffer.concat([head, Buffer.alloc(20)]),
      {
        'Inference-Header-Content-Length': String(head.length),
      },
    );
    expect(await error(trailing, 400)).toMatch(/8 bytes follow/);
    expect(
      await error(await send('POST', '/v2/models/roi_align/infer', Buffer.from('{"inputs": ['), {}), 400),
    ).toMatch(/not valid JSON/);
  });

  it('415 for another content type; 413 over the box limit', async () => {
    const r = await send('POST', '/v2/models/roi_align/infer', Buffer.from('x'), {
      'Content-Type': 'text/plain',
    });
    expect(await error(r, 415)).toMatch(/text\/plain/);
    const many = {
      name: 'rois',
      shape: [server.app.config.maxBoxes + 1, 5],
      datatype: 'FP32',
      data: new Array((server.app.config.maxBoxes + 1) * 5).fill(0),
    };
    expect(
      await error(
        await post('/v2/models/roi_align/infer', {
          inputs: [features, many],
          parameters: { spatial_scale: 1 },
        }),
        413,
      ),
    ).toMatch(/rois exceed the limit/);
  });

  it('413 over MAX_OUTPUT_VALUES and MAX_WORK on a feature map, as /v1 refuses them', async () => {
    const big = {
      name: 'features',
      shape: [1, 64, 32, 32],
      datatype: 'FP32',
      data: new Array(64 * 32 * 32).fill(0),
    };
    const rows = {
      name: 'rois',
      shape: [4, 5],
      datatype: 'FP32',
      data: new Array(4).fill([0, 0, 0, 31, 31]).flat(),
    };
    const body = { inputs: [big, rows], parameters: { spatial_scale: 1, output_height: 7, output_width: 7 } };
    for (const limits of [{ maxOutputValues: 4 * 64 * 49 - 1 }, { maxWork: 1000 }]) {
      const app = await buildApp(testConfig(limits));
      try {
        const r = await app.inject({ method: 'POST', url: '/v2/models/roi_align/infer', payload: body });
        expect(r.statusCode, r.body).toBe(413);
        expect(r.json().error).toMatch(
          'maxWork' in limits
            ? /over MAX_WORK=1\.0e\+3/
            : /12544 values \(K=4 · C=64 · PH·PW=49 · ops=1\), over the limit of 12543/,
        );
      } finally {
        await app.close();
      }
    }
  });

  it('/v1 keeps its problem+json and its 415 for a body without Content-Type', async () => {
    const r = await send('POST', '/v1/roi', Buffer.from('{}'));
    expect(r.status).toBe(415);
    expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
  });
});

describe('metadata and health', () => {
  it('GET /v2, health live / ready, model metadata and readiness', async () => {
    const server = await send('GET', '/v2');
    expect(server.status).toBe(200);
    expect(json(server)).toMatchObject({
      name: 'roiserve',
      extensions: expect.arrayContaining(['binary_tensor_data']),
    });
    expect(json(await send('GET', '/v2/health/live'))).toEqual({ live: true });
    const ready = await send('GET', '/v2/health/ready');
    expect([ready.status, json(ready)]).toEqual([200, { ready: true }]);
    for (const path of ['/v2/models/roi_pool', '/v2/models/roi_pool/versions/1']) {
      const meta = await send('GET', path);
      expect(meta.status).toBe(200);
      expect(json(meta)).toMatchObject({
        name: 'roi_pool',
        versions: ['1'],
        inputs: expect.arrayContaining([{ name: 'features', datatype: 'FP32', shape: [-1, -1, -1, -1] }]),
        outputs: [{ name: 'pooled', datatype: 'FP32', shape: [-1, -1, -1, -1] }],
      });
    }
    const modelReady = await send('GET', '/v2/models/roi_warp/versions/1/ready');
    expect([modelReady.status, json(modelReady)]).toEqual([200, { name: 'roi_warp', ready: true }]);
  });
});

describe('API_KEY on /v2', () => {
  it('health probes open; metadata and inference need the key; the 401 is {"error"}; a body over BODY_LIMIT_BYTES is a 413 {"error"}', async () => {
    const keyed = await buildApp(testConfig({ apiKey: 'v2-key-0123456789', bodyLimitBytes: 4096 }));
    try {
      const live = await keyed.inject({ method: 'GET', url: '/v2/health/live' });
      expect(live.statusCode).toBe(200);
      for (const url of ['/v2', '/v2/models/roi_align', '/v2/models/roi_align/ready']) {
        const r = await keyed.inject({ method: 'GET', url });
        expect(r.statusCode, url).toBe(401);
        expect(r.headers['content-type']).toBe('application/json');
        expect(r.json()).toEqual({ error: expect.stringMatching(/needs an API key/) });
      }
      const payload = JSON.stringify({
        inputs: [
          { name: 'features', shape: [1, 1, 2, 2], datatype: 'FP32', data: [1, 2, 3, 4] },
          { name: 'rois', shape: [1, 5], datatype: 'FP32', data: [0, 0, 0, 2, 2] },
        ],
        parameters: { spatial_scale: 1, output_size: 1 },
      });
      const headers = { 'content-type': 'application/json' };
      const anonymous = await keyed.inject({
        method: 'POST',
        url: '/v2/models/roi_align/infer',
        payload,
        headers,
      });
      expect(anonymous.statusCode).toBe(401);
      const ok = await keyed.inject({
        method: 'POST',
        url: '/v2/models/roi_align/infer',
        payload,
        headers: { ...headers, 'x-api-key': 'v2-key-0123456789' },
      });
      expect(ok.statusCode, ok.body).toBe(200);
      expect(ok.json().outputs[0].data).toEqual([2.5]);
      const big = await keyed.inject({
        method: 'POST',
        url: '/v2/models/roi_align/infer',
        payload: Buffer.alloc(5000, 32),
        headers: { 'content-type': 'application/octet-stream', 'x-api-key': 'v2-key-0123456789' },
      });
      expect(big.statusCode).toBe(413);
      expect(big.headers['content-type']).toBe('application/json');
      expect(Object.keys(big.json())).toEqual(['error']);
    } finally {
      await keyed.close();
    }
  });
});

describe('image input (BYTES, run through the backbone) and the backbone model', () => {
  /** A BYTES tensor of one element in binary form: 4-byte little-endian length, then the bytes. */
  function bytesElement(bytes: Buffer): Buffer {
    const length = Buffer.alloc(4);
    length.writeUInt32LE(bytes.length);
    return Buffer.concat([length, bytes]);
  }

  it('roi_align on an image equals POST /v1/roi on the same image, bit for bit', async () => {
    const png = await testPng(80, 48);
    const image = bytesElement(png);
    const rois = f32([0, 4, 4, 60, 40, 0, 10.5, 2, 30, 20]);
    const head = Buffer.from(
      `{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":${image.length}}},` +
        `{"name":"rois","shape":[2,5],"datatype":"FP32","parameters":{"binary_data_size":${rois.length}}}],` +
        `"parameters":{"output_size":3,"binary_data_output":true}}`,
    );
    const r = await send('POST', '/v2/models/roi_align/infer', Buffer.concat([head, image, rois]), {
      'Inference-Header-Content-Length': String(head.length),
    });
    expect(r.status, r.body.toString()).toBe(200);
    const length = Number(r.headers['inference-header-content-length']);
    const header = JSON.parse(r.body.subarray(0, length).toString());
    expect(header.outputs[0].shape).toEqual([2, server.app.readiness.backbone?.outputChannels, 3, 3]);
    const expected = await v1(
      {
        image: png.toString('base64'),
        boxes: [
          [0, 4, 4, 60, 40],
          [0, 10.5, 2, 30, 20],
        ],
        outputSize: 3,
      },
      'align',
    );
    expect(r.body.subarray(length).equals(f32(expected))).toBe(true);
  });

  it('backbone: image in, features FP32 [1, C, H, W] out, equal to POST /v1/features', async () => {
    const png = await testPng(64, 64);
    // BYTES in JSON is a string per element: base64 text is not the image, so the image goes binary.
    const image = bytesElement(png);
    const head = Buffer.from(
      `{"id":"bb","inputs":[{"name":"image","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":${image.length}}}],` +
        `"outputs":[{"name":"features","parameters":{"binary_data":true}}]}`,
    );
    const r = await send('POST', '/v2/models/backbone/infer', Buffer.concat([head, image]), {
      'Content-Type': 'application/octet-stream',
      'Inference-Header-Content-Length': String(head.length),
    });
    expect(r.status, r.body.toString()).toBe(200);
    const length = Number(r.headers['inference-header-content-length']);
    const header = JSON.parse(r.body.subarray(0, length).toString());
    expect(header).toMatchObject({ model_name: 'backbone', model_version: '1', id: 'bb' });
    const v1r = await send(
      'POST',
      '/v1/features',
      Buffer.from(JSON.stringify({ image: png.toString('base64') })),
      {
        'Content-Type': 'application/json',
      },
    );
    const v1Body = json(v1r);
    expect(header.outputs[0]).toMatchObject({
      name: 'features',
      datatype: 'FP32',
      shape: v1Body.features.shape,
    });
    expect(Float32Array.from(new Float32Array(new Uint8Array(r.body.subarray(length)).buffer))).toEqual(
      tensorData(v1Body.features),
    );
  });

  it('an image that is not one is a 4xx {"error"}, not a 500', async () => {
    const image = bytesElement(Buffer.from('not an image'));
    const head = Buffer.from(
      `{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":${image.length}}}]}`,
    );
    const r = await send('POST', '/v2/models/backbone/infer', Buffer.concat([head, image]), {
      'Inference-Header-Content-Length': String(head.length),
    });
    expect([400, 415]).toContain(r.status);
    expect(Object.keys(json(r))).toEqual(['error']);
  });
});

describe('metrics', () => {
  it('counts inferences by model and status, unknown names as "unknown"', async () => {
    const text = (await send('GET', '/metrics')).body.toString();
    expect(text).toMatch(/roiserve_inference_requests_total\{model="roi_align",status="200"\} [1-9]/);
    expect(text).toMatch(/roiserve_inference_requests_total\{model="backbone",status="200"\} [1-9]/);
    expect(text).toMatch(/roiserve_inference_requests_total\{model="unknown",status="404"\} [1-9]/);
    expect(text).not.toMatch(/model="resnet"/);
  });
});

describe('parameters.dtype: FP16 / BF16 outputs, the bits of /v1 dtype float16 / bfloat16', () => {
  it('binary FP16 and BF16 equal /v1 base64 float16 / bfloat16 bit for bit; JSON values are exact', async () => {
    for (const [datatype, dtype] of [
      ['FP16', 'float16'],
      ['BF16', 'bfloat16'],
    ]) {
      const features = f32(MAP.data);
      const rois = f32(ROIS.flat());
      const head = Buffer.from(
        `{"inputs":[{"name":"features","shape":[2,3,9,11],"datatype":"FP32","parameters":{"binary_data_size":${features.length}}},` +
          `{"name":"rois","shape":[3,5],"datatype":"FP32","parameters":{"binary_data_size":${rois.length}}}],` +
          `"parameters":{"spatial_scale":0.25,"output_size":2,"dtype":"${datatype}","binary_data_output":true}}`,
      );
      const r = await send('POST', '/v2/models/roi_align/infer', Buffer.concat([head, features, rois]), {
        'Inference-Header-Content-Length': String(head.length),
      });
      expect(r.status, r.body.toString()).toBe(200);
      const n = Number(r.headers['inference-header-content-length']);
      const header = JSON.parse(r.body.subarray(0, n).toString());
      expect(header.outputs[0]).toMatchObject({
        datatype,
        shape: [3, 3, 2, 2],
        parameters: { binary_data_size: 72 },
      });
      const v1r = await send(
        'POST',
        '/v1/roi',
        Buffer.from(
          JSON.stringify({
            features: featuresField(MAP),
            boxes: ROIS,
            spatialScale: 0.25,
            outputSize: 2,
            ops: ['align'],
            dtype,
          }),
        ),
        { 'Content-Type': 'application/json' },
      );
      expect(v1r.status, v1r.body.toString()).toBe(200);
      const v1Bits = Buffer.from(json(v1r).outputs.align.data as string, 'base64');
      expect(r.body.subarray(n).equals(v1Bits)).toBe(true);
    }
  });

  it('refuses another dtype, naming the parameter', async () => {
    const body = {
      inputs: [
        { name: 'features', shape: [1, 1, 2, 2], datatype: 'FP32', data: [1, 2, 3, 4] },
        { name: 'rois', shape: [1, 5], datatype: 'FP32', data: [0, 0, 0, 2, 2] },
      ],
      parameters: { spatial_scale: 1, dtype: 'INT8' },
    };
    const r = await send('POST', '/v2/models/roi_align/infer', Buffer.from(JSON.stringify(body)), {
      'Content-Type': 'application/json',
    });
    expect(r.status).toBe(400);
    expect(json(r).error).toMatch(/parameters.dtype is "INT8"/);
  });
});

describe('ps_roi_align and ps_roi_pool (R-FCN), run in the worker pool', () => {
  const PS_MAP = randomMap([2, 8, 9, 11], 11); // C = C_out 2 · PH 2 · PW 2

  it('give the kernels of src/ops bit for bit ([K, C_out, PH, PW]), binary and JSON', async () => {
    const boxes = toCanonicalBoxes(ROIS, { format: 'xyxy', batchSize: 2 });
    for (const [model, run] of [
      [
        'ps_roi_align',
        () => psRoiAlign(PS_MAP, boxes, { spatialScale: 0.25, outputSize: 2, samplingRatio: 0 }),
      ],
      ['ps_roi_pool', () => psRoiPool(PS_MAP, boxes, { spatialScale: 0.25, outputSize: 2 })],
    ] as const) {
      const expected = run();
      const features = f32(PS_MAP.data);
      const params = model === 'ps_roi_align' ? ',"sampling_ratio":0' : '';
      const head = Buffer.from(
        `{"inputs":[{"name":"features","shape":[2,8,9,11],"datatype":"FP32","parameters":{"binary_data_size":${features.length}}},` +
          `{"name":"rois","shape":[3,5],"datatype":"FP32","data":${JSON.stringify(ROIS)}}],` +
          `"parameters":{"spatial_scale":0.25,"output_size":2${params}},"outputs":[{"name":"pooled","parameters":{"binary_data":true}}]}`,
      );
      const r = await send('POST', `/v2/models/${model}/infer`, Buffer.concat([head, features]), {
        'Inference-Header-Content-Length': String(head.length),
      });
      expect(r.status, r.body.toString()).toBe(200);
      const n = Number(r.headers['inference-header-content-length']);
      expect(JSON.parse(r.body.subarray(0, n).toString()).outputs[0].shape).toEqual([3, 2, 2, 2]);
      expect(r.body.subarray(n).equals(f32(expected.data))).toBe(true);
    }
  });

  it('a channel count that is not C_out·PH·PW is a 400 naming features', async () => {
    const body = {
      inputs: [
        { name: 'features', shape: [1, 3, 2, 2], datatype: 'FP32', data: new Array(12).fill(1) },
        { name: 'rois', shape: [1, 5], datatype: 'FP32', data: [0, 0, 0, 2, 2] },
      ],
      parameters: { spatial_scale: 1, output_size: 2 },
    };
    const r = await send('POST', '/v2/models/ps_roi_pool/infer', Buffer.from(JSON.stringify(body)), {
      'Content-Type': 'application/json',
    });
    expect(r.status).toBe(400);
    expect(json(r).error).toMatch(/features has C = 3 channels, not a multiple of/);
  });
});

describe('rotated_roi_align and multiscale_roi_align, run in the worker pool', () => {
  it('rotated_roi_align gives the kernel of src/ops bit for bit', async () => {
    const rows = [
      [0, 12, 10, 16, 8, 30],
      [1, 20.5, 14, 10, 20, -45],
    ];
    const expected = rotatedRoiAlign(MAP, toRotatedBoxes(rows, { batchSize: 2 }), {
      spatialScale: 0.5,
      outputSize: 3,
      samplingRatio: 0,
      aligned: true,
      clockwise: true,
    });
    const body = {
      inputs: [
        { name: 'features', shape: [2, 3, 9, 11], datatype: 'FP32', data: Array.from(MAP.data) },
        { name: 'rois', shape: [2, 5], datatype: 'FP32', data: rows.map((r) => r.slice(1)) },
        { name: 'batch_indices', shape: [2], datatype: 'INT64', data: [0, 1] },
      ],
      parameters: { spatial_scale: 0.5, output_size: 3, sampling_ratio: 0, clockwise: true },
    };
    const r = await send('POST', '/v2/models/rotated_roi_align/infer', Buffer.from(JSON.stringify(body)), {
      'Content-Type': 'application/json',
    });
    expect(r.status, r.body.toString()).toBe(200);
    const out = json(r).outputs[0];
    expect(out.shape).toEqual([2, 3, 3, 3]);
    expect(Float32Array.from(out.data as number[])).toEqual(expected.data);
  });

  it('multiscale_roi_align: pooled and levels equal multiScaleRoi; outputs filter what comes back', async () => {
    const p2 = randomMap([1, 2, 32, 32], 3);
    const p3 = randomMap([1, 2, 16, 16], 4);
    const p4 = randomMap([1, 2, 8, 8], 5);
    const rows = [
      [0, 0, 0, 120, 120],
      [0, 10, 10, 30, 40],
      [0, 0, 0, 126, 127],
    ];
    const expected = multiScaleRoi(
      'align',
      [p2, p3, p4],
      [0.25, 0.125, 0.0625],
      toCanonicalBoxes(rows, { format: 'xyxy', batchSize: 1 }),
      { outputSize: 2, samplingRatio: 2, aligned: false },
      { rule: 'torchvision', canonicalBoxSize: 224, canonicalLevel: 4 },
    );
    const tensor = (name: string, fm: typeof p2) => ({
      name,
      shape: [...fm.shape],
      datatype: 'FP32',
      data: Array.from(fm.data),
    });
    const body = {
      inputs: [
        tensor('features_0', p2),
        tensor('features_1', p3),
        tensor('features_2', p4),
        { name: 'rois', shape: [3, 5], datatype: 'FP32', data: rows.flat() },
      ],
      parameters: {
        spatial_scale: 0.25,
        output_size: 2,
        aligned: false,
        canonical_box_size: 224,
        canonical_level: 4,
      },
    };
    const post = (extra: object) =>
      send(
        'POST',
        '/v2/models/multiscale_roi_align/infer',
        Buffer.from(JSON.stringify({ ...body, ...extra })),
        {
          'Content-Type': 'application/json',
        },
      );
    const r = await post({});
    expect(r.status, r.body.toString()).toBe(200);
    const [pooled, levels] = json(r).outputs;
    expect(pooled.shape).toEqual([3, 2, 2, 2]);
    expect(Float32Array.from(pooled.data as number[])).toEqual(expected.output.data);
    expect(levels).toEqual({
      name: 'levels',
      datatype: 'INT64',
      shape: [3],
      data: Array.from(expected.levels),
    });
    const only = await post({ outputs: [{ name: 'levels' }] });
    expect(json(only).outputs.map((o: { name: string }) => o.name)).toEqual(['levels']);
  });
});

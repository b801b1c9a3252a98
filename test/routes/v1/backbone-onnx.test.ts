/**
 * `GET /v1/backbone/model.onnx`: the served bytes, run by ONNX Runtime in this process, give the
 * features `/v1/features` computes with tfjs (BACKBONE_ENGINE=tfjs, so the service's own features do
 * not come from ONNX Runtime) on the same image, within 1e-4 of the feature scale.
 */
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { readNpy } from '../../../src/tensors/npy.js';
import { useApp } from '../../support/app.js';
import { testConfig, testPng } from '../../support/fixtures.js';

const server = useApp(testConfig({ backboneEngine: 'tfjs' }));

describe('GET /v1/backbone/model.onnx', () => {
  it('serves the built-in backbone as an .onnx file that runs to the same features as /v1/features', async () => {
    const r = await server.app.inject({ method: 'GET', url: '/v1/backbone/model.onnx' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('application/octet-stream');
    expect(r.headers['content-disposition']).toBe('attachment; filename="roiserve-backbone.onnx"');

    const png = await testPng(150, 90);
    const f = await server.app.inject({
      method: 'POST',
      url: '/v1/features',
      payload: { image: png.toString('base64'), format: 'npy' },
    });
    expect(f.statusCode).toBe(200);
    const tfjs = readNpy(f.rawPayload);
    expect(tfjs.shape).toEqual([1, 256, 6, 10]);

    // The image as the model's documented input: RGB / 255, NCHW.
    const { data: rgb, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const plane = info.width * info.height;
    const input = new Float32Array(3 * plane);
    for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) input[c * plane + i] = rgb[3 * i + c] / 255;
    const session = await ort.InferenceSession.create(r.rawPayload);
    try {
      const out = await session.run({
        image: new ort.Tensor('float32', input, [1, 3, info.height, info.width]),
      });
      const peer = out.features;
      expect([...peer.dims]).toEqual(tfjs.shape);
      const a = peer.data as Float32Array;
      let maxAbs = 0;
      let scale = 0;
      for (let i = 0; i < a.length; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(a[i] - tfjs.data[i]));
        scale = Math.max(scale, Math.abs(tfjs.data[i]));
      }
      expect(scale).toBeGreaterThan(0.01);
      expect(maxAbs / scale).toBeLessThanOrEqual(1e-4);
    } finally {
      await session.release();
    }
  });

  it('/v1/backbone names the engine that runs and why', async () => {
    const d = (await server.app.inject({ method: 'GET', url: '/v1/backbone' })).json();
    expect(d).toMatchObject({
      engine: 'tfjs',
      engineReason: expect.stringMatching(/^tfjs: configured \(BACKBONE_ENGINE=tfjs\)/),
      engineCheck: null,
    });
    const ready = (await server.app.inject({ method: 'GET', url: '/readyz' })).json();
    expect(ready).toMatchObject({ engine: 'tfjs', engineReason: d.engineReason });
  });
});

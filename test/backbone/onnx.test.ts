/**
 * Cross-check: the built-in backbone (tfjs, wasm) against the same network and weights as an ONNX
 * graph run by ONNX Runtime. Tolerance: max |tfjs − ORT| ≤ 1e-4 · max |feature|.
 */
import * as ort from 'onnxruntime-node';
import type { InferenceSession } from 'onnxruntime-node';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBackbone, type Backbone } from '../../src/backbone/index.js';
import { initTensorFlow } from '../../src/backbone/tf.js';
import { rgbToInput } from '../../src/backbone/onnx-engine.js';
import { exportOnnx } from '../../src/backbone/onnx-export.js';
import { PYRAMID_NETWORK, PYRAMID_OUTPUTS } from '../../src/backbone/pyramid.js';
import { createOrtBackbone, relativeError, runOrtBackbone } from './onnx-reference.js';

let backbone: Backbone;
let session: InferenceSession;

beforeAll(async () => {
  await initTensorFlow({ backend: 'wasm' });
  backbone = await loadBackbone({ engine: 'tfjs' });
  session = await createOrtBackbone();
});
afterAll(async () => {
  backbone.dispose();
  await session.release();
});

/** A photo-like test card: gradient background, shapes in several colours, a thin line. */
async function testCard(width: number, height: number): Promise<Uint8Array> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <defs><linearGradient id="g"><stop offset="0" stop-color="#204060"/><stop offset="1" stop-color="#e0c080"/></linearGradient></defs>
    <rect width="100%" height="100%" fill="url(#g)"/>
    <circle cx="${width * 0.3}" cy="${height * 0.4}" r="${height * 0.2}" fill="#d02020"/>
    <rect x="${width * 0.55}" y="${height * 0.2}" width="${width * 0.3}" height="${height * 0.5}" fill="#20a040" transform="rotate(15)"/>
    <line x1="0" y1="${height * 0.8}" x2="${width}" y2="${height * 0.9}" stroke="#ffffff" stroke-width="2"/>
  </svg>`;
  const { data } = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Seeded noise: every pixel different, so padding and stride alignment errors cannot hide. */
function noise(width: number, height: number): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = Math.imul(i + 12345, 2654435761) >>> 24;
  return rgb;
}

describe('built-in backbone vs ONNX Runtime (same graph, same weights)', () => {
  const cases: Array<[string, number, number, (w: number, h: number) => Promise<Uint8Array> | Uint8Array]> = [
    ['test card 160×120', 160, 120, testCard],
    ['noise 131×97 (odd sizes: asymmetric same padding)', 131, 97, noise],
    ['noise 16×16', 16, 16, noise],
    ['noise 7×5 (smaller than one output cell)', 7, 5, noise],
  ];
  for (const [name, width, height, make] of cases) {
    it(`${name}: max abs error ≤ 1e-4 × max |feature|`, async () => {
      const rgb = await make(width, height);
      const features = await backbone.extract({ rgb, width, height });
      const reference = await runOrtBackbone(session, rgb, width, height);
      expect(reference.dims).toEqual([1, ...features.shape.slice(1)]);
      const { rel, scale } = relativeError(features, reference);
      expect(scale).toBeGreaterThan(0.01); // a meaningful comparison, not of two zero maps
      expect(rel).toBeLessThanOrEqual(1e-4);
    });
  }
});

describe('built-in pyramid (FPN head: linear convs, nearest upsample, add) vs ONNX Runtime', () => {
  for (const [width, height] of [
    [131, 97],
    [64, 48],
    [23, 9],
  ]) {
    it(`noise ${width}×${height}: every level within 1e-4 × max |feature|`, async () => {
      const rgb = noise(width, height);
      const levels = await backbone.pyramid!.extract({ rgb, width, height });
      const pyramidSession = await ort.InferenceSession.create(
        exportOnnx(PYRAMID_NETWORK, undefined, { outputs: [...PYRAMID_OUTPUTS] }),
      );
      try {
        const input = rgbToInput(rgb, width, height);
        const out = await pyramidSession.run({ image: new ort.Tensor('float32', input.data, input.dims) });
        expect(pyramidSession.outputNames).toEqual(['features_0', 'features_1', 'features_2']);
        levels.forEach((level, i) => {
          const peer = out[`features_${i}`];
          const { rel, scale } = relativeError(level, {
            data: peer.data as Float32Array,
            dims: [...peer.dims],
          });
          expect(scale).toBeGreaterThan(0.01);
          expect(rel).toBeLessThanOrEqual(1e-4);
        });
      } finally {
        await pyramidSession.release();
      }
    });
  }
});

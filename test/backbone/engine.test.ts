/**
 * BACKBONE_ENGINE: the built-in net on ONNX Runtime (`onnx`, and `auto` here, where tfjs-node cannot
 * install) gives the tfjs features within 1e-4 of their scale, says why it runs, refuses a model that
 * disagrees with tfjs, and leaves no tfjs tensors behind.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadBackbone, type Backbone } from '../../src/backbone/index.js';
import { BUILTIN_NETWORK, networkWeights } from '../../src/backbone/builtin.js';
import { checkAgreement, chooseEngine, compareFeatures } from '../../src/backbone/onnx-engine.js';
import { exportOnnx } from '../../src/backbone/onnx-export.js';
import { initTensorFlow, tf } from '../../src/backbone/tf.js';
import type { FeatureMap } from '../../src/ops/types.js';

let tfjs: Backbone;

beforeAll(async () => {
  await initTensorFlow({ backend: 'wasm' });
  tfjs = await loadBackbone({ engine: 'tfjs' });
  // Its pyramid model is built on first use: build it now, so tensor counts below compare like with like.
  await tfjs.pyramid!.extract({ rgb: new Uint8Array(3 * 16 * 16), width: 16, height: 16 });
});
afterAll(() => tfjs.dispose());

function gradient(width: number, height: number): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const o = 3 * (y * width + x);
      rgb[o] = (x * 255) / width;
      rgb[o + 1] = (y * 255) / height;
      rgb[o + 2] = (x * y) % 251;
    }
  return rgb;
}

describe('BACKBONE_ENGINE=onnx on the built-in net', () => {
  it('agrees with tfjs within 1e-4 of the feature scale, on the probe and on other images, pyramid included', async () => {
    const before = tf.memory().numTensors;
    const onnx = await loadBackbone({ engine: 'onnx' });
    try {
      const d = onnx.describe();
      expect(onnx.engine).toBe('onnx');
      expect(d.engine).toBe('onnx');
      expect(d.engineReason).toMatch(
        /^onnx: configured \(BACKBONE_ENGINE=onnx\); ONNX Runtime \d+\.\d+\.\d+ loaded$/,
      );
      expect(d.engineCheck!.relative).toBeLessThanOrEqual(1e-4);
      expect(d.engineCheck!.probe).toEqual([83, 61]);
      for (const [width, height] of [
        [200, 120],
        [33, 47],
      ]) {
        const image = { rgb: gradient(width, height), width, height };
        const a = await onnx.extract(image);
        const b = await tfjs.extract(image);
        expect(a.layout).toBe('NCHW');
        const { relative, scale } = compareFeatures(a, b);
        expect(scale).toBeGreaterThan(0.01);
        expect(relative).toBeLessThanOrEqual(1e-4);
        const la = await onnx.pyramid!.extract(image);
        const lb = await tfjs.pyramid!.extract(image);
        expect(la.map((m) => m.shape)).toEqual(lb.map((m) => m.shape));
        la.forEach((m, i) => expect(compareFeatures(m, lb[i]).relative).toBeLessThanOrEqual(1e-4));
      }
      // Same input checks as tfjs: a 400 naming `image`.
      await expect(onnx.extract({ rgb: new Uint8Array(5), width: 2, height: 2 })).rejects.toMatchObject({
        status: 400,
        field: 'image',
      });
    } finally {
      onnx.dispose();
    }
    // The tfjs models used for the checks are gone.
    expect(tf.memory().numTensors).toBe(before);
  });

  it('auto picks ONNX Runtime when tfjs-node is not in use, and says why', async () => {
    const onnx = await loadBackbone({ engine: 'auto' });
    try {
      expect(onnx.engine).toBe('onnx');
      expect(onnx.describe().engineReason).toMatch(
        /^onnx: auto: tfjs-node not in use \(TF_BACKEND=wasm\); ONNX Runtime \d+\.\d+\.\d+ loaded$/,
      );
    } finally {
      onnx.dispose();
    }
  });

  it('refuses to load when ONNX Runtime and tfjs disagree on the probe image', async () => {
    const before = tf.memory().numTensors;
    const otherWeights = exportOnnx(BUILTIN_NETWORK, networkWeights(BUILTIN_NETWORK, 7));
    await expect(loadBackbone({ engine: 'onnx', onnxModelForTest: otherWeights })).rejects.toThrow(
      /ONNX Runtime and tfjs \(wasm\) disagree on the 83×61 probe image: max \|difference\| .* of the feature scale .* \(tolerance 0\.0001\); refusing/,
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('engine choice and the agreement rule', () => {
  const fm = (values: number[]): FeatureMap => ({
    data: Float32Array.from(values),
    shape: [1, 1, 1, values.length],
    layout: 'NCHW',
  });

  it('accepts a difference under 1e-4 of the scale, refuses one just over, and two zero maps', () => {
    expect(checkAgreement(fm([10, 1.0009]), fm([10, 1]), [1, 1], 'wasm').relative).toBeCloseTo(0.9e-4, 6);
    expect(() => checkAgreement(fm([10, 1.0011]), fm([10, 1]), [1, 1], 'wasm')).toThrow(/disagree/);
    expect(() => checkAgreement(fm([0, 0]), fm([0, 0]), [1, 1], 'wasm')).toThrow(/disagree/);
    expect(() => checkAgreement(fm([1]), fm([1, 2]), [1, 1], 'wasm')).toThrow(/shapes differ/);
  });

  it('auto keeps tfjs when its native backend runs; tfjs when configured', async () => {
    const native = {
      backend: 'tensorflow',
      reason: 'auto: @tensorflow/tfjs-node loaded',
      tfjsNodeError: null,
    };
    expect(await chooseEngine('auto', native)).toEqual({
      engine: 'tfjs',
      reason: 'tfjs: auto: @tensorflow/tfjs-node loaded (native TensorFlow)',
    });
    const wasm = { backend: 'wasm', reason: 'configured: wasm', tfjsNodeError: null };
    expect(await chooseEngine('tfjs', wasm)).toEqual({
      engine: 'tfjs',
      reason: 'tfjs: configured (BACKBONE_ENGINE=tfjs); configured: wasm',
    });
  });

  it('auto falls back to tfjs (never silently to cpu) when ONNX Runtime cannot load; onnx then refuses', async () => {
    vi.resetModules();
    vi.doMock('onnxruntime-node', () => {
      throw new Error('libonnxruntime.so.1: cannot open shared object file');
    });
    try {
      const fresh = await import('../../src/backbone/onnx-engine.js');
      const wasm = {
        backend: 'wasm',
        reason: 'auto: … using wasm (SIMD, 1 thread)',
        tfjsNodeError: 'no tfjs-node',
      };
      const choice = await fresh.chooseEngine('auto', wasm);
      expect(choice.engine).toBe('tfjs');
      expect(choice.reason).toMatch(
        /^tfjs: auto: tfjs-node not in use \(no tfjs-node\); onnxruntime-node could not be loaded: .+; auto: … using wasm/,
      );
      await expect(fresh.chooseEngine('onnx', wasm)).rejects.toThrow(/onnxruntime-node could not be loaded/);
    } finally {
      vi.doUnmock('onnxruntime-node');
      vi.resetModules();
    }
  });
});

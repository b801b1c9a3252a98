/**
 * The built-in pyramid (`pyramid: true`): levels at strides 8, 16, 32 with one channel count, checked
 * against the same network and weights run by PyTorch (test/oracle/torch_network.py, written from the
 * node kinds' definitions: TF `same` padding, torchvision FPN's `F.interpolate(size=…)` top-down step)
 * on odd-sized images, where the upsampled maps must be cropped. Without `pyramid` the backbone runs the
 * unchanged model (the pinned-weight and ORT tests in backbone.test.ts / onnx.test.ts hold).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBackbone, type Backbone } from '../../src/backbone/index.js';
import { BUILTIN_NETWORK, buildLayersModel, networkWeights } from '../../src/backbone/builtin.js';
import {
  PYRAMID_HEAD,
  PYRAMID_NETWORK,
  PYRAMID_OUTPUTS,
  describePyramid,
} from '../../src/backbone/pyramid.js';
import { initTensorFlow, tf } from '../../src/backbone/tf.js';
import type { FeatureMap } from '../../src/ops/types.js';
import { b64, fromB64, runOracleScript } from '../oracle/script.js';
import { debianPython } from '../support/python.js';

const haveTorch = debianPython({
  modules: ['torch', 'numpy'],
  packages: ['python3-torchvision', 'python3-numpy'],
  what: 'pyramid vs torch',
});

let backbone: Backbone;
beforeAll(async () => {
  await initTensorFlow({ backend: 'wasm' });
  backbone = await loadBackbone({ engine: 'tfjs' });
});
afterAll(() => backbone.dispose());

/** Seeded noise: every pixel different, so padding, stride and crop errors cannot hide. */
function noise(width: number, height: number, salt = 0): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = Math.imul(i + 12345 + salt, 2654435761) >>> 24;
  return rgb;
}

/** NHWC map → NCHW values. */
function toNchw(fm: FeatureMap): Float32Array {
  const [, c, h, w] = fm.shape;
  const out = new Float32Array(c * h * w);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let k = 0; k < c; k++) out[(k * h + y) * w + x] = fm.data[(y * w + x) * c + k];
  return out;
}

function torchPyramid(rgb: Uint8Array, width: number, height: number) {
  const weights = networkWeights(PYRAMID_NETWORK);
  const out = runOracleScript('torch_network.py', {
    nodes: PYRAMID_NETWORK,
    weights: Object.fromEntries(
      [...weights].map(([name, w]) => [
        name,
        { kernel: b64(w.kernel), shape: w.kernelShape, bias: b64(w.bias) },
      ]),
    ),
    rgb: Buffer.from(rgb).toString('base64'),
    width,
    height,
    outputs: PYRAMID_OUTPUTS,
  }) as { outputs: Array<{ shape: number[]; data: string }> };
  return out.outputs.map((o) => ({ shape: o.shape, data: fromB64(o.data) }));
}

describe('built-in pyramid: shapes and description', () => {
  it('gives P3, P4, P5 at strides 8, 16, 32, 64 channels each, ceil(side / stride) cells', async () => {
    const pyramid = backbone.pyramid!;
    expect([pyramid.strides, pyramid.channels]).toEqual([[8, 16, 32], 64]);
    for (const [w, h] of [
      [1, 1],
      [131, 97],
      [64, 48],
      [33, 200],
    ]) {
      const maps = await pyramid.extract({ rgb: noise(w, h), width: w, height: h });
      expect(maps.map((m) => m.shape)).toEqual(
        [8, 16, 32].map((s) => [1, 64, Math.ceil(h / s), Math.ceil(w / s)]),
      );
      expect(maps.every((m) => m.layout === 'NHWC')).toBe(true);
    }
  });

  it('is described by /v1/backbone: levels, strides, channels, parameters and multiply-adds', () => {
    const d = backbone.describe().pyramid!;
    expect(d.strides).toEqual([8, 16, 32]);
    expect(d.channels).toBe(64);
    expect(d.levels.map((l) => [l.name, l.level, l.stride, l.outputShape])).toEqual([
      ['fpn/p3', 3, 8, [1, 64, 28, 28]],
      ['fpn/p4', 4, 16, [1, 64, 14, 14]],
      ['fpn/p5', 5, 32, [1, 64, 7, 7]],
    ]);
    // By hand at 224×224: conv5 7·7·9·256·128; laterals 28²·112·64, 14²·256·64, 7²·128·64;
    // smoothing 3×3 64 → 64 on 28², 14², 7².
    const head =
      7 * 7 * 9 * 256 * 128 +
      28 * 28 * 112 * 64 +
      14 * 14 * 256 * 64 +
      7 * 7 * 128 * 64 +
      (28 * 28 + 14 * 14 + 7 * 7) * 9 * 64 * 64;
    expect(d.totalMultiplyAdds).toBe(backbone.describe().totalMultiplyAdds + head);
    const model = buildLayersModel(PYRAMID_NETWORK, networkWeights(PYRAMID_NETWORK), PYRAMID_OUTPUTS);
    expect(d.totalParams).toBe(model.countParams()); // tfjs's own count
    model.dispose();
    expect(d.layers.map((l) => l.name)).toEqual(PYRAMID_HEAD.map((n) => n.name));
    expect(describePyramid([97, 131]).levels.map((l) => l.outputShape.slice(2))).toEqual([
      [13, 17],
      [7, 9],
      [4, 5],
    ]);
  });

  it('shares the built-in net: its layers have the same weights and give the plain backbone output bit for bit', async () => {
    const image = { rgb: noise(70, 45, 3), width: 70, height: 45 };
    const plain = await backbone.extract(image);
    // The built-in nodes with the weights the pyramid network gets.
    const model = buildLayersModel(BUILTIN_NETWORK, networkWeights(PYRAMID_NETWORK));
    const input = tf.tensor4d(
      Float32Array.from(image.rgb, (v) => v * (1 / 255) - 0.5),
      [1, image.height, image.width, 3],
    );
    const out = model.apply(input, { training: false }) as tf.Tensor;
    const data = out.dataSync() as Float32Array;
    tf.dispose([input, out]);
    model.dispose();
    expect(Buffer.from(data.buffer).equals(Buffer.from(plain.data.buffer))).toBe(true);
  });

  it('leaks no tensors', async () => {
    const pyramid = backbone.pyramid!;
    await pyramid.extract({ rgb: noise(40, 30), width: 40, height: 30 }); // builds the model
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await pyramid.extract({ rgb: noise(40, 30, i), width: 40, height: 30 });
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe.runIf(haveTorch)('built-in pyramid vs PyTorch (same nodes, same weights)', () => {
  // 131×97: P3 17×13, P4 9×7, P5 5×4, so both top-down steps crop a row and a column (10×8 → 9×7,
  // 18×14 → 17×13); 64×48 only the P5 → P4 step in height (4 → 3 rows); 9×7 is smaller than one P5 cell.
  for (const [w, h] of [
    [131, 97],
    [64, 48],
    [9, 7],
  ]) {
    it(`${w}×${h}: every level within 1e-4 × max |feature| of torch`, async () => {
      const rgb = noise(w, h, w);
      const maps = await backbone.pyramid!.extract({ rgb, width: w, height: h });
      const reference = torchPyramid(rgb, w, h);
      for (let level = 0; level < 3; level++) {
        expect(reference[level].shape).toEqual([...maps[level].shape]);
        const ours = toNchw(maps[level]);
        let scale = 0;
        let err = 0;
        for (let i = 0; i < ours.length; i++) {
          scale = Math.max(scale, Math.abs(reference[level].data[i]));
          err = Math.max(err, Math.abs(ours[i] - reference[level].data[i]));
        }
        expect(scale).toBeGreaterThan(0.01); // not two maps of zeros
        expect(err).toBeLessThanOrEqual(1e-4 * scale);
      }
    });
  }
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError, TooLargeError } from '../../src/errors.js';
import { checkBackboneInput, fittingMaxSide, loadBackbone, type Backbone } from '../../src/backbone/index.js';
import {
  BUILTIN_NETWORK,
  CONV1_FILTERS,
  buildLayersModel,
  conv1Kernel,
  convMultiplyAdds,
  describeNetwork,
  networkWeights,
} from '../../src/backbone/builtin.js';
import { initTensorFlow, tf } from '../../src/backbone/tf.js';

/** A deterministic, textured RGB image `[H, W, 3]`. */
function pattern(width: number, height: number, salt = 0): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let c = 0; c < 3; c++) {
        const i = (y * width + x) * 3 + c;
        rgb[i] = (Math.imul(i + salt, 2654435761) >>> 24) & 0xff;
      }
  return rgb;
}

/** Bit-identical float arrays (fast; vitest's deep equality is slow on 100k elements). */
function same(a: Float32Array, b: Float32Array): boolean {
  return (
    a.length === b.length &&
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    )
  );
}

let backbone: Backbone;

beforeAll(async () => {
  await initTensorFlow({ backend: 'wasm' });
  backbone = await loadBackbone({ engine: 'tfjs' });
});
afterAll(() => backbone.dispose());

describe('built-in backbone: output', () => {
  it('has stride 16 and 256 channels; output is [1, 256, ceil(H/16), ceil(W/16)] in NHWC', async () => {
    expect([backbone.stride, backbone.channels, backbone.name]).toEqual([16, 256, 'builtin-inception-s16']);
    for (const [w, h] of [
      [1, 1],
      [16, 16],
      [17, 33],
      [131, 97],
      [160, 120],
    ]) {
      const f = await backbone.extract({ rgb: pattern(w, h), width: w, height: h });
      expect(f.shape).toEqual([1, 256, Math.ceil(h / 16), Math.ceil(w / 16)]);
      expect(f.layout).toBe('NHWC');
      expect(f.data).toBeInstanceOf(Float32Array);
      expect(f.data.length).toBe(256 * Math.ceil(h / 16) * Math.ceil(w / 16));
      expect(f.data.every((v) => Number.isFinite(v) && v >= 0)).toBe(true); // after ReLU
    }
  });

  it('is deterministic: same image → bit-identical features, across backbone instances too', async () => {
    const image = { rgb: pattern(64, 48), width: 64, height: 48 };
    const a = await backbone.extract(image);
    const b = await backbone.extract(image);
    const other = await loadBackbone({ engine: 'tfjs' });
    const c = await other.extract(image);
    other.dispose();
    expect(same(b.data, a.data)).toBe(true);
    expect(same(c.data, a.data)).toBe(true);
    // Not all zeros, and different images give different features.
    expect(Math.max(...a.data)).toBeGreaterThan(0.05);
    const d = await backbone.extract({ rgb: pattern(64, 48, 1), width: 64, height: 48 });
    expect(same(d.data, a.data)).toBe(false);
  });

  it('has seeded weights that are reproducible and pinned (regression guard for "same on every machine")', () => {
    const w1 = networkWeights();
    const w2 = networkWeights();
    let checksum = 0;
    for (const [name, w] of w1) {
      expect(same(w2.get(name)!.kernel, w.kernel)).toBe(true);
      for (let i = 0; i < w.kernel.length; i++) checksum += w.kernel[i] * ((i % 7) + 1);
      for (let i = 0; i < w.bias.length; i++) checksum += w.bias[i];
    }
    // Pinned once from this implementation: mulberry32 + FNV-1a use only integer ops and sqrt.
    expect(w1.get('inception4a/3x3')!.kernel[0]).toBe(PINNED_FIRST_WEIGHT);
    expect(checksum).toBeCloseTo(PINNED_CHECKSUM, 6);
    // A different seed gives different weights.
    expect(same(networkWeights(BUILTIN_NETWORK, 1).get('conv2')!.kernel, w1.get('conv2')!.kernel)).toBe(
      false,
    );
  });

  it('loads the weights into the tfjs model explicitly (not tfjs initializers)', () => {
    const model = buildLayersModel();
    const weights = networkWeights();
    for (const node of BUILTIN_NETWORK) {
      if (node.type !== 'conv') continue;
      const [kernel, bias] = model.getLayer(node.name).getWeights();
      expect(same(kernel.dataSync() as Float32Array, weights.get(node.name)!.kernel)).toBe(true);
      expect(same(bias.dataSync() as Float32Array, weights.get(node.name)!.bias)).toBe(true);
    }
    model.dispose();
  });

  it('does not leak tensors: numTensors after 100 passes equals after 1, errors included', async () => {
    const image = { rgb: pattern(32, 24), width: 32, height: 24 };
    await backbone.extract(image);
    const afterOne = tf.memory().numTensors;
    for (let i = 0; i < 99; i++) await backbone.extract(image);
    await expect(backbone.extract({ rgb: new Uint8Array(5), width: 32, height: 24 })).rejects.toBeInstanceOf(
      InvalidInputError,
    );
    expect(tf.memory().numTensors).toBe(afterOne);
  });

  it('refuses bad sizes (400) and images over maxInputPixels (413)', async () => {
    await expect(backbone.extract({ rgb: new Uint8Array(0), width: 0, height: 0 })).rejects.toBeInstanceOf(
      InvalidInputError,
    );
    await expect(backbone.extract({ rgb: new Uint8Array(12), width: 2, height: 3 })).rejects.toThrow(
      /expected 2×3×3/,
    );
    const small = await loadBackbone({ engine: 'tfjs', maxInputPixels: 100 });
    await expect(small.extract({ rgb: pattern(11, 10), width: 11, height: 10 })).rejects.toBeInstanceOf(
      TooLargeError,
    );
    small.dispose();
  });

  it('refuses extreme strips before tfjs sees them (16000000×1 corrupted the wasm module), and keeps working', async () => {
    expect(backbone.limits).toEqual({ maxPixels: 4096 * 4096, maxSide: 8192, maxAspect: 32 });
    const strip = new Uint8Array(16_000_000 * 3);
    for (const [width, height] of [
      [16_000_000, 1],
      [1, 16_000_000],
    ]) {
      const err = await backbone.extract({ rgb: strip, width, height }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidInputError);
      expect(err).toMatchObject({ field: 'image', status: 400 });
      expect((err as Error).message).toMatch(/aspect ratio 16000000:1 is over the backbone's limit of 32:1/);
    }
    const fm = await backbone.extract({ rgb: pattern(64, 48), width: 64, height: 48 });
    expect(fm.shape).toEqual([1, 256, 3, 4]);
  });

  it('checkBackboneInput: aspect (400), side and pixels (413, suggesting maxSide), the sizes named', () => {
    const limits = { maxPixels: 1000, maxSide: 100, maxAspect: 4 };
    expect(() => checkBackboneInput(limits, { width: 40, height: 10 })).not.toThrow();
    expect(() => checkBackboneInput(limits, { width: 10, height: 40 })).not.toThrow();
    expect(() => checkBackboneInput(limits, { width: 41, height: 10 })).toThrow(InvalidInputError);
    expect(() => checkBackboneInput(limits, { width: 10, height: 41 })).toThrow(/41:1|4\.1:1/);
    const side = (() => {
      try {
        checkBackboneInput(limits, { width: 101, height: 30 });
      } catch (e) {
        return e as TooLargeError;
      }
    })();
    expect(side).toBeInstanceOf(TooLargeError);
    expect(side?.message).toMatch(
      /101×30: its longer side is over the backbone's limit of 100 pixels.*maxSide/,
    );
    expect(side?.field).toBe('image');
    expect(() =>
      checkBackboneInput(limits, { width: 40, height: 30, originalWidth: 400, originalHeight: 300 }),
    ).toThrow(
      /400×300 \(40×30 after resizing\): 1200 pixels, over the backbone's limit of 1000; send maxSide: 36 \(or less\)/,
    );
  });

  it('fittingMaxSide: the largest maxSide whose resize (each side rounded) fits the limits', () => {
    const limits = { maxPixels: 1000, maxSide: 100, maxAspect: 4 };
    expect(fittingMaxSide(400, 300, limits)).toBe(36); // 36×27 = 972; 37×28 = 1036
    expect(fittingMaxSide(300, 400, limits)).toBe(36);
    expect(fittingMaxSide(1000, 10, { ...limits, maxPixels: 1e6 })).toBe(100); // the side limit
    for (const [w, h] of [
      [5000, 4000],
      [4097, 4097],
      [9999, 3333],
    ]) {
      const big = { maxPixels: 4096 * 4096, maxSide: 8192, maxAspect: 32 };
      const m = fittingMaxSide(w, h, big);
      const fit = (side: number) =>
        Math.round((w * side) / Math.max(w, h)) * Math.round((h * side) / Math.max(w, h));
      expect(fit(m)).toBeLessThanOrEqual(big.maxPixels);
      expect(fit(m + 1)).toBeGreaterThan(big.maxPixels);
    }
  });

  it('refuses a stride other than 16 for the built-in net', async () => {
    await expect(loadBackbone({ stride: 8 })).rejects.toThrow(/stride 16.*8/);
  });
});

describe('built-in backbone: description', () => {
  const description = () => backbone.describe();

  it('reports totals that match tfjs own parameter count and the shapes tfjs computes', () => {
    const d = description();
    expect(d).toMatchObject({
      stride: 16,
      outputChannels: 256,
      inputChannels: 3,
      referenceInput: [224, 224],
    });
    expect(d.backend).toBe('wasm');
    const model = buildLayersModel();
    expect(d.totalParams).toBe(model.countParams());
    // Shapes: run every layer once at 224×224 with tfjs and compare (NHWC → logical NCHW).
    const layers = model.layers.slice(1);
    const probe = tf.tidy(() => {
      const outs = tf
        .model({ inputs: model.inputs, outputs: layers.map((l) => l.output as tf.SymbolicTensor) })
        .predict(tf.zeros([1, 224, 224, 3])) as tf.Tensor[];
      return outs.map((t) => t.shape);
    });
    for (let i = 0; i < layers.length; i++) {
      const [n, h, w, c] = probe[i];
      const row = d.layers.find((l) => l.name === layers[i].name)!;
      expect(row.outputShape).toEqual([n, c, h, w]);
    }
    model.dispose();
    expect(d.layers[d.layers.length - 1].outputShape).toEqual([1, 256, 14, 14]);
  });

  it('counts multiply-adds as out·k²·Cin·Cout (the issue example: 120.4 M direct vs 12.4 M behind a 16-ch 1×1)', () => {
    expect(convMultiplyAdds(28, 28, 5, 192, 32)).toBe(120_422_400);
    expect(convMultiplyAdds(28, 28, 1, 192, 16) + convMultiplyAdds(28, 28, 5, 16, 32)).toBe(12_443_648);
    const d = description();
    const row = (name: string) => d.layers.find((l) => l.name === name)!;
    // inception3a/5x5 at 28×28: 8 → 16 behind the bottleneck, 32 → 16 without it.
    expect(row('inception3a/5x5').multiplyAdds).toBe(28 * 28 * 25 * 8 * 16);
    expect(row('inception3a/5x5').multiplyAddsWithoutBottleneck).toBe(28 * 28 * 25 * 32 * 16);
    for (const block of ['inception3a', 'inception4a']) {
      for (const branch of ['3x3', '5x5']) {
        const conv = row(`${block}/${branch}`);
        const reduce = row(`${block}/${branch}_reduce`);
        expect(conv.multiplyAdds + reduce.multiplyAdds).toBeLessThan(conv.multiplyAddsWithoutBottleneck!);
      }
    }
    expect(row('conv1')).toMatchObject({
      params: 5 * 5 * 3 * 16 + 16,
      multiplyAdds: 112 * 112 * 25 * 3 * 16,
    });
    expect(d.totalMultiplyAdds).toBe(d.layers.reduce((s, l) => s + l.multiplyAdds, 0));
  });

  it('reports the receptive field (hand-computed: 137 px) and the stride of every layer', () => {
    // r += (k − 1)·jump: conv1 5 (j2), pool1 9 (j4), conv2 17, pool2 25 (j8), 3a 5×5 57, pool3 73 (j16), 4a 5×5 137.
    const d = description();
    expect(d.receptiveField).toBe(137);
    const rf = Object.fromEntries(d.layers.map((l) => [l.name, [l.receptiveField, l.totalStride]]));
    expect(rf['conv1']).toEqual([5, 2]);
    expect(rf['pool2']).toEqual([25, 8]);
    expect(rf['inception3a/output']).toEqual([57, 8]);
    expect(rf['pool3']).toEqual([73, 16]);
  });

  it('describes shapes at any reference size with ceil(in/stride)', () => {
    const rows = describeNetwork(BUILTIN_NETWORK, [480, 640]);
    expect(rows[rows.length - 1].outputShape).toEqual([1, 256, 30, 40]);
  });
});

describe('conv1: fixed, interpretable filters', () => {
  /** conv1 + ReLU at the centre pixel of a 9×9 image, normalised like the backbone (v/255 − 0.5). */
  function conv1At(draw: (x: number, y: number) => [number, number, number]): number[] {
    return tf.tidy(() => {
      const data = new Float32Array(9 * 9 * 3);
      for (let y = 0; y < 9; y++)
        for (let x = 0; x < 9; x++) draw(x, y).forEach((v, c) => (data[(y * 9 + x) * 3 + c] = v / 255 - 0.5));
      const input = tf.tensor4d(data, [1, 9, 9, 3]);
      const kernel = tf.tensor4d(conv1Kernel(), [5, 5, 3, 16]);
      const out = tf.relu(tf.conv2d(input, kernel, 1, 'same'));
      return Array.from(out.slice([0, 4, 4, 0], [1, 1, 1, 16]).dataSync());
    });
  }
  const argmax = (v: number[]) => v.indexOf(Math.max(...v));

  it('has 16 named filters, each summing to zero (insensitive to the input offset)', () => {
    expect(CONV1_FILTERS).toHaveLength(16);
    const k = conv1Kernel();
    for (let o = 0; o < 16; o++) {
      let sum = 0;
      for (let i = o; i < k.length; i += 16) sum += k[i];
      expect(Math.abs(sum)).toBeLessThan(1e-6);
    }
  });

  it('responds ≈ 1 to a full-contrast step with the edge filter of that orientation only', () => {
    const leftDark = conv1At((x) => (x >= 4.5 ? [255, 255, 255] : [0, 0, 0]));
    expect(argmax(leftDark)).toBe(0);
    expect(leftDark[0]).toBeCloseTo(1, 1);
    expect(leftDark[4]).toBe(0); // opposite polarity is rectified away
    const topLight = conv1At((_, y) => (y >= 4.5 ? [0, 0, 0] : [255, 255, 255]));
    expect(argmax(topLight)).toBe(6); // edge 270°: light top, dark bottom
    expect(CONV1_FILTERS[6]).toMatch(/light top, dark bottom/);
  });

  it('finds bars and colour opponents', () => {
    const horizontalLine = conv1At((_, y) => (y === 4 ? [255, 255, 255] : [0, 0, 0]));
    expect(argmax(horizontalLine)).toBe(10);
    expect(CONV1_FILTERS[10]).toBe('light bar, horizontal');
    const red = conv1At(() => [255, 0, 0]);
    expect(argmax(red)).toBe(12);
    expect(red[12]).toBeCloseTo(1, 5);
    const blue = conv1At(() => [0, 0, 255]);
    expect(argmax(blue)).toBe(14);
    expect(blue.slice(0, 12).every((v) => Math.abs(v) < 1e-6)).toBe(true); // uniform → no edges or bars
  });
});

const PINNED_FIRST_WEIGHT = 0.019831568002700806;
const PINNED_CHECKSUM = 106.50053345942206;

/**
 * "Bring your own backbone": models the tests build and save to a temp dir themselves (model.json +
 * weights.bin written with fs through tf.io.withSaveHandler; no tfjs-node, no network).
 */
import { mkdtemp, mkdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import { checkBackboneInput, loadBackbone } from '../../src/backbone/index.js';
import { initTensorFlow, tf } from '../../src/backbone/tf.js';
import { maxAbsDiff } from '../support/compare.js';

let root: string;
beforeAll(async () => {
  await initTensorFlow({ backend: 'wasm' });
  root = await mkdtemp(join(tmpdir(), 'roiserve-user-model-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Saves a LayersModel as `dir/model.json` + `dir/weights.bin`. */
async function saveLayersModel(model: tf.LayersModel, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weightData = artifacts.weightData!;
      const bytes = Array.isArray(weightData) ? tf.io.CompositeArrayBuffer.join(weightData) : weightData;
      const modelJson = {
        modelTopology: artifacts.modelTopology,
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
      };
      await writeFile(join(dir, 'model.json'), JSON.stringify(modelJson));
      await writeFile(join(dir, 'weights.bin'), Buffer.from(bytes));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
}

/** Two 3×3 stride-2 convs: stride 4, 16 channels. Seeded initialisers so the test is repeatable. */
function twoConvModel(inputShape: [number | null, number | null, number] = [null, null, 3]): tf.LayersModel {
  const input = tf.input({ shape: inputShape });
  const c1 = tf.layers
    .conv2d({
      name: 'c1',
      filters: 8,
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      activation: 'relu',
      kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
    })
    .apply(input) as tf.SymbolicTensor;
  const c2 = tf.layers
    .conv2d({
      name: 'c2',
      filters: 16,
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
    })
    .apply(c1) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: c2 });
}

function image(width: number, height: number) {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = Math.imul(i + 7, 2654435761) >>> 24;
  return { rgb, width, height };
}

describe('user LayersModel from a directory', () => {
  let dir: string;
  let original: tf.LayersModel;
  beforeAll(async () => {
    dir = join(root, 'layers');
    original = twoConvModel();
    await saveLayersModel(original, dir);
  });
  afterAll(() => original.dispose());

  it('loads from disk and computes what the saved model computes, input scaled to [0, 1]', async () => {
    const backbone = await loadBackbone({ modelDir: dir, stride: 4 });
    expect([backbone.name, backbone.stride, backbone.channels]).toEqual(['user:layers', 4, 16]);
    const img = image(37, 29);
    const features = await backbone.extract(img);
    expect(features.shape).toEqual([1, 16, 8, 10]);
    expect(features.layout).toBe('NHWC');
    const expected = tf.tidy(() =>
      (
        original.predict(
          tf.tensor4d(
            Float32Array.from(img.rgb, (v) => v / 255),
            [1, 29, 37, 3],
          ),
        ) as tf.Tensor
      ).dataSync(),
    );
    expect(maxAbsDiff(features.data, expected)).toBeLessThanOrEqual(1e-6);
    backbone.dispose();
  });

  it('describes the layers with shapes, params and multiply-adds at the probe size', async () => {
    const backbone = await loadBackbone({ modelDir: dir, stride: 4 });
    const d = backbone.describe();
    expect(d.referenceInput).toEqual([64, 64]);
    expect(d.totalParams).toBe(original.countParams());
    const c1 = d.layers.find((l) => l.name === 'c1')!;
    const c2 = d.layers.find((l) => l.name === 'c2')!;
    expect(c1).toMatchObject({
      outputShape: [1, 8, 32, 32],
      params: 3 * 3 * 3 * 8 + 8,
      multiplyAdds: 32 * 32 * 9 * 3 * 8,
    });
    expect(c2).toMatchObject({
      outputShape: [1, 16, 16, 16],
      multiplyAdds: 16 * 16 * 9 * 8 * 16,
      totalStride: 4,
    });
    expect(d.receptiveField).toBe(7); // 1 + 2·1 + 2·2
    backbone.dispose();
  });

  it('reads an intermediate layer named as output node (stride 2)', async () => {
    const backbone = await loadBackbone({ modelDir: dir, outputNode: 'c1', stride: 2 });
    expect(backbone.channels).toBe(8);
    expect((await backbone.extract(image(20, 10))).shape).toEqual([1, 8, 5, 10]);
    backbone.dispose();
  });

  it('refuses a stride mismatch, an unknown output node, with clear messages', async () => {
    await expect(loadBackbone({ modelDir: dir, stride: 8 })).rejects.toThrow(
      /stride mismatch: input 128×128 gives 32×32.*stride 8 expects 16×16/,
    );
    await expect(loadBackbone({ modelDir: dir, stride: 16 })).rejects.toThrow(/stride mismatch/);
    await expect(loadBackbone({ modelDir: dir, stride: 4, outputNode: 'nope' })).rejects.toThrow(
      /no layer named 'nope'.*c1, c2/,
    );
  });

  it('does not leak tensors over repeated passes', async () => {
    const backbone = await loadBackbone({ modelDir: dir, stride: 4 });
    await backbone.extract(image(16, 16));
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) await backbone.extract(image(16, 16));
    expect(tf.memory().numTensors).toBe(before);
    backbone.dispose();
  });

  it('refuses a model whose output is not rank 4', async () => {
    const input = tf.input({ shape: [null, null, 3] });
    const conv = tf.layers
      .conv2d({ filters: 4, kernelSize: 3, strides: 2 })
      .apply(input) as tf.SymbolicTensor;
    const pooled = tf.layers.globalAveragePooling2d({}).apply(conv) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: pooled });
    const flatDir = join(root, 'flat');
    await saveLayersModel(model, flatDir);
    model.dispose();
    await expect(loadBackbone({ modelDir: flatDir, stride: 2 })).rejects.toThrow(/rank 4.*\[1, 4\]/);
  });

  it('honours a fixed input size: probes with it, refuses other sizes with 400', async () => {
    const model = twoConvModel([32, 32, 3]);
    const fixedDir = join(root, 'fixed');
    await saveLayersModel(model, fixedDir);
    model.dispose();
    const backbone = await loadBackbone({ modelDir: fixedDir, stride: 4 });
    expect((await backbone.extract(image(32, 32))).shape).toEqual([1, 16, 8, 8]);
    await expect(backbone.extract(image(40, 32))).rejects.toBeInstanceOf(InvalidInputError);
    // The fixed size is one of its limits, so the pipeline refuses other sizes from the image header.
    expect(backbone.limits.fixedSize).toEqual([32, 32]);
    expect(() =>
      checkBackboneInput(backbone.limits, { width: 64, height: 64, originalWidth: 640, originalHeight: 640 }),
    ).toThrow(/takes 32×32 images, got 640×640 \(64×64 after resizing\)/);
    backbone.dispose();
  });
});

describe('user model files', () => {
  it('refuses a missing directory / model.json', async () => {
    await expect(loadBackbone({ modelDir: join(root, 'does-not-exist') })).rejects.toThrow(
      /cannot read .*model\.json \(ENOENT\)/,
    );
  });

  it('refuses a missing weight shard and a shard path leaving the directory', async () => {
    const dir = join(root, 'broken');
    const model = twoConvModel();
    await saveLayersModel(model, dir);
    model.dispose();
    const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
    json.weightsManifest[0].paths = ['../layers/weights.bin'];
    await writeFile(join(dir, 'model.json'), JSON.stringify(json));
    await expect(loadBackbone({ modelDir: dir, stride: 4 })).rejects.toThrow(/points outside/);
    json.weightsManifest[0].paths = ['weights.bin'];
    await writeFile(join(dir, 'model.json'), JSON.stringify(json));
    await unlink(join(dir, 'weights.bin'));
    await expect(loadBackbone({ modelDir: dir, stride: 4 })).rejects.toThrow(
      /cannot read weight shard .*weights\.bin/,
    );
  });

  it('refuses model.json that is not JSON', async () => {
    const dir = join(root, 'garbage');
    await mkdir(dir);
    await writeFile(join(dir, 'model.json'), '{ nope');
    await expect(loadBackbone({ modelDir: dir })).rejects.toThrow(/not valid JSON/);
  });
});

describe('user GraphModel from a directory', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const dims = (shape: number[]) => ({ dim: shape.map((size) => ({ size: String(size) })) });
  const conv = (name: string, input: string, weight: string) => ({
    name,
    op: 'Conv2D',
    input: [input, weight],
    attr: {
      T: { type: 'DT_FLOAT' },
      strides: { list: { i: ['1', '2', '2', '1'] } },
      padding: { s: b64('SAME') },
      data_format: { s: b64('NHWC') },
      dilations: { list: { i: ['1', '1', '1', '1'] } },
    },
  });
  const w1 = Float32Array.from({ length: 3 * 3 * 3 * 4 }, (_, i) => Math.sin(i) * 0.3);
  const w2 = Float32Array.from({ length: 3 * 3 * 4 * 6 }, (_, i) => Math.cos(i) * 0.2);

  /** A hand-written TF graph (as tfjs-converter writes it): Conv2D/2 → Relu → Conv2D/2. */
  async function saveGraphModel(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    const modelJson = {
      format: 'graph-model',
      generatedBy: 'roiserve tests',
      convertedBy: 'hand',
      modelTopology: {
        node: [
          {
            name: 'image',
            op: 'Placeholder',
            attr: { dtype: { type: 'DT_FLOAT' }, shape: { shape: dims([-1, -1, -1, 3]) } },
          },
          {
            name: 'w1',
            op: 'Const',
            attr: {
              value: { tensor: { dtype: 'DT_FLOAT', tensorShape: dims([3, 3, 3, 4]) } },
              dtype: { type: 'DT_FLOAT' },
            },
          },
          {
            name: 'w2',
            op: 'Const',
            attr: {
              value: { tensor: { dtype: 'DT_FLOAT', tensorShape: dims([3, 3, 4, 6]) } },
              dtype: { type: 'DT_FLOAT' },
            },
          },
          conv('conv1', 'image', 'w1'),
          { name: 'relu1', op: 'Relu', input: ['conv1'], attr: { T: { type: 'DT_FLOAT' } } },
          conv('conv2', 'relu1', 'w2'),
        ],
        library: {},
        versions: {},
      },
      weightsManifest: [
        {
          paths: ['group1-shard1of1.bin'],
          weights: [
            { name: 'w1', shape: [3, 3, 3, 4], dtype: 'float32' },
            { name: 'w2', shape: [3, 3, 4, 6], dtype: 'float32' },
          ],
        },
      ],
    };
    await writeFile(join(dir, 'model.json'), JSON.stringify(modelJson));
    await writeFile(
      join(dir, 'group1-shard1of1.bin'),
      Buffer.concat([Buffer.from(w1.buffer), Buffer.from(w2.buffer)]),
    );
  }

  it('loads, checks stride 4 and matches the same convolutions done with tf ops', async () => {
    const dir = join(root, 'graph');
    await saveGraphModel(dir);
    const backbone = await loadBackbone({ modelDir: dir, stride: 4 });
    expect(backbone.channels).toBe(6);
    const img = image(23, 18);
    const features = await backbone.extract(img);
    expect(features.shape).toEqual([1, 6, 5, 6]);
    const expected = tf.tidy(() => {
      const x = tf.tensor4d(
        Float32Array.from(img.rgb, (v) => v / 255),
        [1, 18, 23, 3],
      );
      const h = tf.relu(tf.conv2d(x, tf.tensor4d(w1, [3, 3, 3, 4]), 2, 'same'));
      return tf.conv2d(h, tf.tensor4d(w2, [3, 3, 4, 6]), 2, 'same').dataSync();
    });
    expect(maxAbsDiff(features.data, expected)).toBeLessThanOrEqual(1e-6);
    // Reading the intermediate node gives stride 2.
    const relu = await loadBackbone({ modelDir: dir, stride: 2, outputNode: 'relu1' });
    expect((await relu.extract(img)).shape).toEqual([1, 4, 9, 12]);
    expect(backbone.describe()).toMatchObject({
      totalParams: w1.length + w2.length,
      stride: 4,
      outputChannels: 6,
    });
    const before = tf.memory().numTensors;
    for (let i = 0; i < 10; i++) await backbone.extract(img);
    expect(tf.memory().numTensors).toBe(before);
    relu.dispose();
    backbone.dispose();
    await expect(loadBackbone({ modelDir: dir, stride: 16 })).rejects.toThrow(/stride mismatch/);
  });
});

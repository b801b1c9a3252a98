/**
 * BACKBONE_DIR with a model.onnx: an FPN-like model the test builds itself with onnx-proto (an
 * independent protobuf writer), and torchvision's ResNet-18 FPN exported by torch.onnx.export (Debian's
 * python3-torchvision, random seeded weights): image in → multi-level RoI Align out equals torchvision's
 * `MultiScaleRoIAlign` on the same model's features of the same image (≤ 1e-4 relative).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBackbone } from '../../src/backbone/index.js';
import { initTensorFlow } from '../../src/backbone/tf.js';
import { inferStride } from '../../src/backbone/user-onnx.js';
import sharp from 'sharp';
import { multiScaleRoi } from '../../src/ops/index.js';
import { buildApp } from '../../src/server.js';
import { readNpy } from '../../src/tensors/npy.js';
import { relativeMaxDiff } from '../support/compare.js';
import { testConfig } from '../support/fixtures.js';
import { b64, fromB64, runOracleScript } from '../oracle/script.js';
import { debianPython } from '../support/python.js';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

let root: string;
beforeAll(async () => {
  await initTensorFlow({ backend: 'wasm' });
  root = mkdtempSync(join(tmpdir(), 'roiserve-user-onnx-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Seeded values in [-0.5, 0.5). */
function seeded(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

const tensor = (name: string, dims: number[], values: Float32Array): onnxProto.onnx.ITensorProto => ({
  name,
  dims,
  dataType: FLOAT,
  rawData: new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)),
});
const ints = (name: string, v: number[]) => ({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: v });

interface Spec {
  /** Stride of the first and second conv (default 4 and 2: levels at strides 4 and 8). */
  strides?: [number, number];
  /** Output order: `fine-first` (default) or `coarse-first`. */
  order?: 'fine-first' | 'coarse-first';
  /** `single`: only the first level; `int64`: the first level cast to int64; `flat`: flattened. */
  variant?: 'pyramid' | 'single' | 'int64' | 'flat';
}

/** Writes `<root>/<name>/model.onnx`: image → conv 3×3/s0 (3 → 4) + Relu = f0 → conv 3×3/s1 (4 → 4) = f1. */
function writeModel(name: string, spec: Spec = {}): string {
  const [s0, s1] = spec.strides ?? [4, 2];
  const nodes: onnxProto.onnx.INodeProto[] = [
    {
      opType: 'Conv',
      input: ['image', 'w0', 'b0'],
      output: ['c0'],
      attribute: [ints('kernel_shape', [3, 3]), ints('strides', [s0, s0]), ints('pads', [1, 1, 1, 1])],
    },
    { opType: 'Relu', input: ['c0'], output: ['f0'] },
    {
      opType: 'Conv',
      input: ['f0', 'w1', 'b1'],
      output: ['f1'],
      attribute: [ints('kernel_shape', [3, 3]), ints('strides', [s1, s1]), ints('pads', [1, 1, 1, 1])],
    },
  ];
  let outputs = ['f0', 'f1'];
  const variant = spec.variant ?? 'pyramid';
  if (variant === 'single') outputs = ['f0'];
  if (variant === 'int64') {
    nodes.push({
      opType: 'Cast',
      input: ['f0'],
      output: ['g0'],
      attribute: [
        { name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: onnx.TensorProto.DataType.INT64 },
      ],
    });
    outputs = ['g0'];
  }
  if (variant === 'flat') {
    nodes.push({ opType: 'Flatten', input: ['f0'], output: ['g0'] });
    outputs = ['g0'];
  }
  if (spec.order === 'coarse-first') outputs.reverse();
  const model = onnx.ModelProto.create({
    irVersion: 7,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'test_fpn',
      node: nodes,
      initializer: [
        tensor('w0', [4, 3, 3, 3], seeded(108, 1)),
        tensor('b0', [4], seeded(4, 2)),
        tensor('w1', [4, 4, 3, 3], seeded(144, 3)),
        tensor('b1', [4], seeded(4, 4)),
      ],
      input: [
        {
          name: 'image',
          type: {
            tensorType: {
              elemType: FLOAT,
              shape: { dim: [{ dimValue: 1 }, { dimValue: 3 }, { dimParam: 'H' }, { dimParam: 'W' }] },
            },
          },
        },
      ],
      output: outputs.map((o) => ({
        name: o,
        type: { tensorType: { elemType: variant === 'int64' ? onnx.TensorProto.DataType.INT64 : FLOAT } },
      })),
    },
  });
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), onnx.ModelProto.encode(model).finish());
  return dir;
}

function gradient(width: number, height: number): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = Math.imul(i + 7, 2654435761) >>> 24;
  return rgb;
}

describe('BACKBONE_DIR/model.onnx: a pyramid the test builds', () => {
  const mean = [0.485, 0.456, 0.406] as const;
  const std = [0.229, 0.224, 0.225] as const;

  it('loads as a pyramid (strides inferred 4, 8), and its levels are ORT on (RGB/255 − mean)/std zero-padded to 32', async () => {
    const dir = writeModel('fpn');
    const backbone = await loadBackbone({ modelDir: dir, mean, std, sizeDivisibility: 32 });
    try {
      expect(backbone).toMatchObject({ name: 'user:fpn', stride: 4, channels: 4, engine: 'onnx' });
      expect(backbone.pyramid?.strides).toEqual([4, 8]);
      expect(backbone.describe()).toMatchObject({
        engine: 'onnx',
        engineReason: expect.stringMatching(/^onnx: auto: BACKBONE_DIR holds model.onnx; ONNX Runtime \d/),
        pyramid: { strides: [4, 8], channels: 4 },
      });
      const [width, height] = [50, 37];
      const rgb = gradient(width, height);
      const levels = await backbone.pyramid!.extract({ rgb, width, height });
      // The expected input, written out here: 64×64, zeros beyond 50×37.
      const input = new Float32Array(3 * 64 * 64);
      for (let c = 0; c < 3; c++)
        for (let y = 0; y < height; y++)
          for (let x = 0; x < width; x++) {
            const v = Math.fround(rgb[3 * (y * width + x) + c] / 255);
            input[c * 4096 + y * 64 + x] = Math.fround(
              Math.fround(v - Math.fround(mean[c])) / Math.fround(std[c]),
            );
          }
      const session = await ort.InferenceSession.create(join(dir, 'model.onnx'));
      const out = await session.run({ image: new ort.Tensor('float32', input, [1, 3, 64, 64]) });
      await session.release();
      expect(levels.map((l) => [...l.shape])).toEqual([
        [1, 4, 16, 16],
        [1, 4, 8, 8],
      ]);
      expect(levels.every((l) => l.layout === 'NCHW')).toBe(true);
      expect(levels[0].data).toEqual(out.f0.data);
      expect(levels[1].data).toEqual(out.f1.data);
      // Without the pyramid, image requests read the finest level.
      expect((await backbone.extract({ rgb, width, height })).data).toEqual(out.f0.data);
      expect(backbone.onnxModel()?.length).toBeGreaterThan(1000);
    } finally {
      backbone.dispose();
    }
  });

  it('a single output is a single map; BACKBONE_STRIDE is checked against it', async () => {
    const dir = writeModel('single', { variant: 'single' });
    const backbone = await loadBackbone({ modelDir: dir });
    expect(backbone.stride).toBe(4);
    expect(backbone.pyramid).toBeUndefined();
    backbone.dispose();
    await expect(loadBackbone({ modelDir: dir, stride: 16 })).rejects.toThrow(
      /output stride 4 \(f0 \[1, 4, 40, 56\] from \[1, 3, 160, 224\]\) differs from BACKBONE_STRIDE 16/,
    );
  });

  it('refuses to start, saying what it found, for outputs that are not float32 4-D, odd strides, or the wrong order', async () => {
    await expect(loadBackbone({ modelDir: writeModel('int64', { variant: 'int64' }) })).rejects.toThrow(
      /probe pass on \[1, 3, 160, 224\] failed: ONNX output 'g0' is int64 \[1, 4, 40, 56\], expected float32 \[1, C, H, W\]/,
    );
    await expect(loadBackbone({ modelDir: writeModel('flat', { variant: 'flat' }) })).rejects.toThrow(
      /ONNX output 'g0' is float32 \[1, 8960\], expected float32 \[1, C, H, W\]/,
    );
    await expect(loadBackbone({ modelDir: writeModel('s3', { strides: [3, 2] }) })).rejects.toThrow(
      /gives f0 \[1, 4, 54, 75\], f1 \[1, 4, 27, 38\]: not a power-of-two stride/,
    );
    await expect(loadBackbone({ modelDir: writeModel('coarse', { order: 'coarse-first' }) })).rejects.toThrow(
      /finest first \(increasing strides\), found strides 8, 4/,
    );
    await expect(loadBackbone({ modelDir: writeModel('fpn2'), strides: [4, 8, 16] })).rejects.toThrow(
      /BACKBONE_STRIDES gives 3 strides for 2 outputs/,
    );
    await expect(loadBackbone({ modelDir: join(root, 'fpn2'), engine: 'tfjs' })).rejects.toThrow(
      /model\.json/,
    );
    // BACKBONE_ENGINE=onnx with a directory that has no model.onnx (a tfjs model's, say).
    const tfjsDir = join(root, 'tfjs-only');
    mkdirSync(tfjsDir, { recursive: true });
    await expect(loadBackbone({ modelDir: tfjsDir, engine: 'onnx' })).rejects.toThrow(
      /BACKBONE_ENGINE=onnx needs .*tfjs-only\/model\.onnx; that directory has none/,
    );
  });

  it('infers strides as torchvision does: 2^round(log2(input / map)), only when the map fits on both axes', () => {
    expect(inferStride([160, 224], [40, 56])).toBe(4);
    expect(inferStride([97, 131], [7, 9])).toBe(16); // ceil(97 / 16), ceil(131 / 16)
    expect(inferStride([96, 128], [6, 8])).toBe(16);
    expect(inferStride([96, 128], [32, 43])).toBeUndefined(); // stride 3
    expect(inferStride([96, 128], [12, 32])).toBeUndefined(); // the axes disagree
  });
});

const haveTorch = debianPython({
  modules: ['torch', 'torchvision'],
  packages: ['python3-torchvision'],
  what: 'ResNet-FPN ONNX vs torchvision',
});

describe.runIf(haveTorch)("torchvision's ResNet-18 FPN exported to ONNX", () => {
  it(
    'image → multi-level RoI Align equals MultiScaleRoIAlign on the same model (≤ 1e-4 relative), in process and over /v1/roi',
    { timeout: 180_000 },
    async () => {
      const [width, height] = [500, 460];
      const rgb = new Uint8Array(width * height * 3);
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++) {
          const o = 3 * (y * width + x);
          rgb[o] = (x * 255) / width;
          rgb[o + 1] = (y * 255) / height;
          rgb[o + 2] = ((x >> 4) + (y >> 4)) % 2 ? 200 : 40; // a checkerboard, so deep levels see edges
        }
      // Boxes on every level 2..5 (sizes ~30 to ~470 px), one across the padded border.
      const boxes = Float32Array.from([
        10, 12, 40, 44, 100, 50, 250, 200, 30, 60, 250, 300, 5, 5, 495, 455, 300, 200, 499, 459, 200, 100,
        320, 180,
      ]);
      const modelDir = join(root, 'resnet18_fpn');
      const mean = [0.485, 0.456, 0.406] as const;
      const std = [0.229, 0.224, 0.225] as const;
      const oracle = runOracleScript('torchvision_fpn_onnx.py', {
        modelDir,
        width,
        height,
        rgb: Buffer.from(rgb).toString('base64'),
        mean,
        std,
        sizeDivisible: 32,
        boxes: b64(boxes),
        outputSize: 7,
        samplingRatio: 2,
      }) as { pooled: string; shape: number[]; shapes: number[][]; scales: number[] };
      const backbone = await loadBackbone({ modelDir, mean, std, sizeDivisibility: 32, engine: 'onnx' });
      try {
        expect(backbone.pyramid?.strides).toEqual([4, 8, 16, 32]);
        expect(oracle.scales).toEqual([1 / 4, 1 / 8, 1 / 16, 1 / 32]);
        const levels = await backbone.pyramid!.extract({ rgb, width, height });
        expect(levels.map((l) => [...l.shape])).toEqual(oracle.shapes);
        const k = boxes.length / 4;
        const rows = new Float32Array(k * 5);
        for (let i = 0; i < k; i++) rows.set(boxes.subarray(4 * i, 4 * i + 4), 5 * i + 1);
        const { output, levels: assigned } = multiScaleRoi(
          'align',
          levels,
          backbone.pyramid!.strides.map((s) => 1 / s),
          { data: rows, count: k },
          { outputSize: 7, samplingRatio: 2, aligned: false },
        );
        expect(new Set(assigned)).toEqual(new Set([2, 3, 4, 5]));
        expect(output.shape).toEqual(oracle.shape);
        const { relative, scale } = relativeMaxDiff(output.data, fromB64(oracle.pooled));
        expect(scale).toBeGreaterThan(0.01);
        expect(relative).toBeLessThanOrEqual(1e-4);
      } finally {
        backbone.dispose();
      }

      // The same through the service: BACKBONE_DIR + the normalization variables, a PNG (lossless, so
      // the worker decodes the same RGB), POST /v1/roi with pyramid: true.
      const app = await buildApp(
        testConfig({
          backboneDir: modelDir,
          backboneMean: [...mean],
          backboneStd: [...std],
          backboneSizeDivisibility: 32,
        }),
      );
      try {
        await app.readiness.settled;
        const png = await sharp(Buffer.from(rgb), { raw: { width, height, channels: 3 } })
          .png()
          .toBuffer();
        const r = await app.inject({
          method: 'POST',
          url: '/v1/roi',
          payload: {
            image: png.toString('base64'),
            boxes: Array.from({ length: boxes.length / 4 }, (_, i) => [...boxes.subarray(4 * i, 4 * i + 4)]),
            ops: ['align'],
            outputSize: 7,
            samplingRatio: 2,
            aligned: false,
            pyramid: true,
            format: 'npy',
          },
        });
        expect(r.statusCode, r.body.slice(0, 300)).toBe(200);
        const served = readNpy(r.rawPayload);
        expect(served.shape).toEqual(oracle.shape);
        const { relative, scale } = relativeMaxDiff(served.data, fromB64(oracle.pooled));
        expect(scale).toBeGreaterThan(0.01);
        expect(relative).toBeLessThanOrEqual(1e-4);
      } finally {
        await app.close();
      }
    },
  );
});

/** Request fixtures of the HTTP tests: a quiet test config, feature-map bodies, small images. */
import sharp from 'sharp';
import { parseConfig, type Config } from '../../src/config.js';
import type { FeatureMap } from '../../src/ops/index.js';
import { encodeFloat32Base64 } from '../../src/tensors/base64.js';
import { mulberry32 } from './random.js';

/** Defaults from an empty environment, one worker, no logs, plus `overrides`. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return parseConfig({}, { logLevel: 'silent', workers: 1, ...overrides });
}

/** A deterministic NCHW feature map `[N, C, H, W]` with values in [-1, 1). */
export function randomMap(shape: [number, number, number, number], seed = 1): FeatureMap {
  const next = mulberry32(seed);
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = next() * 2 - 1;
  return { data, shape, layout: 'NCHW' };
}

/** The JSON `features` field for `fm`: the shape as stored, `[N, H, W, C]` for NHWC. */
export function featuresField(fm: FeatureMap): { shape: number[]; layout: string; data: string } {
  const [n, c, h, w] = fm.shape;
  const shape = fm.layout === 'NHWC' ? [n, h, w, c] : [n, c, h, w];
  return { shape, layout: fm.layout, data: encodeFloat32Base64(fm.data) };
}

/** Decodes a JSON tensor's base64 `data`. */
export function tensorData(tensor: { data: string | number[] }): Float32Array {
  if (Array.isArray(tensor.data)) return Float32Array.from(tensor.data);
  const bytes = Buffer.from(tensor.data, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** A PNG with a few coloured rectangles (so the backbone output is not constant). */
export async function testPng(width = 96, height = 64): Promise<Buffer> {
  const rgb = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      rgb[o] = (x * 255) / width;
      rgb[o + 1] = (y * 255) / height;
      rgb[o + 2] = x > width / 2 && y > height / 3 ? 220 : 30;
    }
  }
  return sharp(rgb, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

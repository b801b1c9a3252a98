/**
 * Makes the input files that the README's curl examples read, so those examples run as written from
 * the repository root (and `test/readme.test.ts` runs every one of them against a live server):
 * - `fixtures/photo.jpg`: a 640×480 street-ish scene (sky, sun, house, tree, car), drawn with SVG.
 *   Small enough (≈ 20 kB) for `base64 -w0 fixtures/photo.jpg` to fit in one command-line argument.
 * - `fixtures/features.npy`: a float32 NCHW feature map `[2, 8, 16, 16]` (N = 2, for the batch-index
 *   example), smooth deterministic values in [-1, 1].
 * - `fixtures/worked-example.f32`: raw little-endian float32 `[1, 8, 16, 16]` for the diff worked example
 *   (512×512 image at stride 32), which the README inlines as base64 into a JSON body.
 *
 * Everything is a pure function of this file (no randomness, no clock), so rerunning it rewrites
 * the same files:   npx tsx scripts/make-readme-fixtures.ts
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { littleEndianBytes } from '../src/tensors/base64.js';
import { writeNpy } from '../src/tensors/npy.js';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));

/** The scene: shapes the backbone responds to, placed under the README's example boxes. */
function sceneSvg(width: number, height: number): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 640 480">
    <defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="#7fb2e5"/><stop offset="1" stop-color="#dcecf8"/></linearGradient></defs>
    <rect width="640" height="300" fill="url(#sky)"/>
    <rect y="300" width="640" height="180" fill="#6b8f4e"/>
    <rect y="380" width="640" height="60" fill="#5a5a5a"/>
    <path d="M0 410H640" stroke="#e8e8e8" stroke-width="4" stroke-dasharray="28 20"/>
    <circle cx="560" cy="70" r="36" fill="#ffd35c"/>
    <rect x="60" y="150" width="200" height="150" fill="#c98b5a"/>
    <path d="M40 155L160 70L280 155Z" fill="#8c3b2e"/>
    <rect x="140" y="230" width="40" height="70" fill="#5b3a24"/>
    <rect x="90" y="180" width="36" height="30" fill="#dff3ff" stroke="#fff" stroke-width="3"/>
    <rect x="200" y="180" width="36" height="30" fill="#dff3ff" stroke="#fff" stroke-width="3"/>
    <rect x="402" y="210" width="16" height="90" fill="#6d4c2f"/>
    <circle cx="410" cy="185" r="46" fill="#2f7d3a"/>
    <circle cx="386" cy="210" r="30" fill="#3b8f46"/>
    <circle cx="436" cy="208" r="32" fill="#2c6e34"/>
    <rect x="320" y="372" width="170" height="42" rx="10" fill="#1f5fa8"/>
    <path d="M350 372L375 342H440L465 372Z" fill="#2b6fbd"/>
    <circle cx="355" cy="416" r="15" fill="#222"/><circle cx="455" cy="416" r="15" fill="#222"/>
  </svg>`;
}

/** A smooth NCHW map: channel `c` of image `n` is a plane wave with its own direction and phase. */
function waves(shape: [number, number, number, number]): Float32Array {
  const [N, C, H, W] = shape;
  const out = new Float32Array(N * C * H * W);
  let i = 0;
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++) {
      const angle = (Math.PI * c) / C + n;
      const kx = Math.cos(angle) * 0.4;
      const ky = Math.sin(angle) * 0.4;
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) out[i++] = Math.sin(kx * x + ky * y + c + n);
    }
  return out;
}

const jpeg = await sharp(Buffer.from(sceneSvg(640, 480)))
  .removeAlpha()
  .jpeg({ quality: 85 })
  .toBuffer();
writeFileSync(join(fixtures, 'photo.jpg'), jpeg);

const featuresShape: [number, number, number, number] = [2, 8, 16, 16];
writeFileSync(join(fixtures, 'features.npy'), writeNpy(waves(featuresShape), featuresShape));

writeFileSync(join(fixtures, 'worked-example.f32'), littleEndianBytes(waves([1, 8, 16, 16])));

console.log(`fixtures: photo.jpg (${jpeg.length} bytes), features.npy, worked-example.f32`);

/**
 * Makes the example diff sheets shown in the README from a generated scene, through the real service
 * (`buildApp` + `inject`, built-in backbone), so they are exactly what `POST /v1/diff` answers:
 * - `docs/diff-image.png`: the scene as `image` (backbone stride 16), four boxes, 7×7 output;
 * - `docs/diff-features.png`: the backbone's features of the scene averaged to stride 32 and sent as
 *   `features` + `imageSize`, with the semantics doc's worked example box, 3×3 output.
 *
 *   npx tsx scripts/make-example-sheets.ts [outDir=docs]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { parseConfig } from '../src/config.js';
import { buildApp } from '../src/server.js';
import { decodeFloat32Base64, encodeFloat32Base64 } from '../src/tensors/base64.js';

/** A 512×512 street-ish scene drawn with SVG shapes (sky, sun, house, tree, car), as PNG. */
async function makeScenePng(width = 512, height = 512): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 512 512">
    <defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="#7fb2e5"/><stop offset="1" stop-color="#dcecf8"/></linearGradient></defs>
    <rect width="512" height="330" fill="url(#sky)"/>
    <rect y="330" width="512" height="182" fill="#6b8f4e"/>
    <rect y="400" width="512" height="60" fill="#5a5a5a"/>
    <path d="M0 430H512" stroke="#e8e8e8" stroke-width="4" stroke-dasharray="28 20"/>
    <circle cx="420" cy="80" r="38" fill="#ffd35c"/>
    <rect x="60" y="200" width="170" height="140" fill="#c98b5a"/>
    <path d="M45 205L145 130L245 205Z" fill="#8c3b2e"/>
    <rect x="125" y="270" width="40" height="70" fill="#5b3a24"/>
    <rect x="80" y="230" width="34" height="30" fill="#dff3ff" stroke="#fff" stroke-width="3"/>
    <rect x="180" y="230" width="34" height="30" fill="#dff3ff" stroke="#fff" stroke-width="3"/>
    <rect x="338" y="250" width="16" height="90" fill="#6d4c2f"/>
    <circle cx="346" cy="225" r="46" fill="#2f7d3a"/>
    <circle cx="322" cy="250" r="30" fill="#3b8f46"/>
    <circle cx="372" cy="248" r="32" fill="#2c6e34"/>
    <rect x="300" y="392" width="170" height="42" rx="10" fill="#1f5fa8"/>
    <path d="M330 392L355 362H420L445 392Z" fill="#2b6fbd"/>
    <circle cx="335" cy="436" r="15" fill="#222"/><circle cx="435" cy="436" r="15" fill="#222"/>
  </svg>`;
  return sharp(Buffer.from(svg)).removeAlpha().png().toBuffer();
}

/** 2×2 average pooling of an NCHW map `[N, C, H, W]` → `[N, C, H/2, W/2]` (stride doubles). */
function halve(data: Float32Array, [N, C, H, W]: number[]): { data: Float32Array; shape: number[] } {
  const h = Math.floor(H / 2);
  const w = Math.floor(W / 2);
  const out = new Float32Array(N * C * h * w);
  for (let p = 0; p < N * C; p++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = p * H * W + 2 * y * W + 2 * x;
        out[p * h * w + y * w + x] = (data[i] + data[i + 1] + data[i + W] + data[i + W + 1]) / 4;
      }
    }
  }
  return { data: out, shape: [N, C, h, w] };
}

async function main(): Promise<void> {
  const outDir = process.argv[2] ?? 'docs';
  mkdirSync(outDir, { recursive: true });
  const png = await makeScenePng();
  const app = await buildApp(parseConfig({}, { logLevel: 'silent', workers: 1 }));
  try {
    await app.readiness.settled;
    const post = async (url: string, payload: Record<string, unknown>) => {
      const r = await app.inject({ method: 'POST', url, payload });
      if (r.statusCode !== 200) throw new Error(`${url}: ${r.statusCode} ${r.body}`);
      return r;
    };

    const imageSheet = await post('/v1/diff', {
      image: png.toString('base64'),
      boxes: [
        [52, 124, 246, 344], // house
        [290, 170, 402, 345], // tree
        [292, 352, 478, 458], // car
        [376, 36, 464, 124], // sun
      ],
      outputSize: 7,
    });
    writeFileSync(join(outDir, 'diff-image.png'), imageSheet.rawPayload);

    const features = (await post('/v1/features', { image: png.toString('base64') })).json<{
      features: { shape: number[]; data: string };
    }>().features;
    const coarse = halve(decodeFloat32Base64(features.data, 'features.data'), features.shape);
    const featuresSheet = await post('/v1/diff', {
      features: { shape: coarse.shape, layout: 'NCHW', data: encodeFloat32Base64(coarse.data) },
      spatialScale: 1 / 32,
      imageSize: [512, 512],
      boxes: [
        [296, 192, 496, 337], // the worked example of docs/semantics.md
        [52, 124, 246, 344],
      ],
      outputSize: 3,
    });
    writeFileSync(join(outDir, 'diff-features.png'), featuresSheet.rawPayload);
    for (const [name, r] of [
      ['diff-image.png', imageSheet],
      ['diff-features.png', featuresSheet],
    ] as const) {
      console.log(
        `wrote ${join(outDir, name)} (${r.rawPayload.length} bytes); Server-Timing: ${r.headers['server-timing']}`,
      );
    }
  } finally {
    await app.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();

/**
 * Makes the example diff sheets shown in the README (`docs/diff-*.png`) from a generated scene.
 *
 *   npx tsx scripts/make-example-sheets.ts [outDir=docs]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { coverage, roiAlign, roiPool, roiWarp, toCanonicalBoxes, type FeatureMap } from '../src/ops/index.js';
import { renderDiff, type DiffRenderInput, type RawImage } from '../src/imaging/render-sheet.js';
import { toPng } from '../src/imaging/render.js';

/** A 512×512 street-ish scene drawn with SVG shapes: sky, sun, house, tree, car. */
export async function makeScene(width = 512, height = 512): Promise<RawImage> {
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
  const { data, info } = await sharp(Buffer.from(svg))
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: 3 };
}

/**
 * A stand-in feature map `[1, 4, H/stride, W/stride]` (NCHW): the image's R, G, B means per cell and
 * their local contrast, so the heatmaps show the scene's structure.
 */
export function featuresFromImage(image: RawImage, stride: number): FeatureMap {
  const H = Math.floor(image.height / stride);
  const W = Math.floor(image.width / stride);
  const C = 4;
  const data = new Float32Array(C * H * W);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const sums = [0, 0, 0];
      let sq = 0;
      for (let dy = 0; dy < stride; dy++) {
        for (let dx = 0; dx < stride; dx++) {
          const o = ((y * stride + dy) * image.width + x * stride + dx) * image.channels;
          for (let c = 0; c < 3; c++) sums[c] += image.data[o + c] / 255;
          const l = (image.data[o] + image.data[o + 1] + image.data[o + 2]) / 765;
          sq += l * l;
        }
      }
      const n = stride * stride;
      for (let c = 0; c < 3; c++) data[c * H * W + y * W + x] = sums[c] / n;
      const mean = (sums[0] + sums[1] + sums[2]) / 3 / n;
      data[3 * H * W + y * W + x] = Math.sqrt(Math.max(0, sq / n - mean * mean)) * 4;
    }
  }
  return { data, shape: [1, C, H, W], layout: 'NCHW' };
}

/** Runs the three ops and coverage on a feature map and boxes: the renderer's input. */
export function diffInput(
  features: FeatureMap,
  rows: number[][],
  spatialScale: number,
  outputSize: [number, number],
  imageSize: [number, number],
  image?: RawImage,
): DiffRenderInput {
  const boxes = toCanonicalBoxes(rows, { batchSize: features.shape[0] });
  const params = { spatialScale, outputSize, samplingRatio: 2, aligned: true, mode: 'avg' as const };
  return {
    image,
    imageSize,
    features,
    spatialScale,
    boxes,
    coverage: rows.map(([x1, y1, x2, y2]) => coverage({ x1, y1, x2, y2 }, { spatialScale, imageSize })),
    pooled: {
      pool: roiPool(features, boxes, params),
      align: roiAlign(features, boxes, params),
      warp: roiWarp(features, boxes, params),
    },
    params,
    channel: 'meanabs',
  };
}

async function main(): Promise<void> {
  const outDir = process.argv[2] ?? 'docs';
  mkdirSync(outDir, { recursive: true });
  const scene = await makeScene();
  const stride = 32;
  const features = featuresFromImage(scene, stride);
  const boxes = [
    [296, 192, 496, 337], // the worked example of docs/roi-semantics.md
    [52, 124, 246, 344], // house
    [296, 356, 474, 454], // car
  ];
  const a = await renderDiff(diffInput(features, boxes, 1 / stride, [3, 3], [512, 512], scene));
  writeFileSync(join(outDir, 'diff-image.png'), await toPng(a.sheet));
  const b = await renderDiff(diffInput(features, boxes, 1 / stride, [7, 7], [512, 512]));
  writeFileSync(join(outDir, 'diff-features.png'), await toPng(b.sheet));
  console.log(
    `wrote ${outDir}/diff-image.png (${a.sheet.width}×${a.sheet.height}), ${outDir}/diff-features.png (${b.sheet.width}×${b.sheet.height})`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await main();

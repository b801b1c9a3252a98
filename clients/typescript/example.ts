// Run from the repository root after npm run build, with a server up:
//   ROISERVE_URL=http://127.0.0.1:8080 npx tsx clients/typescript/example.ts
import { readFile } from 'node:fs/promises';
import { decodeTensor, RoiserveClient, RoiserveError } from 'roiserve/client';
import { roiAlign, toCanonicalBoxes } from 'roiserve/ops';

const rs = new RoiserveClient(process.env.ROISERVE_URL ?? 'http://127.0.0.1:8080', {
  apiKey: process.env.API_KEY,
});

// Over HTTP: an image (bytes or base64) and boxes in image pixels → RoI Align [K, 256, 7, 7].
const image = await readFile('fixtures/photo.jpg');
const res = await rs.roi({ image, boxes: [[96, 56, 224, 144]], ops: ['align'], aligned: false });
console.log(res.outputs.align?.shape, decodeTensor(res.outputs.align!).length); // [ 1, 256, 7, 7 ] 12544

// The same request as a .npy file, and the diff sheet as PNG bytes.
const npy = await rs.roi({ image, boxes: [[96, 56, 224, 144]], ops: ['align'], format: 'npy' });
const sheet = await rs.diff({ image, boxes: [[40, 60, 300, 280]] });
console.log(npy.bytes.length > 0, sheet.contentType); // true image/png

// In-process, without a server (roiserve/ops loads neither fastify, sharp nor tfjs): a 2×2 map.
const map = { data: new Float32Array([1, 2, 3, 4]), shape: [1, 1, 2, 2] as const, layout: 'NCHW' as const };
const boxes = toCanonicalBoxes([[0, 0, 0, 2, 2]], { batchSize: 1 });
console.log(roiAlign(map, boxes, { spatialScale: 1, outputSize: 1, samplingRatio: 1 }).data); // Float32Array(1) [ 2.5 ]

// Errors carry the problem+json fields.
try {
  await rs.roi({ image, boxes: [[96, 56, 224, 144]], outputSize: 0 });
} catch (e) {
  if (e instanceof RoiserveError) console.log(e.status, e.errors[0]?.field); // 400 outputSize
}

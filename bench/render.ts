/**
 * Diff-sheet rendering benchmark: the worker's `/v1/diff` work after the operators, i.e. rendering the
 * sheet and encoding it (`encodeDiff`), for a default request: a 640×480 image, 8 boxes, 7×7 output,
 * the built-in backbone's 256-channel stride-16 map (random values here: the picture's cost does not
 * depend on them), `channel: "meanabs"`, `maxBoxes: 8`. Rows: the PNG sheet (`format: "png"`) and the
 * JSON with its base64 PNGs (`format: "json"`). No peer: the table gives ms per sheet (median wall and
 * CPU after a warm-up); compare runs of two commits side by side.
 */
import { performance } from 'node:perf_hooks';
import { encodeDiff } from '../src/imaging/diff-body.js';
import { boxAt, coverage, roiAlign, roiPool, roiWarp } from '../src/ops/index.js';
import type { Boxes, FeatureMap } from '../src/ops/index.js';
import type { RoiResult } from '../src/core/results.js';
import { boxInside, mulberry32, randomMap } from '../test/support/random.js';

const [WIDTH, HEIGHT] = [640, 480];
const STRIDE = 16;
const CHANNELS = 256;
const BOXES = 8;
const OUT = 7;
const WARMUP = 2;
const RUNS = Number(process.env.BENCH_RUNS ?? 9);

/** A 640×480 RGB scene: gradients and a few flat rectangles (so PNG encoding has real work). */
function scene(): Uint8Array {
  const rgb = new Uint8Array(WIDTH * HEIGHT * 3);
  for (let y = 0; y < HEIGHT; y++) {
    for (let x = 0; x < WIDTH; x++) {
      const o = (y * WIDTH + x) * 3;
      const inRect = (x > 100 && x < 260 && y > 180 && y < 400) || (x > 380 && x < 600 && y > 60 && y < 200);
      rgb[o] = inRect ? 200 : (x * 255) / WIDTH;
      rgb[o + 1] = inRect ? 80 : (y * 255) / HEIGHT;
      rgb[o + 2] = ((x ^ y) & 31) * 4;
    }
  }
  return rgb;
}

/** The `RoiResult` the pipeline would hand `encodeDiff` for the default request. */
export function defaultDiffResult(): RoiResult {
  const rand = mulberry32(7);
  const [H, W] = [HEIGHT / STRIDE, WIDTH / STRIDE];
  const features: FeatureMap = {
    data: randomMap(rand, CHANNELS * H * W, 0, 2),
    shape: [1, CHANNELS, H, W],
    layout: 'NCHW',
  };
  const data = new Float32Array(BOXES * 5);
  for (let k = 0; k < BOXES; k++) {
    data.set([0, ...boxInside(rand, WIDTH, HEIGHT, [40, 260], [40, 200])], 5 * k);
  }
  const boxes: Boxes = { data, count: BOXES };
  const spatialScale = 1 / STRIDE;
  const p = { spatialScale, outputSize: OUT, samplingRatio: 2, aligned: true, outputLayout: 'NCHW' as const };
  return {
    params: {
      ops: ['pool', 'align', 'warp'],
      boxFormat: 'xyxy',
      normalized: false,
      outputSize: [OUT, OUT],
      samplingRatio: 2,
      aligned: true,
      mode: 'avg',
      spatialScale,
      imageSize: undefined,
      maxSide: undefined,
    },
    image: {
      width: WIDTH,
      height: HEIGHT,
      originalWidth: WIDTH,
      originalHeight: HEIGHT,
      scale: 1,
      scaleX: 1,
      scaleY: 1,
      format: 'png',
    },
    rgb: scene(),
    features,
    featureMap: {
      shape: [1, CHANNELS, H, W],
      stride: STRIDE,
      spatialScale,
      source: 'backbone',
      backbone: 'builtin',
      backend: 'wasm',
    },
    boxes,
    opBoxes: boxes,
    outputs: {
      pool: roiPool(features, boxes, p),
      align: roiAlign(features, boxes, p),
      warp: roiWarp(features, boxes, p),
    },
    coverage: Array.from({ length: BOXES }, (_, k) =>
      coverage(boxAt(boxes, k), { spatialScale, imageSize: [WIDTH, HEIGHT] }),
    ),
    warnings: [],
    timings: { decode: 0, backbone: 0, pool: 0, align: 0, warp: 0 },
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export async function runRenderBench(): Promise<void> {
  const result = defaultDiffResult();
  console.log(
    `image ${WIDTH}×${HEIGHT}, ${BOXES} boxes, ${OUT}×${OUT}, map ${CHANNELS}×${HEIGHT / STRIDE}×${WIDTH / STRIDE} ` +
      `(stride ${STRIDE}), channel meanabs; median of ${RUNS} runs after ${WARMUP} warm-up ` +
      `(fonts parsed in the warm-up, as a worker does at start)`,
  );
  const header = ['format', 'ms / sheet', 'CPU ms', 'bytes'];
  const lines: string[][] = [];
  for (const format of ['png', 'json'] as const) {
    const options = { maxBoxes: 8, channel: 'meanabs' as const, format };
    let bytes = 0;
    for (let i = 0; i < WARMUP; i++) bytes = (await encodeDiff(result, options)).body.byteLength;
    const wall: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const c = process.cpuUsage();
      const t = performance.now();
      await encodeDiff(result, options);
      wall.push(performance.now() - t);
      const d = process.cpuUsage(c);
      cpu.push((d.user + d.system) / 1000);
    }
    lines.push([format, median(wall).toFixed(1), median(cpu).toFixed(1), String(bytes)]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log(fmt(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const l of lines) console.log(fmt(l));
  console.log('\nCPU ms can exceed wall ms: libvips rasterises and encodes on its own threads.');
}

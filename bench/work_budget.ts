/**
 * `npm run bench -- budget`: calibrates the work budget (`src/core/work-budget.ts`). For each case, the
 * estimated work units, the measured time of the ops (or the backbone) on this machine, and the
 * nanoseconds per unit: a good cost model keeps that last column roughly constant across cases, and
 * `MAX_WORK × ns/unit` is what the default budget means in seconds of one core here.
 */
import { initTensorFlow, loadBackbone } from '../src/backbone/index.js';
import { psRoiAlign, psRoiPool, roiAlign, roiPool, roiWarp } from '../src/ops/index.js';
import type { AlignMode, Boxes, FeatureMap } from '../src/ops/types.js';
import { estimateWork, multiplyAddsPerPixel, type OpsWorkInput } from '../src/core/work-budget.js';

interface Case {
  name: string;
  C: number;
  H: number;
  W: number;
  K: number;
  /** Box side in map cells (boxes at the top-left, slightly varied). */
  side: number;
  op: 'pool' | 'align' | 'warp' | 'ps_align' | 'ps_pool';
  outputSize: number;
  samplingRatio: number;
  mode: AlignMode;
}

const cases: Case[] = [
  {
    name: 'README normal: align avg',
    C: 256,
    H: 30,
    W: 40,
    K: 1000,
    side: 20,
    op: 'align',
    outputSize: 7,
    samplingRatio: 2,
    mode: 'avg',
  },
  {
    name: 'README normal: pool',
    C: 256,
    H: 30,
    W: 40,
    K: 1000,
    side: 20,
    op: 'pool',
    outputSize: 7,
    samplingRatio: 2,
    mode: 'avg',
  },
  {
    name: 'README normal: warp',
    C: 256,
    H: 30,
    W: 40,
    K: 1000,
    side: 20,
    op: 'warp',
    outputSize: 7,
    samplingRatio: 2,
    mode: 'avg',
  },
  {
    name: 'align max sr2',
    C: 256,
    H: 30,
    W: 40,
    K: 1000,
    side: 20,
    op: 'align',
    outputSize: 7,
    samplingRatio: 2,
    mode: 'max',
  },
  {
    name: 'align avg adaptive',
    C: 64,
    H: 64,
    W: 64,
    K: 500,
    side: 60,
    op: 'align',
    outputSize: 7,
    samplingRatio: 0,
    mode: 'avg',
  },
  {
    name: 'align avg C=1',
    C: 1,
    H: 64,
    W: 64,
    K: 2000,
    side: 30,
    op: 'align',
    outputSize: 7,
    samplingRatio: 2,
    mode: 'avg',
  },
  {
    name: 'hostile: align max sr64 o64 C=1',
    C: 1,
    H: 16,
    W: 16,
    K: 3,
    side: 16,
    op: 'align',
    outputSize: 64,
    samplingRatio: 64,
    mode: 'max',
  },
  {
    name: 'hostile: align max sr64 o64 C=16',
    C: 16,
    H: 16,
    W: 16,
    K: 3,
    side: 16,
    op: 'align',
    outputSize: 64,
    samplingRatio: 64,
    mode: 'max',
  },
  {
    name: 'align avg sr64 o64 C=16',
    C: 16,
    H: 16,
    W: 16,
    K: 20,
    side: 16,
    op: 'align',
    outputSize: 64,
    samplingRatio: 64,
    mode: 'avg',
  },
  {
    name: 'hostile: pool o1 2828² C=1',
    C: 1,
    H: 2828,
    W: 2828,
    K: 10,
    side: 2828,
    op: 'pool',
    outputSize: 1,
    samplingRatio: 2,
    mode: 'avg',
  },
  {
    name: 'pool o7 64² C=256',
    C: 256,
    H: 64,
    W: 64,
    K: 500,
    side: 64,
    op: 'pool',
    outputSize: 7,
    samplingRatio: 2,
    mode: 'avg',
  },
  {
    name: 'pool o64 16² C=4',
    C: 4,
    H: 16,
    W: 16,
    K: 2000,
    side: 16,
    op: 'pool',
    outputSize: 64,
    samplingRatio: 2,
    mode: 'avg',
  },
  // The position-sensitive kernels (plain JavaScript on the map as it lies; PS_TAP_COST): R-FCN-like
  // C = 49 · C_out, 7×7, from cache-friendly to a map that misses the cache on every channel.
  ...[1, 10, 100].flatMap((Cout) =>
    (['ps_align', 'ps_pool'] as const).map((op): Case => ({
      name: `${op} o7 64² C=${49 * Cout}`,
      C: 49 * Cout,
      H: 64,
      W: 64,
      K: 300,
      side: 48,
      op,
      outputSize: 7,
      samplingRatio: 2,
      mode: 'avg',
    })),
  ),
];

function featureMap(C: number, H: number, W: number): FeatureMap {
  const data = new Float32Array(C * H * W);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i);
  return { data, shape: [1, C, H, W], layout: 'NCHW' };
}

function boxes(K: number, side: number): Boxes {
  const data = new Float32Array(5 * K);
  for (let k = 0; k < K; k++) {
    data.set([0, k % 3, k % 2, side - (k % 4), side - (k % 3)], 5 * k);
  }
  return { data, count: K };
}

/** Best of `runs` (the machine may be shared): milliseconds. */
function time(run: () => void, runs = 3): number {
  run();
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    run();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

function row(name: string, units: number, ms: number): void {
  const ns = (ms * 1e6) / units;
  console.log(`| ${name} | ${units.toExponential(2)} | ${ms.toFixed(1)} | ${ns.toFixed(3)} |`);
}

export async function runWorkBudgetBench(): Promise<void> {
  console.log('| case | units | ms | ns/unit |\n| --- | --- | --- | --- |');
  for (const c of cases) {
    const input: OpsWorkInput = {
      boxes: boxes(c.K, c.side),
      mapShape: [1, c.C, c.H, c.W],
      spatialScale: 1,
      ops: [c.op],
      outputSize: [c.outputSize, c.outputSize],
      samplingRatio: c.samplingRatio,
      aligned: true,
      mode: c.mode,
      maxSamplingGrid: 64,
    };
    const units = estimateWork(input).total;
    const fm = featureMap(c.C, c.H, c.W);
    const params = {
      spatialScale: 1,
      outputSize: c.outputSize,
      samplingRatio: c.samplingRatio,
      mode: c.mode,
    };
    const ms = time(() => {
      if (c.op === 'pool') roiPool(fm, input.boxes, params);
      else if (c.op === 'align') roiAlign(fm, input.boxes, params);
      else if (c.op === 'ps_align') psRoiAlign(fm, input.boxes, params);
      else if (c.op === 'ps_pool') psRoiPool(fm, input.boxes, params);
      else roiWarp(fm, input.boxes, params);
    });
    row(c.name, units, ms);
  }
  await initTensorFlow({ backend: 'auto' });
  const backbone = await loadBackbone({});
  await backbone.warmup();
  const perPixel = multiplyAddsPerPixel(backbone.describe());
  for (const side of [512, 1024]) {
    const image = { rgb: new Uint8Array(side * side * 3).fill(128), width: side, height: side };
    let best = Infinity;
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      await backbone.extract(image);
      if (i > 0) best = Math.min(best, performance.now() - t);
    }
    row(`backbone ${side}² (${backbone.name})`, perPixel * side * side, best);
  }
}

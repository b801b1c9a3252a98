/**
 * Operator benchmark: our kernels vs ONNX Runtime (onnxruntime-node, CPU, intra-op threads = 1).
 *
 * Workload (issue 2): X 1×256×50×68 float32 NCHW (an 800×1088 image at stride 16), R = 300 and 1000
 * seeded random boxes with sides of 16–600 px inside the image, output 7×7, spatialScale 1/16,
 * aligned (half_pixel). Rows: RoI Align (sampling ratio 2 and adaptive) vs `RoiAlign`, RoI Pool vs
 * `MaxRoiPool`, RoI Warp vs `RoiAlign` (scale 1) on the integer cell boxes. Ours and ORT alternate after
 * a warm-up; the table shows medians. Our time includes the NCHW→NHWC copy and the output allocation.
 */
import { performance } from 'node:perf_hooks';
import type { InferenceSession } from 'onnxruntime-node';
import {
  mapLevels,
  multiScaleRoi,
  psRoiAlign,
  psRoiPool,
  roiAlign,
  roiPool,
  roiWarp,
  rotatedRoiAlign,
  warpCellBoxes,
} from '../src/ops/index.js';
import type { Boxes, FeatureMap, Pooled, RotatedBoxes } from '../src/ops/index.js';
import {
  createSession,
  maxRoiPoolModel,
  roiAlignModel,
  runMaxRoiPool,
  runRoiAlign,
} from '../test/oracle/ort.js';
import { boxInside, mulberry32, randomMap } from '../test/support/random.js';

const [N, C, H, W] = [1, 256, 50, 68];
const STRIDE = 16;
const SCALE = 1 / STRIDE;
const OUT = 7;
const WARMUP = 3;
const RUNS = Number(process.env.BENCH_RUNS ?? 15);

/** R boxes with sides uniform in [16, 600] px, placed uniformly inside the 1088×800 image. */
function benchBoxes(rand: () => number, R: number): Boxes {
  const imgW = W * STRIDE;
  const imgH = H * STRIDE;
  const data = new Float32Array(R * 5);
  for (let k = 0; k < R; k++) {
    data.set([0, ...boxInside(rand, imgW, imgH, [16, 584], [16, 584])], 5 * k);
  }
  return { data, count: R };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return a.length === b.length ? m : Infinity;
}

interface Timing {
  /** Median wall-clock ms. */
  ours: number;
  ort: number;
  /** Median process CPU ms (user + system): steadier than wall time on a shared machine. */
  oursCpu: number;
  ortCpu: number;
  err: number;
}

interface Row extends Timing {
  op: string;
  R: number;
}

function cpuMs(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
}

async function timePair(ours: () => Pooled, peer: () => Promise<Float32Array>): Promise<Timing> {
  const err = maxAbsDiff(ours().data, await peer());
  for (let i = 0; i < WARMUP; i++) {
    ours();
    await peer();
  }
  const wall: [number[], number[]] = [[], []];
  const cpu: [number[], number[]] = [[], []];
  for (let i = 0; i < RUNS; i++) {
    let c = process.cpuUsage();
    let t = performance.now();
    ours();
    wall[0].push(performance.now() - t);
    cpu[0].push(cpuMs(c));
    c = process.cpuUsage();
    t = performance.now();
    await peer();
    wall[1].push(performance.now() - t);
    cpu[1].push(cpuMs(c));
  }
  return {
    ours: median(wall[0]),
    ort: median(wall[1]),
    oursCpu: median(cpu[0]),
    ortCpu: median(cpu[1]),
    err,
  };
}

export async function runOpsBench(): Promise<void> {
  const rand = mulberry32(2026);
  const x = randomMap(rand, N * C * H * W, 0, 1);
  const input: FeatureMap = { data: x, shape: [N, C, H, W], layout: 'NCHW' };
  const sessions: InferenceSession[] = [];
  const align = async (sr: number, spatialScale = SCALE): Promise<InferenceSession> => {
    const s = await createSession(
      roiAlignModel({
        outputHeight: OUT,
        outputWidth: OUT,
        samplingRatio: sr,
        spatialScale,
        mode: 'avg',
        halfPixel: true,
      }),
    );
    sessions.push(s);
    return s;
  };
  const alignSr2 = await align(2);
  // RoI Warp's peer: RoiAlign at spatial scale 1 on the integer cell boxes (the contract).
  const alignCellsSr2 = await align(2, 1);
  const alignAdaptive = await align(0);
  const pool = await createSession(maxRoiPoolModel(OUT, OUT, SCALE));
  sessions.push(pool);

  console.log(
    `X ${N}×${C}×${H}×${W}, ${OUT}×${OUT}, spatialScale 1/${STRIDE}, boxes 16–600 px; ` +
      `median of ${RUNS} interleaved runs after ${WARMUP} warm-up; ORT intra-op threads = 1`,
  );
  const rows: Row[] = [];
  for (const R of [300, 1000]) {
    const boxes = benchBoxes(rand, R);
    const cells = warpCellBoxes(boxes, SCALE);
    const p = { spatialScale: SCALE, outputSize: OUT };
    const runs: [string, () => Pooled, () => Promise<Float32Array>][] = [
      [
        'RoI Align, sampling 2',
        () => roiAlign(input, boxes, { ...p, samplingRatio: 2 }),
        () => runRoiAlign(alignSr2, x, input.shape, boxes.data, R),
      ],
      [
        'RoI Align, adaptive',
        () => roiAlign(input, boxes, { ...p, samplingRatio: 0 }),
        () => runRoiAlign(alignAdaptive, x, input.shape, boxes.data, R),
      ],
      [
        'RoI Pool vs MaxRoiPool',
        () => roiPool(input, boxes, p),
        () => runMaxRoiPool(pool, x, input.shape, boxes.data, R),
      ],
      [
        'RoI Warp (sampling 2)',
        () => roiWarp(input, boxes, { ...p, samplingRatio: 2 }),
        () => runRoiAlign(alignCellsSr2, x, input.shape, cells.data, R),
      ],
    ];
    for (const [op, ours, peer] of runs) {
      rows.push({ op, R, ...(await timePair(ours, peer)) });
    }
  }
  for (const s of sessions) await s.release();

  const header = ['op', 'R', 'ours ms', 'ORT ms', 'ours/ORT', 'CPU ours/ORT', 'max |diff|'];
  const lines = rows.map((r) => [
    r.op,
    String(r.R),
    r.ours.toFixed(1),
    r.ort.toFixed(1),
    (r.ours / r.ort).toFixed(2),
    (r.oursCpu / r.ortCpu).toFixed(2),
    r.err.toExponential(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log(fmt(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const l of lines) console.log(fmt(l));
  const at1000 = rows.filter((r) => r.R === 1000);
  const worst = Math.max(...at1000.map((r) => r.ours / r.ort));
  const worstCpu = Math.max(...at1000.map((r) => r.oursCpu / r.ortCpu));
  console.log(
    `\nworst ratio at R = 1000: wall ${worst.toFixed(2)}, CPU ${worstCpu.toFixed(2)} ` +
      `(acceptance ≤ 0.8, team goal ≤ 0.5; ms are wall-clock medians, CPU = process user+system time)`,
  );
  psBench(input, rand, rows);
  rotatedBench(input, rand);
  multiScaleBench(input, rand);
}

/**
 * Position-sensitive RoI Align / Pool (issue 13): plain TypeScript loops, no ORT peer (torchvision's
 * `ps_roi_*` is the oracle in test/oracle, not timed here). Same 256-channel map with a 4×4 output
 * (`C_out = 256 / 16 = 16`), R = 1000, next to RoI Align's 7×7 rows above (which read all 256 channels
 * in every bin: 16× the samples of ps_align at the same grid).
 */
function psBench(input: FeatureMap, rand: () => number, rows: Row[]): void {
  const R = 1000;
  const boxes = benchBoxes(rand, R);
  const p = { spatialScale: SCALE, outputSize: 4 };
  const runs: [string, () => Pooled][] = [
    ['PS RoI Align 4×4, sampling 2', () => psRoiAlign(input, boxes, { ...p, samplingRatio: 2 })],
    ['PS RoI Align 4×4, adaptive', () => psRoiAlign(input, boxes, { ...p, samplingRatio: 0 })],
    ['PS RoI Pool 4×4', () => psRoiPool(input, boxes, p)],
  ];
  console.log(
    `\nPosition-sensitive (plain TS, no ORT peer), X ${N}×${C}×${H}×${W}, 4×4 → C_out 16, R = ${R}:`,
  );
  for (const [op, run] of runs) {
    for (let i = 0; i < WARMUP; i++) run();
    const wall: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now();
      run();
      wall.push(performance.now() - t);
    }
    console.log(`| ${op.padEnd(40)} | ${median(wall).toFixed(1).padStart(6)} ms |`);
  }
  for (const r of rows.filter((row) => row.R === R && row.op.startsWith('RoI Align'))) {
    console.log(`| ${`${r.op} (7×7, for scale)`.padEnd(40)} | ${r.ours.toFixed(1).padStart(6)} ms |`);
  }
}

/**
 * Rotated RoI Align (issue 13) next to RoI Align: no ORT peer (ONNX has no rotated op), so the peer
 * is our own `align` on the same boxes upright (the bench boxes, then each turned by a random angle
 * in [-180, 180)), 7×7, R = 1000, the 256-channel map, interleaved runs. The ratio is the price of
 * the turn: a rotated grid is not separable, so each bin lists its samples' taps.
 */
function rotatedBench(input: FeatureMap, rand: () => number): void {
  const R = 1000;
  const upright = benchBoxes(rand, R);
  const rotated: RotatedBoxes = { data: new Float32Array(6 * R), count: R };
  for (let k = 0; k < R; k++) {
    const [b, x1, y1, x2, y2] = upright.data.subarray(5 * k, 5 * k + 5);
    const angle = rand() * 360 - 180;
    rotated.data.set([b, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, angle], 6 * k);
  }
  console.log(`
Rotated RoI Align vs RoI Align (ours, same boxes upright), 7×7, R = ${R}:`);
  for (const samplingRatio of [2, 0]) {
    const p = { spatialScale: SCALE, outputSize: OUT, samplingRatio };
    const runs = [() => rotatedRoiAlign(input, rotated, p), () => roiAlign(input, upright, p)];
    for (let i = 0; i < WARMUP; i++) runs.forEach((run) => run());
    const wall: [number[], number[]] = [[], []];
    const cpu: [number[], number[]] = [[], []];
    for (let i = 0; i < RUNS; i++) {
      runs.forEach((run, j) => {
        const c = process.cpuUsage();
        const t = performance.now();
        run();
        wall[j].push(performance.now() - t);
        cpu[j].push(cpuMs(c));
      });
    }
    const [rot, align] = wall.map(median);
    const [rotCpu, alignCpu] = cpu.map(median);
    const name = `sampling ${samplingRatio === 0 ? 'adaptive' : samplingRatio}`;
    console.log(
      `| ${name.padEnd(17)} | rotated_align ${rot.toFixed(1).padStart(6)} ms | align ${align.toFixed(1).padStart(6)} ms | ` +
        `ratio ${(rot / align).toFixed(2)} | CPU ratio ${(rotCpu / alignCpu).toFixed(2)} |`,
    );
  }
}

/**
 * Multi-level (FPN) RoI Align (issue 13) next to single-level RoI Align: a 4-level pyramid P2..P5 of
 * the same 800×1088 image (256 channels, 200×272, 100×136, 50×68, 25×34 at strides 4..32), the same
 * kind of boxes (16–600 px), R = 1000, 7×7, torchvision's level rule; the single-level row pools all
 * boxes from P4 (the map above). Interleaved runs. Both include the kernels' per-call staging of each
 * map they read (the NCHW→NHWC copy into WebAssembly memory): P2 alone is 4× P4's size, which is
 * most of the difference.
 */
function multiScaleBench(p4: FeatureMap, rand: () => number): void {
  const R = 1000;
  const boxes = benchBoxes(rand, R);
  const scales = [1 / 4, 1 / 8, 1 / 16, 1 / 32];
  const levels: FeatureMap[] = scales.map((s) => {
    const [h, w] = [Math.ceil(H * STRIDE * s), Math.ceil(W * STRIDE * s)];
    return s === SCALE
      ? p4
      : { data: randomMap(rand, N * C * h * w, 0, 1), shape: [N, C, h, w], layout: 'NCHW' };
  });
  const counts = [0, 0, 0, 0];
  for (const k of mapLevels(boxes, undefined, 2, 5)) counts[k - 2]++;
  console.log(
    `\nMulti-level RoI Align (P2..P5, ${C} channels, boxes per level ${counts.join(' / ')}) vs RoI Align on P4, ` +
      `7×7, R = ${R}:`,
  );
  for (const samplingRatio of [2, 0]) {
    const p = { outputSize: OUT, samplingRatio };
    const runs = [
      () => multiScaleRoi('align', levels, scales, boxes, p).output,
      () => roiAlign(p4, boxes, { ...p, spatialScale: SCALE }),
    ];
    for (let i = 0; i < WARMUP; i++) runs.forEach((run) => run());
    const wall: [number[], number[]] = [[], []];
    for (let i = 0; i < RUNS; i++) {
      runs.forEach((run, j) => {
        const t = performance.now();
        run();
        wall[j].push(performance.now() - t);
      });
    }
    const [multi, single] = wall.map(median);
    const name = `sampling ${samplingRatio === 0 ? 'adaptive' : samplingRatio}`;
    console.log(
      `| ${name.padEnd(17)} | multi-level ${multi.toFixed(1).padStart(6)} ms | align on P4 ${single.toFixed(1).padStart(6)} ms | ratio ${(multi / single).toFixed(2)} |`,
    );
  }
}

/**
 * Split benchmark (issue 14, "all cores"): RoI Align at R = 1000 (the ops bench's map 1×256×50×68,
 * its boxes, 7×7, sampling 2, spatialScale 1/16) end to end through the service, one request at a
 * time, split across the idle workers (`SPLIT_MIN_BOXES`, `src/runtime/split.ts`) and unsplit, side by
 * side with ONNX Runtime's `RoiAlign` in this process with all its threads (intra-op threads = cores)
 * and with one. The request is multipart (the map as a `.npy` file, the boxes as a field) asking for
 * `.npy`; a client in another process times it from the first byte sent to the last received. The
 * kernel time in the workers (`Server-Timing` `align`) is shown too. Rounds interleave the four, so
 * that load from other jobs hits them alike; medians. Knobs: `BENCH_ROUNDS` (default 5).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseConfig } from '../src/config.js';
import { buildApp } from '../src/server.js';
import { writeNpy } from '../src/tensors/npy.js';
import { createSession, roiAlignModel, runRoiAlign } from '../test/oracle/ort.js';
import { boxInside, mulberry32, randomMap } from '../test/support/random.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const PER_ROUND = 3;
const [N, C, H, W] = [1, 256, 50, 68];
const STRIDE = 16;
const R = 1000;
const execFileAsync = promisify(execFile);

/**
 * The client (plain JavaScript, its own process): posts the multipart body `count` times, prints one
 * `[ms, stages, bytes]` per request (stages: Server-Timing's name → ms). argv: url, npy path, boxes path, count.
 */
const CLIENT = `
import { readFileSync } from 'node:fs';
const [url, npyPath, boxesPath, count] = process.argv.slice(1);
const npy = readFileSync(npyPath);
const boxes = readFileSync(boxesPath, 'utf8');
const out = [];
for (let i = 0; i < Number(count); i++) {
  const form = new FormData();
  form.append('features', new Blob([npy]), 'x.npy');
  form.append('boxes', boxes);
  for (const [k, v] of [['spatialScale', '0.0625'], ['ops', '["align"]'], ['outputSize', '7'], ['samplingRatio', '2'], ['format', 'npy']]) form.append(k, v);
  const request = new Response(form);
  const type = request.headers.get('content-type');
  const body = new Uint8Array(await request.arrayBuffer());
  const t = performance.now();
  const r = await fetch(url + '/v1/roi', { method: 'POST', body, headers: { 'content-type': type } });
  const answer = await r.arrayBuffer();
  const ms = performance.now() - t;
  if (r.status !== 200) throw new Error(r.status + ' ' + Buffer.from(answer).toString());
  const bytes = answer.byteLength;
  const stages = {};
  for (const m of (r.headers.get('server-timing') ?? '').matchAll(/([a-z_]+);dur=([0-9.]+)/g)) stages[m[1]] = Number(m[2]);
  out.push([ms, stages, bytes]);
}
console.log(JSON.stringify(out));
`;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

export async function runSplitBench(): Promise<void> {
  const rand = mulberry32(2026);
  const x = randomMap(rand, N * C * H * W, 0, 1);
  const boxData = new Float32Array(R * 5);
  const rows: number[][] = [];
  for (let k = 0; k < R; k++) {
    const b = boxInside(rand, W * STRIDE, H * STRIDE, [16, 584], [16, 584]);
    boxData.set([0, ...b], 5 * k);
    rows.push(b);
  }
  const dir = mkdtempSync(join(tmpdir(), 'roiserve-split-'));
  const npyPath = join(dir, 'x.npy');
  const boxesPath = join(dir, 'boxes.json');
  writeFileSync(npyPath, writeNpy(x, [N, C, H, W]));
  writeFileSync(boxesPath, JSON.stringify(rows));
  const cores = availableParallelism();
  const model = roiAlignModel({
    outputHeight: 7,
    outputWidth: 7,
    samplingRatio: 2,
    spatialScale: 1 / STRIDE,
    mode: 'avg',
    halfPixel: true,
  });
  const ortAll = await createSession(model, cores);
  const ortOne = await createSession(model, 1);
  const app = await buildApp(parseConfig({}, { logLevel: 'silent' }));
  try {
    await app.readiness.settled;
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const client = async (splitMinBoxes: number, count: number) => {
      app.work.splitMinBoxes = splitMinBoxes;
      const { stdout } = await execFileAsync(process.execPath, [
        '--input-type=module',
        '-e',
        CLIENT,
        url,
        npyPath,
        boxesPath,
        String(count),
      ]);
      return JSON.parse(stdout) as [number, Record<string, number>, number][];
    };
    const ort = async (session: typeof ortAll) => {
      const t = performance.now();
      await runRoiAlign(session, x, [N, C, H, W], boxData, R);
      return performance.now() - t;
    };
    // Warm-up: JIT, the workers' kernels, ORT's thread pools.
    await client(256, 2);
    await client(0, 1);
    await ort(ortAll);
    await ort(ortOne);
    const wall = { split: [] as number[], unsplit: [] as number[] };
    const kernel = { split: [] as number[], unsplit: [] as number[] };
    const timing = { split: [] as Record<string, number>[], unsplit: [] as Record<string, number>[] };
    const peer = { all: [] as number[], one: [] as number[] };
    const helpedBefore = app.work.splitStats.helperRanges;
    console.log(
      `RoI Align, R = ${R}, X ${N}×${C}×${H}×${W} (.npy, multipart), 7×7, sampling 2, answer .npy ` +
        `(${((R * C * 49 * 4) / 1e6).toFixed(1)} MB); WORKERS=${app.work.size}, ${cores} cores; ` +
        `${ROUNDS} rounds × ${PER_ROUND}; load average before: ${loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}`,
    );
    for (let round = 0; round < ROUNDS; round++) {
      for (const [mode, min] of [
        ['split', 256],
        ['unsplit', 0],
      ] as const) {
        for (const [ms, stages] of await client(min, PER_ROUND)) {
          wall[mode].push(ms);
          kernel[mode].push(stages.align ?? NaN);
          timing[mode].push(stages);
        }
      }
      for (let i = 0; i < PER_ROUND; i++) {
        peer.all.push(await ort(ortAll));
        peer.one.push(await ort(ortOne));
      }
    }
    const helped = app.work.splitStats.helperRanges - helpedBefore;
    const all = median(peer.all);
    const row = (name: string, ms: number) => `| ${name} | ${ms.toFixed(1)} | ${(ms / all).toFixed(2)}× |`;
    console.log(`\n| what | median ms | vs ORT, ${cores} threads |\n|---|---|---|`);
    console.log(row('roiserve, split, end to end (client)', median(wall.split)));
    console.log(row('roiserve, unsplit, end to end (client)', median(wall.unsplit)));
    console.log(row('roiserve, split, RoI Align in the workers (Server-Timing)', median(kernel.split)));
    console.log(row('roiserve, unsplit, RoI Align in its worker (Server-Timing)', median(kernel.unsplit)));
    console.log(row(`ONNX Runtime RoiAlign, ${cores} intra-op threads`, all));
    console.log(row('ONNX Runtime RoiAlign, 1 intra-op thread', median(peer.one)));
    for (const mode of ['split', 'unsplit'] as const) {
      const stage = (name: string) => median(timing[mode].map((t) => t[name] ?? 0)).toFixed(1);
      console.log(
        `${mode}: Server-Timing medians: parse ${stage('parse')}, queue ${stage('queue')}, align ${stage('align')}, ` +
          `encode ${stage('encode')}, arrival → send ${stage('total')} ms; the rest of the wall time is moving the bytes`,
      );
    }
    console.log(
      `\nsplit: ${(median(wall.unsplit) / median(wall.split)).toFixed(2)}× faster end to end, ` +
        `${(median(kernel.unsplit) / median(kernel.split)).toFixed(2)}× in the kernels; helpers ran ${helped} ` +
        `ranges in ${ROUNDS * PER_ROUND} split requests. Goal: end to end ≤ 0.3× ORT with all threads. ` +
        `Load average after: ${loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}`,
    );
  } finally {
    await app.close();
    await ortAll.release();
    await ortOne.release();
    rmSync(dir, { recursive: true, force: true });
  }
}

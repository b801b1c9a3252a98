/**
 * End-to-end benchmark (issue 14, "measured, side by side"): the same image and boxes through
 * roiserve and through the pipeline a Node user would write without it.
 *
 * - roiserve: the default configuration (`WORKERS` one per core, `BACKBONE_ENGINE=auto`), over HTTP:
 *   a multipart `POST /v1/roi` with `fixtures/photo.jpg` (640×480) and 300 boxes, RoI Align 7×7
 *   (sampling 2, aligned) → `.npy` `[300, 256, 7, 7]` (15 MB). The client is its own process.
 * - peer: one Node process, sharp decodes the JPEG → RGB / 255 NCHW → ONNX Runtime runs the built-in
 *   backbone (the same graph and weights, `exportOnnx`) → ONNX Runtime `RoiAlign` (opset 16,
 *   `half_pixel`) → the pooled Float32Array. Sessions with ORT's default options (what a user gets).
 *   Its output is checked against roiserve's answer first (≤ 1e-4 of the scale): the same work.
 * - bare: a `node:http` server (own process) that reads the same request body and answers the same
 *   number of bytes as roiserve: the floor of moving them over loopback.
 * Each at concurrency 1 and 4: median latency and throughput (requests / wall second of the whole
 * round). Knobs: `BENCH_ROUNDS` (requests per concurrency level, default 24).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { exportOnnx } from '../src/backbone/onnx-export.js';
import { parseConfig } from '../src/config.js';
import { buildApp } from '../src/server.js';
import { readNpy } from '../src/tensors/npy.js';
import { roiAlignModel, runRoiAlign } from '../test/oracle/ort.js';
import { boxInside, mulberry32 } from '../test/support/random.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 24);
const K = 300;
const CONCURRENCY = [1, 4];
const execFileAsync = promisify(execFile);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * The HTTP client (plain JavaScript, own process). argv: url, body file, content type, requests,
 * concurrency. Prints `{ latencies, wall }`: each request's ms and the whole run's.
 */
const CLIENT = `
import { readFileSync } from 'node:fs';
const [url, file, type, n, c] = process.argv.slice(1);
const body = readFileSync(file);
const latencies = [];
let next = 0;
const t0 = performance.now();
await Promise.all(Array.from({ length: Number(c) }, async () => {
  while (next < Number(n)) {
    next++;
    const t = performance.now();
    const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': type } });
    const answer = await res.arrayBuffer();
    if (res.status !== 200) throw new Error(res.status + ' ' + Buffer.from(answer).toString().slice(0, 300));
    latencies.push(performance.now() - t);
  }
}));
console.log(JSON.stringify({ latencies, wall: performance.now() - t0 }));
`;

/** A bare node:http server (own process) answering every POST with the bytes of argv[1] once the body is read. */
const BARE = `
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
const answer = readFileSync(process.argv[1]);
const server = createServer((req, res) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': answer.length });
    res.end(answer);
  });
});
server.listen(0, '127.0.0.1', () => console.log('http://127.0.0.1:' + server.address().port));
`;

function bareServer(answerFile: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', BARE, answerFile], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.stdout?.once('data', (line: Buffer) => resolve({ child, url: line.toString().trim() }));
  });
}

async function httpRun(url: string, file: string, type: string, n: number, c: number) {
  const { stdout } = await execFileAsync(
    process.execPath,
    ['--input-type=module', '-e', CLIENT, url, file, type, String(n), String(c)],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  return JSON.parse(stdout) as { latencies: number[]; wall: number };
}

/** The peer: what a Node user writes with sharp and onnxruntime-node, in this process. */
async function peerPipeline(boxes: Float32Array) {
  // ORT's default session options: what `InferenceSession.create(bytes)` gives a user.
  const backbone = await ort.InferenceSession.create(exportOnnx());
  const align = await ort.InferenceSession.create(
    roiAlignModel({
      outputHeight: 7,
      outputWidth: 7,
      samplingRatio: 2,
      spatialScale: 1 / 16,
      mode: 'avg',
      halfPixel: true,
    }),
  );
  const run = async (jpeg: Buffer) => {
    const { data, info } = await sharp(jpeg).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const plane = info.width * info.height;
    const x = new Float32Array(3 * plane);
    for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) x[c * plane + i] = data[3 * i + c] / 255;
    const out = await backbone.run({ image: new ort.Tensor('float32', x, [1, 3, info.height, info.width]) });
    const f = out.features;
    return runRoiAlign(align, f.data as Float32Array, f.dims, boxes, K);
  };
  return { run, release: async () => Promise.all([backbone.release(), align.release()]) };
}

async function peerRun(run: () => Promise<unknown>, n: number, c: number) {
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (next < n) {
        next++;
        const t = performance.now();
        await run();
        latencies.push(performance.now() - t);
      }
    }),
  );
  return { latencies, wall: performance.now() - t0 };
}

export async function runE2eBench(): Promise<void> {
  const rand = mulberry32(14);
  const boxRows = Array.from({ length: K }, () => boxInside(rand, 640, 480, [16, 300], [16, 300]));
  const boxes = new Float32Array(K * 5);
  boxRows.forEach((b, k) => boxes.set(b, 5 * k + 1));
  const photo = readFileSync(fileURLToPath(new URL('../fixtures/photo.jpg', import.meta.url)));
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(photo)]), 'photo.jpg');
  form.append('boxes', JSON.stringify(boxRows));
  form.append('ops', '["align"]');
  form.append('outputSize', '7');
  form.append('samplingRatio', '2');
  form.append('aligned', 'true');
  form.append('format', 'npy');
  const request = new Response(form);
  const type = request.headers.get('content-type') as string;
  const body = Buffer.from(await request.arrayBuffer());

  const dir = mkdtempSync(join(tmpdir(), 'roiserve-e2e-'));
  const app = await buildApp(parseConfig({}, { logLevel: 'silent' }));
  let bare: { child: ChildProcess; url: string } | undefined;
  const peer = await peerPipeline(boxes);
  try {
    await app.readiness.settled;
    const url = `${await app.listen({ host: '127.0.0.1', port: 0 })}/v1/roi`;
    const bodyFile = join(dir, 'body');
    writeFileSync(bodyFile, body);
    const r = await fetch(url, { method: 'POST', body, headers: { 'content-type': type } });
    const answer = Buffer.from(await r.arrayBuffer());
    if (r.status !== 200) throw new Error(`roiserve: ${r.status} ${answer.toString().slice(0, 300)}`);
    writeFileSync(join(dir, 'answer'), answer);
    bare = await bareServer(join(dir, 'answer'));

    // The same work: the peer's output against roiserve's answer.
    const ours = readNpy(answer);
    const theirs = await peer.run(photo);
    let maxAbs = 0;
    let scale = 0;
    for (let i = 0; i < theirs.length; i++) {
      maxAbs = Math.max(maxAbs, Math.abs(theirs[i] - ours.data[i]));
      scale = Math.max(scale, Math.abs(ours.data[i]));
    }
    if (!(maxAbs <= 1e-4 * scale))
      throw new Error(`peer and roiserve differ: max |Δ| ${maxAbs}, scale ${scale}`);
    const described = await app.work.describe();
    console.log(
      `photo.jpg 640×480, ${K} boxes, RoI Align 7×7 → .npy [${ours.shape.join(', ')}] (${(answer.length / 1e6).toFixed(1)} MB); ` +
        `roiserve default config: WORKERS=${app.work.size}, ${described.engineReason}; peer: sharp → ORT ${ort.env.versions.node} ` +
        `backbone → ORT RoiAlign, default session options, one process; outputs agree to ${(maxAbs / scale).toExponential(1)} relative.\n` +
        `${ROUNDS} requests per concurrency level after ${4} warm-ups; ${availableParallelism()} cores (${cpus()[0]?.model.trim()}); ` +
        `load average before: ${loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}\n`,
    );
    // Warm-ups.
    await httpRun(url, bodyFile, type, 4, 2);
    await httpRun(bare.url, bodyFile, type, 4, 2);
    await peerRun(() => peer.run(photo), 4, 2);

    console.log(
      '| concurrency | roiserve median ms | peer median ms | **latency ratio** | roiserve req/s | peer req/s | **throughput ratio** | bare transfer median ms |',
    );
    console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const c of CONCURRENCY) {
      const ro = await httpRun(url, bodyFile, type, ROUNDS, c);
      const pe = await peerRun(() => peer.run(photo), ROUNDS, c);
      const ba = await httpRun(bare.url, bodyFile, type, ROUNDS, c);
      const [rm, pm, bm] = [median(ro.latencies), median(pe.latencies), median(ba.latencies)];
      const [rt, pt] = [(ROUNDS * 1000) / ro.wall, (ROUNDS * 1000) / pe.wall];
      console.log(
        `| ${c} | ${rm.toFixed(1)} | ${pm.toFixed(1)} | **${(rm / pm).toFixed(2)}** | ${rt.toFixed(1)} | ${pt.toFixed(1)} | **${(rt / pt).toFixed(2)}** | ${bm.toFixed(1)} |`,
      );
    }
    console.log(
      `\nlatency ratio = roiserve / peer (lower is better); throughput ratio = roiserve / peer (higher is better). ` +
        `Load average after: ${loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}`,
    );
  } finally {
    await app.close();
    await peer.release();
    bare?.child.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

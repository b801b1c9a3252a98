/**
 * Backbone benchmark: image decode (sharp) and the built-in backbone on the tfjs wasm backend, vs ONNX
 * Runtime (onnxruntime-node, CPU, intra-op threads = 1) running the same graph with the same weights.
 *
 * Workload: a photo-like test card (gradient, shapes, text-free) at 640×480 and 1280×960, JPEG q90.
 * Decode = `decodeImage` (bytes → RGB). Backbone = `extract` (RGB → normalised tensor → features
 * read back). ORT = RGB → NCHW float32 → `session.run` (normalisation inside the graph). tfjs and
 * ORT alternate run by run after a warm-up; medians of wall time and of process CPU time
 * (`process.cpuUsage`, all threads: steadier than wall time on a shared, loaded machine). Ratio =
 * tfjs / ORT (goal ≤ 1.0). "onnx engine" is roiserve's `BACKBONE_ENGINE=onnx` backbone (the same
 * export in ORT, plus the RGB → NCHW conversion and the copy out), what image requests now run. The tfjs wasm binary in Node is SIMD single-threaded (tfjs disables wasm
 * threads in Node), so both sides use 1 thread.
 */
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { initTensorFlow, loadBackbone } from '../src/backbone/index.js';
import { decodeImage } from '../src/imaging/decode.js';
import { createOrtBackbone, relativeError, runOrtBackbone } from '../test/backbone/onnx-reference.js';

const WARMUP = 3;
const RUNS = Number(process.env.BENCH_RUNS ?? 11);
const SIZES: Array<[number, number]> = [
  [640, 480],
  [1280, 960],
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function testCardJpeg(width: number, height: number): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <defs><linearGradient id="g"><stop offset="0" stop-color="#204060"/><stop offset="1" stop-color="#e0c080"/></linearGradient></defs>
    <rect width="100%" height="100%" fill="url(#g)"/>
    <circle cx="${width * 0.3}" cy="${height * 0.4}" r="${height * 0.2}" fill="#d02020"/>
    <rect x="${width * 0.55}" y="${height * 0.2}" width="${width * 0.3}" height="${height * 0.5}" fill="#20a040"/>
    <line x1="0" y1="${height * 0.8}" x2="${width}" y2="${height * 0.9}" stroke="#ffffff" stroke-width="3"/>
  </svg>`;
  return sharp(Buffer.from(svg)).jpeg({ quality: 90 }).toBuffer();
}

const ms = (t: number) => t.toFixed(1);

/** Wall and process-CPU milliseconds of `fn`. */
async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; wall: number; cpu: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { value, wall, cpu: (cpu.user + cpu.system) / 1000 };
}

export async function runBackboneBench(): Promise<void> {
  const tfBackend = await initTensorFlow({ backend: 'wasm' });
  const backbone = await loadBackbone({ engine: 'tfjs' });
  // What BACKBONE_ENGINE=onnx serves (export, session with 1 intra-op thread, NCHW input conversion).
  const engine = await loadBackbone({ engine: 'onnx', onnxThreads: 1 });
  const session = await createOrtBackbone(1);
  console.log(`tfjs backend: ${tfBackend.reason}; ORT: cpu, intra-op threads 1`);
  console.log(`warm-up ${WARMUP}, runs ${RUNS} (BENCH_RUNS), medians in ms\n`);
  console.log(
    '| image | decode wall | backbone wall (tfjs wasm) | ORT wall | **ratio wall** | backbone CPU | ORT CPU | **ratio CPU** | onnx engine wall | max rel diff |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const [width, height] of SIZES) {
    const jpeg = await testCardJpeg(width, height);
    const times = {
      decode: [] as number[],
      tfWall: [] as number[],
      ortWall: [] as number[],
      tfCpu: [] as number[],
      ortCpu: [] as number[],
      engineWall: [] as number[],
    };
    let relDiff = 0;
    for (let run = 0; run < WARMUP + RUNS; run++) {
      const decoded = await timed(() => decodeImage(jpeg));
      const image = decoded.value;
      const tf = await timed(() => backbone.extract(image));
      const ort = await timed(() => runOrtBackbone(session, image.rgb, image.width, image.height));
      const onnxEngine = await timed(() => engine.extract(image));
      if (run >= WARMUP) {
        times.decode.push(decoded.wall);
        times.tfWall.push(tf.wall);
        times.ortWall.push(ort.wall);
        times.tfCpu.push(tf.cpu);
        times.ortCpu.push(ort.cpu);
        times.engineWall.push(onnxEngine.wall);
      }
      // The two engines must agree, or the timing compares different work.
      if (run === 0) relDiff = relativeError(tf.value, ort.value).rel;
    }
    const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)])) as Record<
      keyof typeof times,
      number
    >;
    console.log(
      `| ${width}×${height} JPEG | ${ms(m.decode)} | ${ms(m.tfWall)} | ${ms(m.ortWall)} | **${(m.tfWall / m.ortWall).toFixed(2)}** | ` +
        `${ms(m.tfCpu)} | ${ms(m.ortCpu)} | **${(m.tfCpu / m.ortCpu).toFixed(2)}** | ${ms(m.engineWall)} | ${relDiff.toExponential(1)} |`,
    );
  }
  const description = backbone.describe();
  console.log(
    `\nbuilt-in backbone: ${(description.totalParams / 1e3).toFixed(1)} k params, ` +
      `${(description.totalMultiplyAdds / 1e6).toFixed(1)} M multiply-adds at 224×224 ` +
      `(×6.1 at 640×480), stride ${description.stride}, receptive field ${description.receptiveField} px`,
  );
  backbone.dispose();
  engine.dispose();
  await session.release();
}

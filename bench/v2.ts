/**
 * Open Inference Protocol benchmark: the same RoI Align request through `/v1/roi` and through
 * `/v2/models/roi_align/infer`, end to end over loopback (a live server, `fetch` reading the whole
 * body). The case of `bench/dtype.ts`: a feature map 1×256×30×40 (a 640×480 image at stride 16), 300
 * boxes, RoI Align 7×7 (3.76 M output values). Rows: request and response bytes, median wall time per
 * request (after a warm-up, the variants interleaved), and the ratio to `/v1` multipart `.npy` in,
 * `.npy` out. One worker, so requests run one at a time; timings vary by machine and load: compare
 * the ratios.
 */
import { performance } from 'node:perf_hooks';
import { parseConfig } from '../src/config.js';
import { buildApp } from '../src/server.js';
import { writeNpy } from '../src/tensors/npy.js';
import { boxInside, mulberry32, randomMap } from '../test/support/random.js';

const [C, H, W] = [256, 30, 40];
const STRIDE = 16;
const BOXES = 300;
const WARMUP = 2;
const RUNS = Number(process.env.BENCH_RUNS ?? 11);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** A request: what to send and where. */
interface Variant {
  name: string;
  url: string;
  body: () => { body: BodyInit; headers: Record<string, string>; bytes: number };
}

export async function runV2Bench(): Promise<void> {
  const rand = mulberry32(14);
  const map = randomMap(rand, C * H * W, -4, 4);
  const rows: number[][] = [];
  for (let k = 0; k < BOXES; k++) {
    rows.push([
      0,
      ...boxInside(rand, W * STRIDE, H * STRIDE, [16, 300], [16, 240]).map((v) => Math.round(v * 4) / 4),
    ]);
  }
  const npy = writeNpy(map, [1, C, H, W]);
  const mapBytes = Buffer.from(map.buffer, map.byteOffset, map.byteLength);
  const rois = Buffer.from(Float32Array.from(rows.flat()).buffer);
  const header = (binaryInputs: boolean) =>
    JSON.stringify({
      parameters: { spatial_scale: 1 / STRIDE, output_size: 7, binary_data_output: true },
      inputs: [
        binaryInputs
          ? {
              name: 'features',
              shape: [1, C, H, W],
              datatype: 'FP32',
              parameters: { binary_data_size: mapBytes.length },
            }
          : { name: 'features', shape: [1, C, H, W], datatype: 'FP32', data: Array.from(map) },
        binaryInputs
          ? {
              name: 'rois',
              shape: [BOXES, 5],
              datatype: 'FP32',
              parameters: { binary_data_size: rois.length },
            }
          : { name: 'rois', shape: [BOXES, 5], datatype: 'FP32', data: rows.flat() },
      ],
    });
  const variants: Variant[] = [
    {
      name: '/v1/roi multipart .npy in, .npy out',
      url: '/v1/roi',
      body: () => {
        const form = new FormData();
        form.append('features', new Blob([new Uint8Array(npy)]), 'map.npy');
        form.append('spatialScale', String(1 / STRIDE));
        form.append('boxes', JSON.stringify(rows));
        form.append('ops', '["align"]');
        form.append('format', 'npy');
        return { body: form, headers: {}, bytes: npy.length };
      },
    },
    {
      name: '/v2 binary in, binary out (tritonclient)',
      url: '/v2/models/roi_align/infer',
      body: () => {
        const head = Buffer.from(header(true));
        const body = Buffer.concat([head, mapBytes, rois]);
        return {
          body,
          headers: { 'Inference-Header-Content-Length': String(head.length) },
          bytes: body.length,
        };
      },
    },
    {
      name: '/v2 JSON in, binary out',
      url: '/v2/models/roi_align/infer',
      body: () => {
        const body = Buffer.from(header(false));
        return { body, headers: { 'Content-Type': 'application/json' }, bytes: body.length };
      },
    },
  ];
  const app = await buildApp(parseConfig({}, { logLevel: 'silent', workers: 1 }));
  try {
    await app.readiness.settled;
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    const once = async (v: Variant) => {
      const { body, headers, bytes } = v.body();
      const start = performance.now();
      const r = await fetch(`${address}${v.url}`, { method: 'POST', body, headers });
      const answer = new Uint8Array(await r.arrayBuffer());
      const ms = performance.now() - start;
      if (r.status !== 200) throw new Error(`${v.name}: ${r.status} ${Buffer.from(answer).toString()}`);
      return { ms, sent: bytes, received: answer.length };
    };
    console.log(
      `features 1×${C}×${H}×${W}, ${BOXES} boxes, align 7×7 (${BOXES * C * 49} values); ` +
        `median of ${RUNS} after ${WARMUP} warm-up, loopback, WORKERS=1\n`,
    );
    console.log('| request | bytes sent | bytes received | ms (end to end) | ms / v1 npy |');
    console.log('| --- | ---: | ---: | ---: | ---: |');
    const runs = new Map(variants.map((v) => [v, [] as Awaited<ReturnType<typeof once>>[]]));
    for (let i = 0; i < WARMUP; i++) for (const v of variants) await once(v);
    for (let i = 0; i < RUNS; i++) for (const v of variants) runs.get(v)?.push(await once(v));
    let base: number | undefined;
    for (const v of variants) {
      const rs = runs.get(v) ?? [];
      const ms = median(rs.map((r) => r.ms));
      base ??= ms;
      console.log(
        `| ${v.name} | ${rs[0].sent} | ${rs[0].received} | ${ms.toFixed(1)} | ${(ms / base).toFixed(2)} |`,
      );
    }
  } finally {
    await app.close();
  }
}

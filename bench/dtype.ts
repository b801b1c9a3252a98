/**
 * Output dtype benchmark: the same `/v1/roi` features request with `dtype` float32, float16 and
 * bfloat16, end to end over loopback (a live server, `fetch` reading the whole body). The request is
 * the large case: a `.npy` feature map 1×256×30×40 (a 640×480 image at stride 16) sent as
 * multipart, 300 boxes, RoI Align 7×7: 300 × 256 × 49 = 3.76 M values. Rows: response bytes and the
 * median wall time per request (after a warm-up; the dtypes of a format interleaved), for `.npy`, safetensors and JSON base64; the ratio
 * column is float16 (or bfloat16) against float32 in the same format. One worker, so requests run one
 * at a time; timings vary by machine and load: compare the ratios.
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
const RUNS = Number(process.env.BENCH_RUNS ?? 15);

function requestParts(): { npy: Buffer; boxes: number[][] } {
  const rand = mulberry32(14);
  const npy = writeNpy(randomMap(rand, C * H * W, -4, 4), [1, C, H, W]);
  const boxes: number[][] = [];
  for (let k = 0; k < BOXES; k++) {
    boxes.push(
      boxInside(rand, W * STRIDE, H * STRIDE, [16, 300], [16, 240]).map((v) => Math.round(v * 4) / 4),
    );
  }
  return { npy, boxes };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function runDtypeBench(): Promise<void> {
  const app = await buildApp(parseConfig({}, { logLevel: 'silent', workers: 1 }));
  try {
    await app.readiness.settled;
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    const { npy, boxes } = requestParts();
    const once = async (format: string, dtype: string) => {
      const form = new FormData();
      form.append('features', new Blob([new Uint8Array(npy)]), 'map.npy');
      form.append('spatialScale', String(1 / STRIDE));
      form.append('boxes', JSON.stringify(boxes));
      form.append('ops', '["align"]');
      form.append('format', format);
      form.append('dtype', dtype);
      const start = performance.now();
      const r = await fetch(`${address}/v1/roi`, { method: 'POST', body: form });
      const body = new Uint8Array(await r.arrayBuffer());
      const ms = performance.now() - start;
      if (r.status !== 200)
        throw new Error(`${format}/${dtype}: ${r.status} ${Buffer.from(body).toString()}`);
      const encode = /encode;dur=([\d.]+)/.exec(r.headers.get('server-timing') ?? '')?.[1];
      return { ms, bytes: body.length, encode: Number(encode) };
    };
    console.log(
      `features 1×${C}×${H}×${W} (.npy, multipart), ${BOXES} boxes, align 7×7 (${BOXES * C * 49} values); ` +
        `median of ${RUNS} after ${WARMUP} warm-up, loopback, WORKERS=1\n`,
    );
    console.log(
      '| format | dtype | bytes | ms (end to end) | encode ms (worker) | bytes / float32 | ms / float32 |',
    );
    console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: |');
    for (const format of ['npy', 'safetensors', 'json']) {
      const dtypes = format === 'npy' ? ['float32', 'float16'] : ['float32', 'float16', 'bfloat16'];
      const runs = new Map(dtypes.map((d) => [d, [] as Awaited<ReturnType<typeof once>>[]]));
      for (let i = 0; i < WARMUP; i++) for (const dtype of dtypes) await once(format, dtype);
      // Interleaved, so that a change in the machine's load falls on every dtype alike.
      for (let i = 0; i < RUNS; i++)
        for (const dtype of dtypes) runs.get(dtype)?.push(await once(format, dtype));
      let base: { ms: number; bytes: number } | undefined;
      for (const dtype of dtypes) {
        const rs = runs.get(dtype) ?? [];
        const ms = median(rs.map((r) => r.ms));
        const encode = median(rs.map((r) => r.encode));
        const bytes = rs[0].bytes;
        base ??= { ms, bytes };
        console.log(
          `| ${format} | ${dtype} | ${bytes} | ${ms.toFixed(1)} | ${encode.toFixed(1)} | ` +
            `${(bytes / base.bytes).toFixed(3)} | ${(ms / base.ms).toFixed(2)} |`,
        );
      }
    }
  } finally {
    await app.close();
  }
}

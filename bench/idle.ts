/**
 * Idle benchmark: image request rate and CPU per request of one server before and after it sat idle
 * for IDLE seconds, first with V8's own heap growth (`--heap-growing-percent=0`, its default) and
 * then with the fixed factor the pool sets (`src/runtime/heap-growth.ts`). V8 reads the flag at
 * each garbage collection, so one process measures both, on the same server, in the same run.
 *
 * Without the fix, a worker that was idle a few seconds keeps its heap limit just above its live
 * size and runs a full collection every few requests from then on: the "after" rate falls and the
 * CPU per request doubles. With it, "after" matches "before".
 * Knobs: `BENCH_SECONDS` (default 10), `BENCH_IDLE_SECONDS` (default 15), `BENCH_CONCURRENCY` (4).
 */
import { loadavg } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../src/config.js';
import { HEAP_GROWING_FLAG, HEAP_GROWING_PERCENT } from '../src/runtime/heap-growth.js';
import { buildApp } from '../src/server.js';
import { measure } from './throughput.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const IDLE = Number(process.env.BENCH_IDLE_SECONDS ?? 15);

export async function runIdleBench(): Promise<void> {
  const photoPath = fileURLToPath(new URL('../fixtures/photo.jpg', import.meta.url));
  const app = await buildApp(parseConfig({}, { logLevel: 'silent' }));
  try {
    await app.readiness.settled;
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    console.log(
      `default workers (${app.config.workers}), photo.jpg 640×480, 2 boxes, /v1/roi; ${SECONDS} s runs, ${IDLE} s idle between; load ${loadavg()[0].toFixed(2)}`,
    );
    console.log(
      '\n| heap growth | before: req/s | CPU ms/req | after idle: req/s | CPU ms/req | after / before |',
    );
    console.log('|---|---|---|---|---|---|');
    for (const percent of [0, HEAP_GROWING_PERCENT]) {
      setFlagsFromString(`${HEAP_GROWING_FLAG}=${percent}`);
      await measure(url, photoPath, SECONDS); // settle: the first run after a flag change is not measured
      const before = await measure(url, photoPath, SECONDS);
      await new Promise((resolve) => setTimeout(resolve, IDLE * 1000));
      const after = await measure(url, photoPath, SECONDS);
      const label =
        percent === 0 ? "V8's own (factor 1.1–4)" : `fixed, ${HEAP_GROWING_FLAG}=${percent} (roiserve)`;
      console.log(
        `| ${label} | ${before.rate.toFixed(1)} | ${before.serverCpuMsPerRequest.toFixed(1)} | ${after.rate.toFixed(1)} | ${after.serverCpuMsPerRequest.toFixed(1)} | ${(after.rate / before.rate).toFixed(2)}× |`,
      );
    }
    console.log(
      `\nload average after: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    await app.close();
  }
}

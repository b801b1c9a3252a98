/**
 * Throughput benchmark: image requests per second with the default `WORKERS` (one per core, bounded
 * by memory: `src/config.ts`) against one worker, each on a live server over loopback. The request is
 * `fixtures/photo.jpg` (640×480) with two boxes to `/v1/roi` (RoI Align 7×7, JSON), sent by
 * CONCURRENCY clients (in a separate node process) back to back for SECONDS each; the servers are
 * measured in turn, ROUNDS times (default, 1, …, default, 1, …), so load from other jobs hits all
 * alike, and each server sits idle while the others are measured (as between bursts of traffic).
 * All servers start first (their idle workers use no CPU). The load average is printed because
 * shared machines vary.
 *
 * The servers: the default; `WORKERS=1`, whose one worker still runs ONNX Runtime on every core
 * (`BACKBONE_THREADS` follows `cores / WORKERS`); `WORKERS=1 BACKBONE_THREADS=1`, compute on one core
 * as the old default (`cores − 1` workers) had it on 2 cores; and the same default-vs-one pair with the
 * tfjs engine (`BACKBONE_ENGINE=tfjs`, one thread per worker by design).
 * Knobs: `BENCH_SECONDS` (default 20), `BENCH_CONCURRENCY` (default 4), `BENCH_ROUNDS` (default 2),
 * `BENCH_ENGINES` (default `onnx,tfjs`).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { defaultWorkers, parseConfig } from '../src/config.js';
import { buildApp } from '../src/server.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const BOXES = '[[96,56,224,144],[0,0,320,240]]';
const execFileAsync = promisify(execFile);

/**
 * The load generator, plain JavaScript run in its own node process so that the clients' HTTP work
 * does not share the server's event loop (in-process, it took CPU from the HTTP thread being measured).
 * It shares the machine's cores, so it is kept light, as wrk would be: the multipart body is built
 * once, and requests go over keep-alive `node:http` connections (FormData + fetch per request took
 * about 5 ms of CPU each, a quarter of the server's). argv: url, seconds, concurrency, image path,
 * boxes; prints requests per second and the client's own CPU ms per request.
 */
const CLIENT = `
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
const [url, seconds, concurrency, path, boxes] = process.argv.slice(1);
const form = new FormData();
form.append('image', new Blob([readFileSync(path)], { type: 'image/jpeg' }), 'photo.jpg');
form.append('boxes', boxes);
const built = new Response(form);
const type = built.headers.get('content-type');
const body = Buffer.from(await built.arrayBuffer());
const agent = new Agent({ keepAlive: true, maxSockets: Number(concurrency) });
const post = () =>
  new Promise((resolve, reject) => {
    const req = request(url + '/v1/roi', { method: 'POST', agent, headers: { 'content-type': type, 'content-length': body.length } }, (res) => {
      let bytes = 0;
      res.on('data', (d) => (bytes += d.length));
      res.on('end', () => (res.statusCode === 200 ? resolve(bytes) : reject(new Error('status ' + res.statusCode))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
const end = performance.now() + Number(seconds) * 1000;
let done = 0;
const client = async () => {
  while (performance.now() < end) {
    await post();
    done++;
  }
};
const cpu = process.cpuUsage();
const start = performance.now();
await Promise.all(Array.from({ length: Number(concurrency) }, client));
const rate = done / ((performance.now() - start) / 1000);
const used = process.cpuUsage(cpu);
console.log(rate + ' ' + (used.user + used.system) / 1000 / done);
agent.destroy();
`;

/** One measurement: the clients' request rate and what it cost the servers (this process) and the clients. */
export interface Measured {
  rate: number;
  /** Cores this process (the servers alone: HTTP threads + workers) kept busy. */
  serverCores: number;
  serverCpuMsPerRequest: number;
  clientCpuMsPerRequest: number;
}

/** Runs CONCURRENCY clients (another process) against `url` for `seconds`. */
export async function measure(url: string, photoPath: string, seconds = SECONDS): Promise<Measured> {
  const cpuBefore = process.cpuUsage();
  const { stdout } = await execFileAsync(process.execPath, [
    '--input-type=module',
    '-e',
    CLIENT,
    url,
    String(seconds),
    String(CONCURRENCY),
    photoPath,
    BOXES,
  ]);
  const cpu = process.cpuUsage(cpuBefore);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const [rate, clientCpuMsPerRequest] = stdout.trim().split(' ').map(Number);
  return {
    rate,
    serverCores: cpuMs / 1000 / seconds,
    serverCpuMsPerRequest: cpuMs / (rate * seconds),
    clientCpuMsPerRequest,
  };
}

interface Server {
  label: string;
  env: Record<string, string>;
  /** Indices of the servers this one is compared against ("vs" column). */
  baselines: number[];
}

/** The servers to compare (see the file's comment). */
function servers(): Server[] {
  const engines = (process.env.BENCH_ENGINES ?? 'onnx,tfjs').split(',');
  const list: Server[] = [];
  const defaults = String(defaultWorkers());
  if (engines.includes('onnx')) {
    const base = list.length;
    list.push(
      { label: `default (WORKERS=${defaults})`, env: {}, baselines: [base + 1, base + 2] },
      { label: 'WORKERS=1', env: { WORKERS: '1' }, baselines: [base + 2] },
      {
        label: 'WORKERS=1 BACKBONE_THREADS=1',
        env: { WORKERS: '1', BACKBONE_THREADS: '1' },
        baselines: [],
      },
    );
  }
  if (engines.includes('tfjs')) {
    const base = list.length;
    list.push(
      {
        label: `tfjs, default (WORKERS=${defaults})`,
        env: { BACKBONE_ENGINE: 'tfjs' },
        baselines: [base + 1],
      },
      { label: 'tfjs, WORKERS=1', env: { BACKBONE_ENGINE: 'tfjs', WORKERS: '1' }, baselines: [] },
    );
  }
  return list;
}

export async function runThroughputBench(): Promise<void> {
  const photoPath = fileURLToPath(new URL('../fixtures/photo.jpg', import.meta.url));
  const photo = readFileSync(photoPath);
  const list = servers();
  const apps = await Promise.all(
    // Settings through the environment, as a user sets them: the ones derived from WORKERS (ONNX
    // Runtime threads per worker) follow, as they do for a user.
    list.map((server) => buildApp(parseConfig(server.env, { logLevel: 'silent' }))),
  );
  try {
    const urls: string[] = [];
    for (const app of apps) {
      await app.readiness.settled;
      urls.push(await app.listen({ host: '127.0.0.1', port: 0 }));
    }
    // Warm-up: a few requests each, so first-request costs (JIT, lazy loads) are not measured.
    for (const url of urls)
      for (let i = 0; i < 3; i++) {
        const form = new FormData();
        form.append('image', new Blob([new Uint8Array(photo)]), 'photo.jpg');
        form.append('boxes', BOXES);
        await (await fetch(`${url}/v1/roi`, { method: 'POST', body: form })).arrayBuffer();
      }
    const rates: number[][] = list.map(() => []);
    const cores: number[][] = list.map(() => []);
    const cpuMs: number[][] = list.map(() => []);
    console.log(
      `${CONCURRENCY} clients, ${SECONDS} s per run, photo.jpg 640×480, 2 boxes, /v1/roi; load average before: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    for (let round = 0; round < ROUNDS; round++)
      for (let i = 0; i < list.length; i++) {
        // The servers' CPU is this process's (the clients run in another): the cores it kept busy
        // show whether the machine gave the extra worker a core to run on.
        const m = await measure(urls[i], photoPath);
        rates[i].push(m.rate);
        cores[i].push(m.serverCores);
        cpuMs[i].push(m.serverCpuMsPerRequest);
        console.log(
          `  round ${round + 1}, ${list[i].label}: ${m.rate.toFixed(2)} req/s, server busy ${m.serverCores.toFixed(2)} cores, clients ${m.clientCpuMsPerRequest.toFixed(1)} ms CPU / request (load ${loadavg()[0].toFixed(2)})`,
        );
      }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(
      '\n| server | req/s (each run) | mean | vs | server busy (cores) | CPU ms / request |\n|---|---|---|---|---|---|',
    );
    for (let i = 0; i < list.length; i++) {
      const vs = list[i].baselines
        .map((b) => `${(mean(rates[i]) / mean(rates[b])).toFixed(2)}× ${list[b].label}`)
        .join('; ');
      console.log(
        `| ${list[i].label} | ${rates[i].map((r) => r.toFixed(2)).join(', ')} | ${mean(rates[i]).toFixed(2)} | ${vs} | ${mean(cores[i]).toFixed(2)} | ${mean(cpuMs[i]).toFixed(0)} |`,
      );
    }
    console.log(
      `\nload average after: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    await Promise.all(apps.map((app) => app.close()));
  }
}

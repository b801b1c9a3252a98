/**
 * Transfer benchmark (issue 14, "fewer bytes, no overhead"): what roiserve adds to moving the bytes.
 * Two requests, each multipart asking for `.npy` (RoI Align 7×7 of 300 boxes: 15 MB back):
 * - features: a `.npy` feature map 1×256×30×40 (1.2 MB) as a file part;
 * - image: `fixtures/photo.jpg` (640×480) as a file part (the built-in backbone gives 256 channels).
 * Each is sent to roiserve and to a bare `node:http` server (its own process) that reads the same
 * request body and answers the same bytes roiserve answered (the floor of moving them over loopback). A client in
 * another process times each from the first byte sent to the last received; the rows interleave.
 * Goal: roiserve's wall ≤ 1.15 × (its compute stages + the bare transfer), the stages being
 * `Server-Timing`'s decode, backbone, the ops and encode (the worker's work). Medians.
 * Knobs: `BENCH_ROUNDS` (default 15).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseConfig } from '../src/config.js';
import { buildApp } from '../src/server.js';
import { writeNpy } from '../src/tensors/npy.js';
import { boxInside, mulberry32, randomMap } from '../test/support/random.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const K = 300;
const execFileAsync = promisify(execFile);

/**
 * The client (plain JavaScript, its own process). argv: a JSON list of `{ url, body, type }` jobs
 * (body: a file path) and a round count; each round posts every job once, in order. Prints, per job,
 * `[ms, stages]` per round, stages being Server-Timing's name → ms (empty for the bare server).
 */
const CLIENT = `
import { readFileSync } from 'node:fs';
const jobs = JSON.parse(process.argv[1]).map((j) => ({ ...j, bytes: readFileSync(j.body) }));
const rounds = Number(process.argv[2]);
const out = jobs.map(() => []);
for (let r = 0; r < rounds; r++) {
  for (let i = 0; i < jobs.length; i++) {
    const { url, bytes, type } = jobs[i];
    const t = performance.now();
    const res = await fetch(url, { method: 'POST', body: bytes, headers: { 'content-type': type } });
    const headersAt = performance.now() - t;
    const answer = await res.arrayBuffer();
    const ms = performance.now() - t;
    if (res.status !== 200) throw new Error(res.status + ' ' + Buffer.from(answer).toString());
    const stages = {};
    for (const m of (res.headers.get('server-timing') ?? '').matchAll(/([a-z_]+);dur=([0-9.]+)/g)) stages[m[1]] = Number(m[2]);
    out[i].push([ms, stages, answer.byteLength, headersAt]);
  }
}
console.log(JSON.stringify(out));
`;

/** Worker stages counted as compute (not `parse`, `queue` or `total`). */
const COMPUTE = ['decode', 'backbone', 'pool', 'align', 'warp', 'encode'];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** A multipart body (its bytes and content type) for `/v1/roi`. */
async function multipart(file: string, bytes: Uint8Array, boxes: number[][]) {
  const form = new FormData();
  form.append(file, new Blob([new Uint8Array(bytes)]), file === 'image' ? 'photo.jpg' : 'x.npy');
  form.append('boxes', JSON.stringify(boxes));
  form.append('ops', '["align"]');
  form.append('format', 'npy');
  if (file === 'features') form.append('spatialScale', '0.0625');
  const request = new Response(form);
  return {
    type: request.headers.get('content-type') as string,
    body: Buffer.from(await request.arrayBuffer()),
  };
}

/**
 * A bare node:http server in its own process (so that its garbage does not land on roiserve's
 * thread), answering `POST /<name>` with the bytes of file `<dir>/<name>.answer` once the body is read.
 * argv: dir; prints its URL.
 */
const BARE = `
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
const dir = process.argv[1];
const answers = new Map();
const server = createServer((req, res) => {
  const name = req.url.slice(1);
  if (!answers.has(name)) answers.set(name, readFileSync(dir + '/' + name + '.answer'));
  req.on('data', () => undefined);
  req.on('end', () => {
    const answer = answers.get(name);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': answer.length });
    res.end(answer);
  });
});
server.listen(0, '127.0.0.1', () => console.log('http://127.0.0.1:' + server.address().port));
`;

/** Starts {@link BARE}; resolves with its URL and the process. */
function bareServer(dir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', BARE, dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.stdout?.once('data', (line: Buffer) => resolve({ child, url: line.toString().trim() }));
  });
}

export async function runTransferBench(): Promise<void> {
  const rand = mulberry32(14);
  const map = randomMap(rand, 256 * 30 * 40, -1, 1);
  const boxes = Array.from({ length: K }, () => boxInside(rand, 640, 480, [16, 300], [16, 300]));
  const photo = readFileSync(fileURLToPath(new URL('../fixtures/photo.jpg', import.meta.url)));
  const requests = {
    features: await multipart('features', writeNpy(map, [1, 256, 30, 40]), boxes),
    image: await multipart('image', photo, boxes),
  };
  const dir = mkdtempSync(join(tmpdir(), 'roiserve-transfer-'));
  const app = await buildApp(parseConfig({}, { logLevel: 'silent' }));
  const answers = new Map<string, Buffer>();
  let bare: { child: ChildProcess; url: string } | undefined;
  try {
    await app.readiness.settled;
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const jobs: { name: string; url: string; body: string; type: string }[] = [];
    for (const [name, { type, body }] of Object.entries(requests)) {
      const path = join(dir, `${name}.body`);
      writeFileSync(path, body);
      const r = await fetch(`${url}/v1/roi`, { method: 'POST', body, headers: { 'content-type': type } });
      answers.set(`/${name}`, Buffer.from(await r.arrayBuffer()));
      if (r.status !== 200) throw new Error(`${name}: ${r.status} ${answers.get(`/${name}`)?.toString()}`);
      writeFileSync(join(dir, `${name}.answer`), answers.get(`/${name}`) as Buffer);
      jobs.push({ name: `roiserve ${name}`, url: `${url}/v1/roi`, body: path, type });
    }
    bare = await bareServer(dir);
    for (const name of Object.keys(requests)) {
      const path = join(dir, `${name}.body`);
      jobs.push({
        name: `bare ${name}`,
        url: `${bare.url}/${name}`,
        body: path,
        type: requests.features.type,
      });
    }
    // Warm-up round, then the measured ones.
    await execFileAsync(process.execPath, ['--input-type=module', '-e', CLIENT, JSON.stringify(jobs), '2']);
    console.log(
      `multipart, ${K} boxes, RoI Align 7×7 → .npy (${(answers.get('/features')?.length ?? 0) / 1e6} MB); ` +
        `features 1×256×30×40 .npy (${(requests.features.body.length / 1e6).toFixed(2)} MB body), image photo.jpg ` +
        `640×480 (${(requests.image.body.length / 1e3).toFixed(0)} KB body); WORKERS=${app.work.size}; ` +
        `${ROUNDS} rounds; load average before: ${loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}`,
    );
    const { stdout } = await execFileAsync(
      process.execPath,
      ['--input-type=module', '-e', CLIENT, JSON.stringify(jobs), String(ROUNDS)],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    const results = JSON.parse(stdout) as [number, Record<string, number>, number, number][][];
    const byName = new Map(jobs.map((j, i) => [j.name, results[i]]));
    console.log(
      '\n| request | roiserve wall ms | compute stages ms | parse ms | queue ms | arrival → send (total) ms | headers at (roiserve, bare) ms | bare transfer ms | wall / (stages + bare) |\n|---|---|---|---|---|---|---|---|---|',
    );
    for (const name of Object.keys(requests)) {
      const ours = byName.get(`roiserve ${name}`) ?? [];
      const floor = byName.get(`bare ${name}`) ?? [];
      const wall = median(ours.map(([ms]) => ms));
      const stage = (keys: string[]) =>
        median(ours.map(([, s]) => keys.reduce((sum, k) => sum + (s[k] ?? 0), 0)));
      const compute = stage(COMPUTE);
      const bareMs = median(floor.map(([ms]) => ms));
      console.log(
        `| ${name} | ${wall.toFixed(1)} | ${compute.toFixed(1)} | ${stage(['parse']).toFixed(1)} | ${stage(['queue']).toFixed(1)} | ${stage(['total']).toFixed(1)} | ${median(ours.map((r) => r[3])).toFixed(1)}, ${median(floor.map((r) => r[3])).toFixed(1)} | ${bareMs.toFixed(1)} | ${(wall / (compute + bareMs)).toFixed(2)} |`,
      );
    }
    console.log(
      `\ngoal: wall / (stages + bare) ≤ 1.15. Load average after: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    await app.close();
    bare?.child.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

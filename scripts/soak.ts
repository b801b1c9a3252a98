/**
 * `npm run soak`: replays a hostile mix against a roiserve on loopback for a while and reports what
 * the service did (issue 11, "Proof"). Not part of `npm test`: it takes minutes and most of a machine.
 *
 * Without `SOAK_URL` it starts the server itself (`src/main.ts` under tsx, on a free 127.0.0.1 port,
 * default settings unless the environment says otherwise) and stops it at the end. With `SOAK_URL`
 * (loopback only: 127.0.0.1, ::1 or localhost) it targets a running one.
 *
 * The mix, picked at random (seeded) by `SOAK_CLIENTS` concurrent clients:
 * - normal requests: features input (JSON), an image (multipart), `/v1/features`, a small `/v1/diff`;
 * - a multipart body far over BODY_LIMIT_BYTES, sent chunked until the server answers;
 * - a stalled body (headers and part of a body, then silence, then the client leaves);
 * - a client that asks for a 32 MiB answer and never reads it (then leaves);
 * - a client that disconnects while its heavy request runs;
 * - a burst of 29 MiB JSON bodies at once;
 * - a `.npy` whose header repeats `'shape':(` (once a quadratic regex) and a truncated one;
 * - hostile PNG sizes (16000000×1, 1×16000000) in 47 KB;
 * - expensive parameters (`mode: max`, `outputSize: 64`, `samplingRatio: 64`, 10000 boxes).
 *
 * Reported: answers by status, 5xx other than 503 (must be 0: the exit status is 1 otherwise), 503s
 * (the queue saying "later", by design), dropped connections (a request that expected an answer and
 * got none), the server's RSS over time, and `/healthz` latency (p50 / p99 / max) probed every 100 ms.
 *
 * Environment: SOAK_SECONDS (default 180), SOAK_CLIENTS (default 6), SOAK_SEED (default 1), SOAK_URL,
 * SOAK_SKIP (scenario names to leave out, comma-separated). Other variables go to the server it starts
 * (e.g. WRITE_TIMEOUT_SECONDS=5 to see non-reading clients cut within the run).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 180);
const CLIENTS = Number(process.env.SOAK_CLIENTS ?? 6);
let seed = Number(process.env.SOAK_SEED ?? 1) >>> 0;

/** mulberry32: the same mix for the same seed. */
function random(): number {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The server

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

interface Target {
  base: URL;
  child: ChildProcess | undefined;
}

async function startTarget(): Promise<Target> {
  const given = process.env.SOAK_URL;
  if (given) {
    const base = new URL(given);
    if (!['127.0.0.1', 'localhost', '[::1]'].includes(base.hostname)) {
      throw new Error(
        `SOAK_URL must be a loopback address (127.0.0.1, ::1, localhost), not ${base.hostname}`,
      );
    }
    return { base, child: undefined };
  }
  const port = await freePort();
  const root = fileURLToPath(new URL('..', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: root,
    env: { LOG_LEVEL: 'warn', ...process.env, HOST: '127.0.0.1', PORT: String(port) },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const base = new URL(`http://127.0.0.1:${port}`);
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}`);
    try {
      if ((await fetch(new URL('/readyz', base))).status === 200) return { base, child };
    } catch {
      // not listening yet
    }
    await sleep(500);
  }
  child.kill('SIGKILL');
  throw new Error('the server did not become ready within 300 s');
}

// ---------------------------------------------------------------------------------------------
// Bookkeeping

const statuses = new Map<string, number>();
const fiveHundreds: string[] = [];
let dropped = 0;
const droppedBy = new Map<string, number>();
const scenarios = new Map<string, number>();

function count(map: Map<string, number>, key: string, n = 1): void {
  map.set(key, (map.get(key) ?? 0) + n);
}

function record(scenario: string, status: number | 'dropped'): void {
  if (status === 'dropped') {
    dropped++;
    count(droppedBy, scenario);
    return;
  }
  count(statuses, `${scenario} ${status}`);
  if (status >= 500 && status !== 503) fiveHundreds.push(`${scenario}: ${status}`);
}

// ---------------------------------------------------------------------------------------------
// Inputs

function floats(n: number, s = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sin(i * 0.37 + s);
  return out;
}

function base64Of(values: Float32Array): string {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString('base64');
}

function npy(values: Float32Array, shape: number[]): Buffer {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}), }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const prefix = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0, 0]);
  prefix.writeUInt16LE(header.length, 8);
  return Buffer.concat([prefix, Buffer.from(header, 'latin1'), Buffer.from(values.buffer)]);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A valid grey PNG of `width × height` whose pixels are all 0: tiny on the wire, huge when decoded. */
function hostilePng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  const raw = Buffer.alloc((width + 1) * height); // filter byte 0 per row, then zeros
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(raw, { level: 9 })),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

interface Inputs {
  png: Buffer;
  smallFeatures: { shape: number[]; data: string };
  bigAnswer: string;
  heavy: string;
  expensive: string;
  burstBody: Buffer;
  wideCases: Buffer[];
  badNpys: Buffer[];
  bodyLimit: number;
}

async function makeInputs(): Promise<Inputs> {
  const photo = fileURLToPath(new URL('../fixtures/photo.jpg', import.meta.url));
  let png: Buffer;
  try {
    png = await sharp(readFileSync(photo)).resize(160, 120).png().toBuffer();
  } catch {
    png = await sharp({ create: { width: 160, height: 120, channels: 3, background: '#4080c0' } })
      .png()
      .toBuffer();
  }
  const map16 = { shape: [1, 16, 16, 16], data: base64Of(floats(16 * 16 * 16)) };
  const repeatedShape = `{'descr': '<f4', 'fortran_order': False, ${"'shape':(".repeat(40_000)}`;
  const quadratic = Buffer.concat([
    Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0]),
    Buffer.alloc(4),
    Buffer.from(repeatedShape, 'latin1'),
  ]);
  quadratic.writeUInt32LE(repeatedShape.length, 8);
  const bodyLimit = Number(process.env.BODY_LIMIT_BYTES ?? 32 * 1024 * 1024);
  // 29 MiB of base64 (under the default 32 MiB limit) that does not match its shape: a 400 after decoding.
  const burstBody = Buffer.from(
    JSON.stringify({
      features: { shape: [1, 1, 1, 1], data: 'A'.repeat(Math.min(29 << 20, bodyLimit - 4096)) },
      spatialScale: 1,
      boxes: [[0, 0, 1, 1]],
    }),
  );
  return {
    png,
    smallFeatures: { shape: [1, 8, 12, 12], data: base64Of(floats(8 * 12 * 12)) },
    // 2000 · 16 · 16 · 16 float32 = 32 MiB of .npy
    bigAnswer: JSON.stringify({
      features: map16,
      spatialScale: 1,
      boxes: Array.from({ length: 2000 }, (_, i) => [i % 8, i % 8, 15, 15]),
      ops: ['align'],
      outputSize: 16,
      samplingRatio: 1,
      format: 'npy',
    }),
    // A few seconds of kernels: what a disconnecting client leaves behind.
    heavy: JSON.stringify({
      features: { shape: [1, 64, 48, 48], data: base64Of(floats(64 * 48 * 48, 2)) },
      spatialScale: 1,
      boxes: Array.from({ length: 400 }, (_, i) => [i % 20, i % 20, 47, 47]),
      ops: ['align'],
      outputSize: 16,
      samplingRatio: 8,
      format: 'npy',
    }),
    expensive: JSON.stringify({
      features: map16,
      spatialScale: 1,
      boxes: Array.from({ length: 10_000 }, () => [0, 0, 16, 16]),
      mode: 'max',
      outputSize: 64,
      samplingRatio: 64,
      ops: ['align'],
    }),
    burstBody,
    wideCases: [hostilePng(16_000_000, 1), hostilePng(1, 16_000_000)],
    badNpys: [quadratic, npy(floats(16), [1, 1, 4, 4]).subarray(0, 60)],
    bodyLimit,
  };
}

// ---------------------------------------------------------------------------------------------
// Clients

let base: URL;

async function post(
  scenario: string,
  path: string,
  body: string | FormData | Buffer,
  timeoutMs = 120_000,
): Promise<void> {
  try {
    const r = await fetch(new URL(path, base), {
      method: 'POST',
      headers:
        typeof body === 'string' || Buffer.isBuffer(body) ? { 'content-type': 'application/json' } : {},
      body: body as BodyInit,
      signal: AbortSignal.timeout(timeoutMs),
    });
    await r.arrayBuffer();
    record(scenario, r.status);
  } catch {
    record(scenario, 'dropped');
  }
}

function form(fields: Record<string, string>, files: Record<string, Buffer>): FormData {
  const fd = new FormData();
  for (const [k, v] of Object.entries(fields)) fd.append(k, v);
  for (const [k, v] of Object.entries(files)) fd.append(k, new Blob([new Uint8Array(v)]), k);
  return fd;
}

/** Opens a raw connection; `head` is written at once. */
function raw(head: string): { socket: Socket; response: Promise<number | undefined> } {
  const socket = connect(Number(base.port), base.hostname.replace(/^\[|\]$/g, ''));
  socket.on('error', () => undefined);
  const response = new Promise<number | undefined>((resolve) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const match = /^HTTP\/1\.1 (\d{3}) /.exec(text);
      if (match) {
        socket.off('data', onData);
        resolve(Number(match[1]));
      }
    };
    socket.on('data', onData);
    socket.once('close', () => resolve(undefined));
  });
  socket.write(head);
  return { socket, response };
}

const jsonHead = (path: string, length: number) =>
  `POST ${path} HTTP/1.1\r\nHost: ${base.host}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;

const SCENARIOS: Array<[string, number, (inputs: Inputs) => Promise<void>]> = [
  [
    'normal features',
    20,
    (i) =>
      post(
        'normal features',
        '/v1/roi',
        JSON.stringify({
          features: i.smallFeatures,
          spatialScale: 0.25,
          boxes: [
            [0, 0, 30, 30],
            [8, 4, 40, 44],
          ],
        }),
      ),
  ],
  [
    'normal image',
    12,
    (i) =>
      post(
        'normal image',
        '/v1/roi',
        form({ boxes: '[[10, 10, 120, 90]]', ops: '["align"]', format: 'npy' }, { image: i.png }),
      ),
  ],
  [
    'normal /v1/features',
    6,
    (i) => post('normal /v1/features', '/v1/features', form({ format: 'npy' }, { image: i.png })),
  ],
  [
    'normal diff',
    6,
    (i) =>
      post(
        'normal diff',
        '/v1/diff',
        JSON.stringify({ features: i.smallFeatures, spatialScale: 0.25, boxes: [[0, 0, 30, 30]] }),
      ),
  ],
  [
    'huge multipart',
    4,
    async (i) => {
      const boundary = 'soakboundary';
      const { socket, response } = raw(
        `POST /v1/roi HTTP/1.1\r\nHost: ${base.host}\r\nTransfer-Encoding: chunked\r\n` +
          `Content-Type: multipart/form-data; boundary=${boundary}\r\n\r\n`,
      );
      let answered = false;
      void response.then(() => (answered = true));
      const part = Buffer.alloc(256 * 1024, 'a');
      let sent = 0;
      const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="f"\r\n\r\n`);
      socket.write(`${head.length.toString(16)}\r\n`);
      socket.write(head);
      socket.write('\r\n');
      // Up to twice the limit, in chunks, until the server answers.
      while (!answered && sent < 2 * i.bodyLimit && !socket.destroyed) {
        socket.write(`${part.length.toString(16)}\r\n`);
        const flushed = socket.write(Buffer.concat([part, Buffer.from('\r\n')]));
        sent += part.length;
        if (!flushed)
          await Promise.race([new Promise((r) => socket.once('drain', r)), response, sleep(2000)]);
      }
      const status = await Promise.race([response, sleep(30_000).then(() => undefined)]);
      record('huge multipart', status ?? 'dropped');
      socket.destroy();
    },
  ],
  [
    'stalled body',
    4,
    async () => {
      const { socket, response } = raw(`${jsonHead('/v1/roi', 100_000)}{"boxes": [[0, 0, 1`);
      const status = await Promise.race([response, sleep(5000).then(() => 'silent' as const)]);
      // No answer is expected while the body is incomplete (a 408 only after REQUEST_TIMEOUT_SECONDS).
      count(statuses, `stalled body ${status ?? 'closed'}`);
      if (typeof status === 'number' && status >= 500 && status !== 503)
        fiveHundreds.push(`stalled: ${status}`);
      socket.destroy();
    },
  ],
  [
    'non-reading client',
    3,
    async (i) => {
      const { socket } = raw(jsonHead('/v1/roi', Buffer.byteLength(i.bigAnswer)));
      socket.write(i.bigAnswer);
      socket.pause(); // never reads its 32 MiB answer
      await sleep(8000);
      count(statuses, 'non-reading client (left after 8 s)');
      socket.destroy();
    },
  ],
  [
    'disconnecting client',
    3,
    async (i) => {
      const { socket } = raw(jsonHead('/v1/roi', Buffer.byteLength(i.heavy)));
      socket.write(i.heavy);
      await sleep(300 + random() * 700);
      count(statuses, 'disconnecting client (left)');
      socket.destroy();
    },
  ],
  [
    'big JSON burst',
    2,
    async (i) => {
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          const { socket, response } = raw(jsonHead('/v1/roi', i.burstBody.length));
          socket.write(i.burstBody);
          const status = await Promise.race([response, sleep(120_000).then(() => undefined)]);
          record('big JSON burst', status ?? 'dropped');
          socket.destroy();
        }),
      );
    },
  ],
  [
    'malformed npy',
    4,
    (i) =>
      post(
        'malformed npy',
        '/v1/roi',
        form(
          { boxes: '[[0, 0, 4, 4]]', spatialScale: '1' },
          { features: i.badNpys[Math.floor(random() * 2)] },
        ),
      ),
  ],
  [
    'hostile PNG size',
    3,
    (i) =>
      post(
        'hostile PNG size',
        '/v1/roi',
        form({ boxes: '[[0, 0, 1, 1]]' }, { image: i.wideCases[Math.floor(random() * 2)] }),
      ),
  ],
  ['expensive params', 3, (i) => post('expensive params', '/v1/roi', i.expensive)],
];

/** `SOAK_SKIP`: scenario names to leave out, comma-separated (to tell which one costs what). */
const SKIP = new Set((process.env.SOAK_SKIP ?? '').split(',').map((name) => name.trim()));
const MIX = SCENARIOS.filter(([name]) => !SKIP.has(name));

function pick(): (typeof SCENARIOS)[number] {
  const total = MIX.reduce((s, [, w]) => s + w, 0);
  let r = random() * total;
  for (const scenario of MIX) {
    r -= scenario[1];
    if (r < 0) return scenario;
  }
  return SCENARIOS[0];
}

// ---------------------------------------------------------------------------------------------
// Probes

function rssOf(child: ChildProcess | undefined): number | undefined {
  if (child?.pid === undefined) return undefined;
  try {
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

async function rssFromMetrics(): Promise<number | undefined> {
  try {
    const text = await (await fetch(new URL('/metrics', base), { signal: AbortSignal.timeout(5000) })).text();
    const m = /^process_resident_memory_bytes (\d+)/m.exec(text);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const mb = (bytes: number | undefined) => (bytes === undefined ? '?' : `${(bytes / 2 ** 20).toFixed(0)} MB`);

async function main(): Promise<void> {
  const inputs = await makeInputs();
  const target = await startTarget();
  base = target.base;
  console.log(`soak: ${base.href}, ${SECONDS} s, ${CLIENTS} clients, seed ${process.env.SOAK_SEED ?? 1}`);
  const started = Date.now();
  const deadline = started + SECONDS * 1000;

  const healthz: number[] = [];
  let healthzFailures = 0;
  const prober = (async () => {
    while (Date.now() < deadline) {
      const t = performance.now();
      try {
        const r = await fetch(new URL('/healthz', base), { signal: AbortSignal.timeout(30_000) });
        await r.arrayBuffer();
        if (r.status !== 200) healthzFailures++;
        healthz.push(performance.now() - t);
      } catch {
        healthzFailures++;
      }
      await sleep(100);
    }
  })();

  const rss: Array<[number, number | undefined]> = [];
  const sampler = (async () => {
    while (Date.now() < deadline) {
      rss.push([(Date.now() - started) / 1000, rssOf(target.child) ?? (await rssFromMetrics())]);
      await sleep(5000);
    }
  })();

  const clients = Array.from({ length: CLIENTS }, async () => {
    while (Date.now() < deadline) {
      const [name, , run] = pick();
      count(scenarios, name);
      await run(inputs);
    }
  });
  await Promise.all([...clients, prober, sampler]);
  // Let the server settle, then one last sample: is the memory given back?
  await sleep(10_000);
  rss.push([(Date.now() - started) / 1000, rssOf(target.child) ?? (await rssFromMetrics())]);

  if (target.child) {
    target.child.kill('SIGTERM');
    await new Promise((r) => target.child?.once('exit', r));
  }

  const sorted = [...healthz].sort((a, b) => a - b);
  console.log('\nscenarios run:');
  for (const [name, n] of [...scenarios].sort()) console.log(`  ${name.padEnd(24)} ${n}`);
  console.log('\nanswers:');
  for (const [key, n] of [...statuses].sort()) console.log(`  ${key.padEnd(48)} ${n}`);
  const busy = [...statuses].filter(([k]) => k.endsWith(' 503')).reduce((s, [, n]) => s + n, 0);
  console.log(
    `\n5xx other than 503: ${fiveHundreds.length}${fiveHundreds.length ? ` (${fiveHundreds.join(', ')})` : ''}`,
  );
  console.log(`503 (queue full, bodies or answers in flight; Retry-After): ${busy}`);
  console.log(
    `dropped connections (no answer where one was due): ${dropped}` +
      (dropped ? ` (${[...droppedBy].map(([k, n]) => `${k}: ${n}`).join(', ')})` : ''),
  );
  console.log(
    `/healthz: ${healthz.length} probes, p50 ${quantile(sorted, 0.5).toFixed(1)} ms, ` +
      `p99 ${quantile(sorted, 0.99).toFixed(1)} ms, max ${(sorted.at(-1) ?? NaN).toFixed(1)} ms, ` +
      `failures ${healthzFailures}`,
  );
  console.log(`RSS over time (s: MB): ${rss.map(([t, b]) => `${t.toFixed(0)}: ${mb(b)}`).join(', ')}`);
  const peak = Math.max(...rss.map(([, b]) => b ?? 0));
  console.log(`RSS peak ${mb(peak)}, at the end ${mb(rss.at(-1)?.[1])}`);
  process.exitCode = fiveHundreds.length > 0 ? 1 : 0;
}

await main();

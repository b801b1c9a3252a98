/**
 * HTTP half of the container smoke test (`scripts/docker-smoke.sh` runs the container and calls this).
 * Talks to a running roiserve over real HTTP and checks the answers; it never imports the service's
 * code, so it tests the image as a user sees it.
 *
 *   tsx scripts/docker-smoke-client.ts check BASE_URL
 *       health, readiness, POST /v1/roi (JSON + base64 PNG, multipart + npy, a bad request),
 *       POST /v1/diff (PNG that must decode), one line per check: `PASS name (detail)` or
 *       `FAIL name: reason`. Exit 1 when any check failed.
 *   tsx scripts/docker-smoke-client.ts load BASE_URL COUNT SENT_FILE RESULT_FILE
 *       sends a slow-reading request and COUNT heavy `/v1/roi` requests on keep-alive sockets (see
 *       `runLoad`), touches SENT_FILE once they are under way, waits for the answers and for the
 *       server to close the sockets, and writes the answers to RESULT_FILE as JSON (`LoadResult`):
 *       the shell script sends `docker stop` in between, so they are in flight while it shuts down.
 *
 * Environment: SMOKE_DIFF=required (default) | if-present: whether a missing `/v1/diff` route fails.
 *
 * Its scene and box helpers are exported for scripts/swarm-smoke-client.ts; `main` runs only when this
 * file is the script being run, not when it is imported.
 */
import { Agent, request as httpRequest } from 'node:http';
import type { Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

const checks: Check[] = [];

function pass(name: string, detail = ''): void {
  checks.push({ name, ok: true, detail });
  console.log(`PASS ${name}${detail ? ` (${detail})` : ''}`);
}

function fail(name: string, reason: string): void {
  checks.push({ name, ok: false, detail: reason });
  console.log(`FAIL ${name}: ${reason}`);
}

/** Runs `body`; a thrown error fails check `name` with the error's message. */
async function check(name: string, body: () => Promise<string | void>): Promise<void> {
  try {
    pass(name, (await body()) ?? '');
  } catch (err) {
    fail(name, err instanceof Error ? err.message : String(err));
  }
}

function expect(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

/**
 * A synthetic scene as PNG: a smooth gradient with a few solid rectangles, so the backbone's
 * features (and therefore the pooled outputs) vary across boxes. `[height, width, 3]` RGB.
 */
export async function scenePng(width: number, height: number): Promise<Buffer> {
  const rgb = Buffer.alloc(width * height * 3);
  const rects = [
    { x1: 0.1, y1: 0.15, x2: 0.4, y2: 0.6, c: [230, 60, 40] },
    { x1: 0.5, y1: 0.3, x2: 0.9, y2: 0.8, c: [30, 90, 220] },
    { x1: 0.3, y1: 0.7, x2: 0.6, y2: 0.95, c: [250, 220, 60] },
  ];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const u = x / width;
      const v = y / height;
      let c = [Math.round(255 * u), Math.round(255 * v), Math.round(128 + 100 * Math.sin(8 * u + 5 * v))];
      for (const r of rects) if (u >= r.x1 && u < r.x2 && v >= r.y1 && v < r.y2) c = r.c;
      rgb.set(c, 3 * (y * width + x));
    }
  }
  return sharp(rgb, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

interface TensorJson {
  shape: number[];
  dtype: string;
  data: string | number[];
}

/** Checks one JSON tensor: dtype, `[K, C, PH, PW]` shape, base64 length, finite and not all zero. */
function checkTensor(
  op: string,
  t: TensorJson | undefined,
  k: number,
  c: number,
  ph: number,
  pw: number,
): void {
  expect(t, `outputs.${op} is missing`);
  expect(t.dtype === 'float32', `outputs.${op}.dtype is ${t.dtype}, expected float32`);
  const want = [k, c, ph, pw];
  expect(
    JSON.stringify(t.shape) === JSON.stringify(want),
    `outputs.${op}.shape is ${JSON.stringify(t.shape)}, expected ${JSON.stringify(want)}`,
  );
  expect(typeof t.data === 'string', `outputs.${op}.data is not base64 text`);
  const bytes = Buffer.from(t.data, 'base64');
  expect(
    bytes.length === 4 * k * c * ph * pw,
    `outputs.${op}.data holds ${bytes.length} bytes, expected ${4 * k * c * ph * pw}`,
  );
  const values = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  expect(
    values.every((v) => Number.isFinite(v)),
    `outputs.${op} has non-finite values`,
  );
  expect(
    values.some((v) => v !== 0),
    `outputs.${op} is all zeros`,
  );
}

/** Parses a `.npy` header: magic, version, dtype and shape. */
export function npyHeader(buf: Buffer): { descr: string; shape: number[] } {
  expect(buf.subarray(0, 6).toString('latin1') === '\x93NUMPY', 'body does not start with the .npy magic');
  const major = buf[6];
  const headerLength = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.subarray(start, start + headerLength).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1] ?? '';
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '';
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  return { descr, shape };
}

export const BOXES = [
  [12, 20, 120, 150],
  [60, 40, 300, 210],
  [150.5, 100.25, 180.75, 130.5],
];

async function runChecks(base: string): Promise<void> {
  const diffMode = process.env.SMOKE_DIFF ?? 'required';

  await check('GET /healthz', async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status === 200, `status ${res.status}`);
    const body = (await res.json()) as { status?: string };
    expect(body.status === 'ok', `body ${JSON.stringify(body)}`);
  });

  await check('GET /readyz reports the backend', async () => {
    const res = await fetch(`${base}/readyz`);
    const body = (await res.json()) as { status?: string; backend?: string | null; backbone?: string | null };
    expect(
      res.status === 200 && body.status === 'ready',
      `status ${res.status}, body ${JSON.stringify(body)}`,
    );
    expect(
      body.backend === 'tensorflow' || body.backend === 'wasm',
      `backend is ${JSON.stringify(body.backend)}, expected tensorflow (tfjs-node) or wasm`,
    );
    return `backend ${body.backend}, backbone ${body.backbone}`;
  });

  await check('GET / (playground page from public/)', async () => {
    const res = await fetch(`${base}/`);
    const text = await res.text();
    expect(res.status === 200, `status ${res.status}`);
    expect(
      res.headers.get('content-type')?.startsWith('text/html'),
      `content-type ${res.headers.get('content-type')}`,
    );
    expect(text.includes('<html') || text.includes('<!doctype'), 'not an HTML page');
  });

  const png = await scenePng(320, 240);

  await check('POST /v1/roi JSON, base64 PNG, default ops', async () => {
    const res = await fetch(`${base}/v1/roi`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ image: png.toString('base64'), boxes: BOXES }),
    });
    const text = await res.text();
    expect(res.status === 200, `status ${res.status}: ${text.slice(0, 500)}`);
    expect(
      res.headers.get('content-type')?.startsWith('application/json'),
      `content-type ${res.headers.get('content-type')}`,
    );
    const timing = res.headers.get('server-timing') ?? '';
    for (const stage of ['decode', 'backbone', 'pool', 'align', 'warp', 'encode']) {
      expect(new RegExp(`(^|,\\s*)${stage};dur=`).test(timing), `Server-Timing lacks ${stage}: "${timing}"`);
    }
    const body = JSON.parse(text) as {
      params: { ops: string[]; outputSize: [number, number] };
      image: { width: number; height: number } | null;
      featureMap: { shape: number[]; stride: number; backend: string | null };
      boxes: number[][];
      outputs: Record<string, TensorJson | undefined>;
      coverage: unknown[];
    };
    expect(
      JSON.stringify(body.params.ops.slice().sort()) === '["align","pool","warp"]',
      `params.ops ${JSON.stringify(body.params.ops)}`,
    );
    const [ph, pw] = body.params.outputSize;
    expect(
      ph === 7 && pw === 7,
      `params.outputSize ${JSON.stringify(body.params.outputSize)}, expected [7, 7]`,
    );
    expect(body.image?.width === 320 && body.image.height === 240, `image ${JSON.stringify(body.image)}`);
    const [n, c, h, w] = body.featureMap.shape;
    expect(
      n === 1 && c > 0 && h > 0 && w > 0 && body.featureMap.stride > 0,
      `featureMap ${JSON.stringify(body.featureMap)}`,
    );
    expect(
      body.boxes.length === BOXES.length,
      `${body.boxes.length} canonical boxes, expected ${BOXES.length}`,
    );
    for (const op of ['pool', 'align', 'warp']) checkTensor(op, body.outputs[op], BOXES.length, c, ph, pw);
    expect(body.coverage.length === BOXES.length, `${body.coverage.length} coverage entries`);
    return `3 × [${BOXES.length}, ${c}, ${ph}, ${pw}], feature map [${body.featureMap.shape.join(', ')}] stride ${body.featureMap.stride}, backend ${body.featureMap.backend}`;
  });

  await check('POST /v1/roi multipart, format=npy', async () => {
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(png)], { type: 'image/png' }), 'scene.png');
    form.append('boxes', JSON.stringify(BOXES));
    form.append('ops', JSON.stringify(['align']));
    form.append('outputSize', '5');
    form.append('format', 'npy');
    const res = await fetch(`${base}/v1/roi`, { method: 'POST', body: form });
    const buf = Buffer.from(await res.arrayBuffer());
    expect(res.status === 200, `status ${res.status}: ${buf.toString('utf8', 0, 500)}`);
    const { descr, shape } = npyHeader(buf);
    expect(descr === '<f4', `dtype ${descr}, expected <f4`);
    expect(
      shape.length === 4 && shape[0] === BOXES.length && shape[2] === 5 && shape[3] === 5,
      `shape (${shape.join(', ')})`,
    );
    const values = shape.reduce((a, b) => a * b, 1);
    expect(buf.length >= 4 * values, `${buf.length} bytes for ${values} values`);
    return `(${shape.join(', ')}) <f4`;
  });

  await check('POST /v1/roi bad boxes → 400 problem+json', async () => {
    const res = await fetch(`${base}/v1/roi`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ image: png.toString('base64'), boxes: [[10, 10, 5]] }),
    });
    const text = await res.text();
    expect(res.status === 400, `status ${res.status}: ${text.slice(0, 300)}`);
    expect(
      res.headers.get('content-type')?.startsWith('application/problem+json'),
      `content-type ${res.headers.get('content-type')}`,
    );
  });

  const spec = (await fetch(`${base}/openapi.json`)
    .then((r) => r.json())
    .catch(() => ({}))) as { paths?: Record<string, unknown> };
  const diffRoute = spec.paths !== undefined && '/v1/diff' in spec.paths;
  if (!diffRoute && diffMode === 'if-present') {
    console.log('');
    console.log(
      '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
    );
    console.log(
      '!!! SKIPPED POST /v1/diff: the route is not in /openapi.json and SMOKE_DIFF=if-present.      !!!',
    );
    console.log(
      '!!! The image does NOT prove the visual diffs work. Set SMOKE_DIFF=required once it lands. !!!',
    );
    console.log(
      '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
    );
    console.log('');
  } else {
    await check('POST /v1/diff → PNG that decodes', async () => {
      const res = await fetch(`${base}/v1/diff`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ image: png.toString('base64'), boxes: BOXES }),
      });
      const buf = Buffer.from(await res.arrayBuffer());
      expect(res.status === 200, `status ${res.status}: ${buf.toString('utf8', 0, 500)}`);
      expect(
        res.headers.get('content-type')?.startsWith('image/png'),
        `content-type ${res.headers.get('content-type')}`,
      );
      // A full decode (every row inflated and unfiltered), not just the header.
      const { data, info } = await sharp(buf).raw().toBuffer({ resolveWithObject: true });
      expect(info.width > 0 && info.height > 0, `size ${info.width}×${info.height}`);
      const stats = await sharp(data, {
        raw: { width: info.width, height: info.height, channels: info.channels },
      }).stats();
      expect(
        stats.channels.some((ch) => ch.stdev > 1),
        'the sheet is a single flat colour',
      );
      return `${info.width}×${info.height} px, ${info.channels} channels, ${buf.length} bytes`;
    });
  }
}

/** What `load` writes: one entry per request. */
export interface LoadResult {
  results: {
    kind: 'heavy' | 'slow-reader';
    status: number;
    bytes: number;
    complete: boolean;
    endedAtMs: number;
    error?: string;
  }[];
}

type LoadEntry = LoadResult['results'][number];

/** `count` boxes spread over an 800×600 image. */
export function spreadBoxes(count: number): number[][] {
  const boxes: number[][] = [];
  for (let i = 0; i < count; i++) {
    const x = (i * 37) % 680;
    const y = (i * 53) % 480;
    boxes.push([x, y, x + 40 + (i % 80), y + 30 + (i % 90)]);
  }
  return boxes;
}

/**
 * Sends one request on `agent` and reads the answer, checking it is whole with `isComplete`.
 * With `pauseMs`, the client stops reading for that long once the headers arrive (a slow reader:
 * the service has ended the response but cannot flush it yet); `onHeaders` fires then.
 */
function send(
  agent: Agent,
  url: URL,
  body: string,
  kind: LoadEntry['kind'],
  isComplete: (bytes: Buffer) => boolean,
  hooks: { onBodySent: () => void; onHeaders?: () => void; onSocket: (s: Socket) => void; pauseMs?: number },
): Promise<LoadEntry> {
  return new Promise((resolve) => {
    const done = (status: number, bytes: Buffer, error?: string) =>
      resolve({
        kind,
        status,
        bytes: bytes.length,
        complete: !error && isComplete(bytes),
        endedAtMs: Date.now(),
        error,
      });
    const req = httpRequest(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        if (hooks.pauseMs !== undefined) {
          res.pause();
          setTimeout(() => res.resume(), hooks.pauseMs);
        }
        hooks.onHeaders?.();
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done(res.statusCode ?? 0, Buffer.concat(chunks)));
        res.on('error', (err) => done(res.statusCode ?? 0, Buffer.concat(chunks), err.message));
      },
    );
    req.on('error', (err) => done(0, Buffer.alloc(0), err.message));
    req.on('socket', hooks.onSocket);
    req.end(body, hooks.onBodySent);
  });
}

/**
 * The in-flight load for the `docker stop` check, like a connection pool's (a reverse proxy, an SDK):
 * keep-alive sockets that stay open after their answers until the server closes them.
 * - one slow reader first: `format=npy`, align at 14×14 on 60 boxes (~12 MB); it stops reading for
 *   2 s once the headers arrive, so the service has ended that response but still has most of it
 *   to write out when `docker stop` comes;
 * - `count` heavy JSON requests (800×600 image, 20 boxes, all three ops at 7×7: about 0.5-1 s of
 *   work each on 2 cores, ~4 MB answers) queued behind it.
 * SENT_FILE is written once every body is sent and the slow reader's headers have arrived.
 */
async function runLoad(base: string, count: number, sentFile: string, resultFile: string): Promise<void> {
  const png = (await scenePng(800, 600)).toString('base64');
  const heavy = JSON.stringify({ image: png, boxes: spreadBoxes(20) });
  const slowBoxes = 60;
  const slow = JSON.stringify({
    image: png,
    boxes: spreadBoxes(slowBoxes),
    ops: ['align'],
    outputSize: 14,
    format: 'npy',
  });
  const url = new URL('/v1/roi', base);
  const agent = new Agent({ keepAlive: true, maxSockets: count + 1 });
  const sockets = new Set<Socket>();
  let pending = count + 2; // every body sent, plus the slow reader's headers
  const progress = () => {
    if (--pending === 0) writeFileSync(sentFile, `${Date.now()}\n`);
  };
  const onSocket = (s: Socket) => sockets.add(s);

  const npyComplete = (bytes: Buffer) => {
    if (bytes.length < 10) return false;
    const { shape } = npyHeader(bytes);
    const headerEnd = bytes[6] === 1 ? 10 + bytes.readUInt16LE(8) : 12 + bytes.readUInt32LE(8);
    return shape[0] === slowBoxes && bytes.length === headerEnd + 4 * shape.reduce((x, y) => x * y, 1);
  };
  const jsonComplete = (bytes: Buffer) => {
    try {
      const parsed = JSON.parse(bytes.toString('utf8')) as { outputs?: Record<string, TensorJson> };
      return Object.keys(parsed.outputs ?? {}).length === 3;
    } catch {
      return false;
    }
  };

  const slowResult = send(agent, url, slow, 'slow-reader', npyComplete, {
    onBodySent: progress,
    onHeaders: progress,
    onSocket,
    pauseMs: 2000,
  });
  // Queue the heavy ones behind the slow reader's work.
  await new Promise((r) => setTimeout(r, 100));
  const heavyResults = Array.from({ length: count }, () =>
    send(agent, url, heavy, 'heavy', jsonComplete, { onBodySent: progress, onSocket }),
  );
  const results = await Promise.all([slowResult, ...heavyResults]);
  // Hold the idle sockets until the server closes them (it must, to exit), at most 20 s.
  const deadline = Date.now() + 20_000;
  while ([...sockets].some((s) => !s.destroyed) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  agent.destroy();
  writeFileSync(resultFile, JSON.stringify({ results } satisfies LoadResult));
}

async function main(): Promise<void> {
  const [command, base, ...rest] = process.argv.slice(2);
  if (command === 'check' && base) {
    await runChecks(base.replace(/\/$/, ''));
    const failed = checks.filter((c) => !c.ok).length;
    process.exitCode = failed === 0 ? 0 : 1;
  } else if (command === 'load' && base && rest.length === 3) {
    await runLoad(base, Number(rest[0]), rest[1], rest[2]);
  } else {
    console.error('usage: docker-smoke-client.ts check BASE_URL | load BASE_URL COUNT SENT_FILE RESULT_FILE');
    process.exitCode = 2;
  }
}

// Run only as a script: scripts/swarm-smoke-client.ts imports the helpers above.
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  await main();

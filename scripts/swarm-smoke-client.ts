/**
 * HTTP half of the Docker Swarm smoke test (`scripts/swarm-smoke.sh` deploys the stack and calls this).
 * Like `scripts/docker-smoke-client.ts` (whose scene and box helpers it uses), it never imports the
 * service's code: it talks to roiserve over real HTTP only.
 *
 *   tsx scripts/swarm-smoke-client.ts expect BASE_URL OUT_FILE
 *       sends each request kind once to BASE_URL (one plain container) and writes the sha256 of each
 *       answer's body to OUT_FILE as JSON (`{ kind: sha256 }`): the answers the replicas must give.
 *   tsx scripts/swarm-smoke-client.ts load BASE_URL CONCURRENCY EXPECTED_FILE STARTED_FILE STOP_FILE RESULT_FILE
 *       keeps CONCURRENCY requests in flight (the kinds in turn, each on keep-alive connections) until
 *       STOP_FILE exists (or SWARM_LOAD_MAX_S, default 240, passes), touching STARTED_FILE once the
 *       first answers are in; writes every request's outcome to RESULT_FILE and prints one
 *       `PASS …` / `FAIL …` line per check: every answer 200, every body bit-identical to EXPECTED_FILE.
 *
 *   tsx scripts/swarm-smoke-client.ts rate BASE_URL KIND CONCURRENCY SECONDS
 *       throughput of one kind (image, features, feature-map, or photo: fixtures/photo.jpg, 640×480,
 *       2 boxes): CONCURRENCY requests in flight for SECONDS, then one line with answers/s, latency
 *       percentiles and the count of non-200 answers (README "Scaling out" quotes it).
 *
 * The bodies are `.npy` and safetensors, which hold only the request's outputs and parameters; the JSON
 * format also carries per-request `timings`, so it could not be compared byte for byte.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { BOXES, scenePng, spreadBoxes } from './docker-smoke-client.js';

interface Kind {
  name: string;
  path: string;
  body: string;
}

/**
 * A deterministic float32 feature map `[1, C, H, W]` as base64 (a fixed linear congruential sequence,
 * so every run and every replica gets the same bytes).
 */
function featureMapBase64(c: number, h: number, w: number): string {
  const values = new Float32Array(c * h * w);
  let state = 12345;
  for (let i = 0; i < values.length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    values[i] = (state / 2 ** 32) * 4 - 2;
  }
  return Buffer.from(values.buffer).toString('base64');
}

/**
 * The requests of the test, all JSON bodies well under HAProxy's 1 MiB buffer (so the load balancer
 * can retry them): an image through the backbone and all three ops, a client's own feature map through
 * all three ops, and an image's feature map (`/v1/features`).
 */
async function kinds(): Promise<Kind[]> {
  const png = (await scenePng(320, 240)).toString('base64');
  return [
    {
      name: 'image',
      path: '/v1/roi',
      body: JSON.stringify({ image: png, boxes: BOXES, format: 'safetensors' }),
    },
    {
      name: 'features',
      path: '/v1/roi',
      body: JSON.stringify({
        features: { shape: [1, 32, 24, 32], layout: 'NCHW', data: featureMapBase64(32, 24, 32) },
        spatialScale: 0.25,
        boxes: spreadBoxes(16).map(([x1, y1, x2, y2]) => [x1 / 6, y1 / 6, x2 / 6, y2 / 6]),
        format: 'safetensors',
      }),
    },
    {
      name: 'feature-map',
      path: '/v1/features',
      body: JSON.stringify({ image: png, format: 'npy' }),
    },
  ];
}

interface Outcome {
  kind: string;
  status: number;
  sha256: string;
  bytes: number;
  startMs: number;
  endMs: number;
  error?: string;
  detail?: string;
}

async function send(base: string, kind: Kind): Promise<Outcome> {
  const startMs = Date.now();
  try {
    const res = await fetch(`${base}${kind.path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: kind.body,
      // Far above any answer here (well under a second of work each); a hang is a failure, not a stall.
      signal: AbortSignal.timeout(60_000),
    });
    const body = Buffer.from(await res.arrayBuffer());
    return {
      kind: kind.name,
      status: res.status,
      sha256: createHash('sha256').update(body).digest('hex'),
      bytes: body.length,
      startMs,
      endMs: Date.now(),
      ...(res.status === 200 ? {} : { detail: body.toString('utf8', 0, 300) }),
    };
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
    return {
      kind: kind.name,
      status: 0,
      sha256: '',
      bytes: 0,
      startMs,
      endMs: Date.now(),
      error: `${err instanceof Error ? err.message : String(err)}${cause}`,
    };
  }
}

async function expectCommand(base: string, outFile: string): Promise<void> {
  const expected: Record<string, string> = {};
  for (const kind of await kinds()) {
    const o = await send(base, kind);
    if (o.status !== 200) {
      console.log(`FAIL expected answers: ${kind.name} got ${o.status} ${o.error ?? o.detail ?? ''}`);
      process.exitCode = 1;
      return;
    }
    expected[kind.name] = o.sha256;
  }
  writeFileSync(outFile, JSON.stringify(expected, null, 2));
  const list = Object.entries(expected).map(([k, h]) => `${k} ${h.slice(0, 12)}`);
  console.log(`PASS expected answers from a single container (${list.join(', ')})`);
}

async function loadCommand(
  base: string,
  concurrency: number,
  expectedFile: string,
  startedFile: string,
  stopFile: string,
  resultFile: string,
): Promise<void> {
  const expected = JSON.parse(readFileSync(expectedFile, 'utf8')) as Record<string, string>;
  const all = await kinds();
  const maxMs = Number(process.env.SWARM_LOAD_MAX_S ?? 240) * 1000;
  const t0 = Date.now();
  const outcomes: Outcome[] = [];
  let next = 0;
  const stop = () => existsSync(stopFile) || Date.now() - t0 > maxMs;
  const loop = async (): Promise<void> => {
    while (!stop()) {
      const o = await send(base, all[next++ % all.length]);
      outcomes.push(o);
      if (outcomes.length === concurrency) writeFileSync(startedFile, `${Date.now()}\n`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  const seconds = (Date.now() - t0) / 1000;
  writeFileSync(resultFile, JSON.stringify({ seconds, outcomes }));

  const count = (name: string) => outcomes.filter((o) => o.kind === name).length;
  const mix = all.map((k) => `${k.name} ${count(k.name)}`).join(', ');
  const summary = `${outcomes.length} requests at concurrency ${concurrency} in ${seconds.toFixed(1)} s (${mix})`;
  const failed = outcomes.filter((o) => o.status !== 200);
  const show = (list: Outcome[]) =>
    list
      .slice(0, 5)
      .map(
        (o) =>
          `${o.kind} at +${((o.startMs - t0) / 1000).toFixed(1)} s: ${o.status} ${o.error ?? o.detail ?? ''}`,
      )
      .join('; ');
  if (outcomes.length < concurrency) console.log(`FAIL load: only ${summary}`);
  else if (failed.length === 0) console.log(`PASS every answer 200: ${summary}`);
  else console.log(`FAIL ${failed.length} of ${summary} not 200: ${show(failed)}`);

  const answered = outcomes.filter((o) => o.status === 200);
  const differ = answered.filter((o) => o.sha256 !== expected[o.kind]);
  if (answered.length > 0 && differ.length === 0) {
    console.log(
      `PASS all ${answered.length} answers bit-identical to the single container's (sha256 of the body)`,
    );
  } else {
    console.log(
      `FAIL ${differ.length} of ${answered.length} answers differ from the single container's: ${show(differ)}`,
    );
  }
}

/**
 * `rate` only: fixtures/photo.jpg (640×480) with the 2 boxes `npm run bench -- throughput` sends (there
 * as multipart with JSON output; the work is the same), all three ops.
 */
function photoKind(): Kind {
  const jpeg = readFileSync(new URL('../fixtures/photo.jpg', import.meta.url)).toString('base64');
  const boxes = [
    [96, 56, 224, 144],
    [0, 0, 320, 240],
  ];
  return {
    name: 'photo',
    path: '/v1/roi',
    body: JSON.stringify({ image: jpeg, boxes, format: 'safetensors' }),
  };
}

async function rateCommand(
  base: string,
  kindName: string,
  concurrency: number,
  seconds: number,
): Promise<void> {
  const kind = kindName === 'photo' ? photoKind() : (await kinds()).find((k) => k.name === kindName);
  if (!kind) throw new Error(`unknown kind ${kindName}: image, features, feature-map or photo`);
  await send(base, kind); // warm: the first answer pays for connection set-up and lazy loading
  const t0 = Date.now();
  const outcomes: Outcome[] = [];
  const loop = async (): Promise<void> => {
    while (Date.now() - t0 < seconds * 1000) outcomes.push(await send(base, kind));
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  const elapsed = (Date.now() - t0) / 1000;
  const ms = outcomes.map((o) => o.endMs - o.startMs).sort((a, b) => a - b);
  const pct = (p: number) => ms[Math.min(ms.length - 1, Math.floor((p / 100) * ms.length))];
  const bad = outcomes.filter((o) => o.status !== 200).length;
  console.log(
    `${kindName}: ${(outcomes.length / elapsed).toFixed(2)} answers/s (${outcomes.length} in ${elapsed.toFixed(1)} s, ` +
      `concurrency ${concurrency}), latency p50 ${pct(50)} ms, p95 ${pct(95)} ms, ${bad} not 200`,
  );
}

async function main(): Promise<void> {
  const [command, base, ...rest] = process.argv.slice(2);
  if (command === 'expect' && base && rest.length === 1) {
    await expectCommand(base.replace(/\/$/, ''), rest[0]);
  } else if (command === 'load' && base && rest.length === 5) {
    await loadCommand(base.replace(/\/$/, ''), Number(rest[0]), rest[1], rest[2], rest[3], rest[4]);
  } else if (command === 'rate' && base && rest.length === 3) {
    await rateCommand(base.replace(/\/$/, ''), rest[0], Number(rest[1]), Number(rest[2]));
  } else {
    console.error(
      'usage: swarm-smoke-client.ts expect BASE_URL OUT_FILE | load BASE_URL CONCURRENCY EXPECTED_FILE STARTED_FILE STOP_FILE RESULT_FILE | rate BASE_URL KIND CONCURRENCY SECONDS',
    );
    process.exitCode = 2;
  }
}

await main();

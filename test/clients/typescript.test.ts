/**
 * The TypeScript library: package.json `exports` (`roiserve`, `roiserve/ops`, `roiserve/client`), the
 * import graphs (`roiserve/ops` loads neither fastify, sharp nor tfjs; the client loads nothing), and
 * `RoiserveClient` against a live server, every call it makes checked against the live `/openapi.json`
 * (path, method, operationId, and every body field it sends is a property of the request schema).
 *
 * The resolve-by-name check (`node -e "import('roiserve/ops')"`) needs `npm run build`: CI builds
 * before testing, so there it FAILS without `dist/`; locally it is skipped with a message.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_OPERATIONS, decodeTensor, RoiserveClient, RoiserveError } from '../../src/client/index.js';
import { roiAlign, toCanonicalBoxes } from '../../src/ops/index.js';
import { buildApp } from '../../src/server.js';
import { testConfig, testPng } from '../support/fixtures.js';
import { runProcess } from '../support/process.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
  exports: Record<string, string | { types: string; default: string }>;
  scripts: Record<string, string>;
};
const built =
  existsSync(join(repo, 'dist/src/ops/index.js')) && existsSync(join(repo, 'dist/src/client/index.js'));
const FORBIDDEN = /^(fastify|@fastify\/|sharp|@tensorflow\/|piscina|onnxruntime)/;

/**
 * Every module a file loads at run time, following relative imports: `[files, packages]`. Type-only
 * imports and exports are erased by the compiler and skipped; `.js` specifiers in TypeScript sources
 * resolve to the `.ts` file next to them.
 */
export function importGraph(entry: string): { files: string[]; packages: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    const text = readFileSync(file, 'utf8');
    const specs = [
      ...text.matchAll(/^\s*(?:import|export)\s+(?!type\s)(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm),
      ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
    ].map((m) => m[1]);
    for (const spec of specs) {
      if (!spec.startsWith('.')) {
        packages.add(spec);
        continue;
      }
      let target = resolve(dirname(file), spec);
      if (file.endsWith('.ts') && target.endsWith('.js')) target = target.replace(/\.js$/, '.ts');
      visit(target);
    }
  };
  visit(entry);
  return { files: [...files], packages: [...packages] };
}

describe('package.json exports', () => {
  it('maps ".", "./ops" and "./client" to built files of existing sources, with their types', () => {
    for (const [name, source] of [
      ['.', 'src/index.ts'],
      ['./ops', 'src/ops/index.ts'],
      ['./client', 'src/client/index.ts'],
    ]) {
      const target = pkg.exports[name];
      expect(target, name).toEqual({
        types: `./dist/${source.replace(/\.ts$/, '.d.ts')}`,
        default: `./dist/${source.replace(/\.ts$/, '.js')}`,
      });
      expect(existsSync(join(repo, source)), source).toBe(true);
    }
    // npm start still runs the server entry, not the library entry
    expect(pkg.scripts.start).toBe('node dist/src/main.js');
  });

  it('roiserve/ops loads neither fastify, sharp nor tfjs (its import graph has no package at all)', () => {
    const graph = importGraph(join(repo, 'src/ops/index.ts'));
    expect(graph.files.length).toBeGreaterThan(10);
    expect(graph.packages.filter((p) => FORBIDDEN.test(p))).toEqual([]);
    expect(graph.packages.filter((p) => !p.startsWith('node:'))).toEqual([]);
  });

  it('roiserve/client loads nothing at run time (types only: it runs in browsers too)', () => {
    const graph = importGraph(join(repo, 'src/client/index.ts'));
    expect(graph).toEqual({ files: [join(repo, 'src/client/index.ts')], packages: [] });
  });

  it('the walker sees what it must: the service reaches fastify, its worker sharp and tfjs', () => {
    expect(importGraph(join(repo, 'src/index.ts')).packages).toContain('fastify');
    // the worker is loaded by file name (piscina), not imported: walk it on its own
    const worker = importGraph(join(repo, 'src/runtime/worker.ts')).packages;
    expect(worker).toContain('sharp');
    expect(worker).toContain('@tensorflow/tfjs');
  });

  if (!built && process.env.CI) {
    it('is built (CI runs npm run build before the tests)', () => {
      throw new Error('dist/src/ops/index.js or dist/src/client/index.js is missing: run npm run build');
    });
  } else if (!built) {
    console.warn('roiserve/ops by name skipped: run npm run build first');
  }

  it.runIf(built)(
    'resolves roiserve/ops and roiserve/client by name, and the built graph is as clean',
    () => {
      const script = `
      const ops = await import('roiserve/ops');
      const client = await import('roiserve/client');
      const out = ops.roiAlign(
        { data: new Float32Array([1, 2, 3, 4]), shape: [1, 1, 2, 2], layout: 'NCHW' },
        { data: new Float32Array([0, 0, 0, 2, 2]), count: 1 },
        { spatialScale: 1, outputSize: 1, samplingRatio: 1, aligned: true });
      console.log(JSON.stringify({ align: Array.from(out.data), ops: Object.keys(ops), client: Object.keys(client),
        resolved: import.meta.resolve('roiserve/ops') }));`;
      const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        cwd: repo,
        encoding: 'utf8',
      });
      expect(run.status, run.stderr).toBe(0);
      const res = JSON.parse(run.stdout) as {
        align: number[];
        ops: string[];
        client: string[];
        resolved: string;
      };
      expect(res.align).toEqual([2.5]);
      expect(res.ops).toEqual(
        expect.arrayContaining(['roiAlign', 'roiPool', 'roiWarp', 'coverage', 'psRoiAlign']),
      );
      expect(res.ops).toEqual(expect.arrayContaining(['psRoiPool', 'rotatedRoiAlign', 'multiScaleRoi']));
      expect(res.client).toEqual(expect.arrayContaining(['RoiserveClient', 'RoiserveError', 'decodeTensor']));
      expect(fileURLToPath(res.resolved)).toBe(join(repo, 'dist/src/ops/index.js'));
      const dist = importGraph(join(repo, 'dist/src/ops/index.js'));
      expect(dist.packages.filter((p) => !p.startsWith('node:'))).toEqual([]);
      expect(importGraph(join(repo, 'dist/src/client/index.js')).packages).toEqual([]);
      expect(existsSync(join(repo, 'dist/src/ops/index.d.ts'))).toBe(true);
    },
  );
});

interface Call {
  method: string;
  path: string;
  fields: string[];
}

interface OpenApi {
  paths: Record<
    string,
    Record<string, { operationId?: string; requestBody?: { content: Record<string, { schema: Schema }> } }>
  >;
  components: { schemas: Record<string, Schema> };
}
interface Schema {
  $ref?: string;
  properties?: Record<string, unknown>;
}

describe('RoiserveClient against a live server and its /openapi.json', () => {
  let app: FastifyInstance;
  let url: string;
  const calls: Call[] = [];
  let client: RoiserveClient;

  beforeAll(async () => {
    app = await buildApp(testConfig());
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    await app.readiness.settled;
    // Records what the client sends, then sends it.
    const recording: typeof fetch = (input, init) => {
      const u = new URL(String(input));
      const body = typeof init?.body === 'string' ? (JSON.parse(init.body) as Record<string, unknown>) : {};
      calls.push({
        method: (init?.method ?? 'GET').toLowerCase(),
        path: u.pathname,
        fields: Object.keys(body),
      });
      return fetch(input, init);
    };
    client = new RoiserveClient(`${url}/`, { fetch: recording });
  });

  afterAll(async () => {
    await app?.close();
  });

  const map = { data: new Float32Array(2 * 4 * 4).map((_, i) => Math.sin(i)), shape: [1, 2, 4, 4] as const };
  const boxes = [[0.5, 0.25, 3, 3.5]];

  it('roi with features as a Float32Array equals roiserve/ops roiAlign on the same input', async () => {
    const res = await client.roi({
      features: { ...map, shape: [...map.shape], layout: 'NCHW' },
      spatialScale: 1,
      boxes,
      ops: ['align'],
      outputSize: [2, 3],
      samplingRatio: 0,
      aligned: false,
    });
    const want = roiAlign(
      { data: map.data, shape: map.shape, layout: 'NCHW' },
      toCanonicalBoxes(boxes, { batchSize: 1 }),
      { spatialScale: 1, outputSize: [2, 3], samplingRatio: 0, aligned: false },
    );
    expect(res.outputs.align?.shape).toEqual([1, 2, 2, 3]);
    expect(Array.from(decodeTensor(res.outputs.align!))).toEqual(Array.from(want.data));
  });

  it('roi with image bytes, npy and safetensors formats, diff (png, json), features, backbone', async () => {
    const png = await testPng(64, 48);
    const json = await client.roi({ image: png, boxes: [[4, 4, 40, 30]], ops: ['pool'], outputSize: 2 });
    expect(json.outputs.pool?.shape).toEqual([1, 256, 2, 2]);
    const npy = await client.roi({ image: png, boxes: [[4, 4, 40, 30]], ops: ['align'], format: 'npy' });
    expect(Buffer.from(npy.bytes.subarray(0, 6)).toString('latin1')).toBe('\x93NUMPY');
    const st = await client.roi({ image: png, boxes: [[4, 4, 40, 30]], format: 'safetensors' });
    expect(st.bytes.length).toBeGreaterThan(8);
    const sheet = await client.diff({ image: png, boxes: [[4, 4, 40, 30]], outputSize: 3 });
    expect(sheet.contentType).toMatch(/^image\/png/);
    expect(Array.from(sheet.bytes.subarray(0, 4))).toEqual([0x89, 0x50, 0x4e, 0x47]);
    const data = await client.diff({ image: png, boxes: [[4, 4, 40, 30]], outputSize: 3, format: 'json' });
    expect(data.coverage).toHaveLength(1);
    const feats = await client.features({ image: png });
    expect(feats.features.shape[1]).toBe(256);
    expect(decodeTensor({ ...feats.features, dtype: 'float32' })).toHaveLength(
      feats.features.shape.reduce((a, b) => a * b),
    );
    const featsNpy = await client.features({ image: png, format: 'npy' });
    expect(featsNpy.contentType).toMatch(/npy/);
    const backbone = await client.backbone();
    expect(backbone.stride).toBe(16);
  });

  it('an error answer throws RoiserveError with the problem+json fields', async () => {
    const err = await client
      .roi({ features: { ...map, shape: [...map.shape] }, spatialScale: 1, boxes, outputSize: 0 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RoiserveError);
    const e = err as RoiserveError;
    expect(e.status).toBe(400);
    expect(e.type).toBe('urn:roiserve:problem:invalid-input');
    expect(e.errors.map((x) => x.field)).toContain('outputSize');
    expect(e.message).toContain('outputSize');
  });

  it.runIf(built)(
    "runs the README's example, clients/typescript/example.ts (roiserve/client and roiserve/ops by name)",
    async () => {
      const tsx = join(repo, 'node_modules/tsx/dist/cli.mjs');
      // async: the server runs in this process and must answer meanwhile
      const run = await runProcess(process.execPath, [tsx, 'clients/typescript/example.ts'], {
        cwd: repo,
        env: { ...process.env, ROISERVE_URL: url },
      });
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout.trim().split('\n')).toEqual([
        '[ 1, 256, 7, 7 ] 12544',
        'true image/png',
        'Float32Array(1) [ 2.5 ]',
        '400 outputSize',
      ]);
    },
  );

  it('the README shows clients/typescript/example.ts as it is', () => {
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    // the ```ts block that shows the example (other sections have ts blocks too)
    const block = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].find((m) =>
      m[1].includes("from 'roiserve/client'"),
    );
    expect(block?.[1]).toBe(readFileSync(join(repo, 'clients/typescript/example.ts'), 'utf8'));
  });

  it('every call it made exists in /openapi.json with that method, operationId and body fields', async () => {
    const spec = (await (await fetch(`${url}/openapi.json`)).json()) as OpenApi;
    const schemaOf = (s: Schema): Schema => (s.$ref ? spec.components.schemas[s.$ref.split('/').pop()!] : s);
    expect(new Set(calls.map((c) => `${c.method} ${c.path}`))).toEqual(
      new Set(CLIENT_OPERATIONS.map((o) => `${o.method} ${o.path}`)),
    );
    for (const op of CLIENT_OPERATIONS) {
      expect(spec.paths[op.path]?.[op.method]?.operationId, `${op.method} ${op.path}`).toBe(op.operationId);
    }
    for (const call of calls) {
      const operation = spec.paths[call.path][call.method];
      if (call.fields.length === 0) continue;
      const schema = schemaOf(operation.requestBody!.content['application/json'].schema);
      const known = Object.keys(schema.properties ?? {});
      for (const f of call.fields) expect(known, `${call.method} ${call.path} sends ${f}`).toContain(f);
    }
  });
});

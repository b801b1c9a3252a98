/**
 * The OpenAPI document is one that clients can be generated from, and that works as it stands:
 * - it is valid OpenAPI 3; every operation has a unique `operationId`; errors are
 *   `application/problem+json` with the named `Problem` schema; request and response bodies are named
 *   components (`RoiRequest`, `RoiResponse`, …);
 * - multipart bodies are described as sent: `image` / `features` binary file parts, structured fields
 *   as JSON text; a multipart request built that way is answered 200;
 * - every operation's example ("Try it out" in `/docs`) is answered with 2xx by the live service;
 * - a typed client generated from `/openapi.json` (openapi-typescript, then openapi-fetch) type-checks
 *   (and refuses a wrong body at compile time) and works against the live service.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Validator } from '@seriousme/openapi-schema-validator';
import type { FastifyInstance } from 'fastify';
import openapiTS, { astToString } from 'openapi-typescript';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/server.js';
import { writeNpy } from '../src/tensors/npy.js';
import { testConfig, testPng } from './support/fixtures.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const repo = fileURLToPath(new URL('../', import.meta.url));
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

let app: FastifyInstance;
let base: string;
let doc: Json;

/** Every operation of the document: method, path and the operation object. */
function operations(): { method: string; path: string; op: Json }[] {
  return Object.entries(doc.paths as Json).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m] !== undefined).map((method) => ({
      method,
      path,
      op: item[method] as Json,
    })),
  );
}

/** An operation's path parameters, each its documented `example` (e.g. `{ model: 'roi_align' }`). */
function pathExample(op: Json): Record<string, string> {
  const params = (op.parameters ?? []) as Json[];
  return Object.fromEntries(
    params.filter((p) => p.in === 'path').map((p) => [p.name, String(p.schema?.example)]),
  );
}

/** `path` with its `{name}` placeholders filled in from {@link pathExample}. */
function examplePath(path: string, op: Json): string {
  const values = pathExample(op);
  return path.replace(/\{(\w+)\}/g, (_m, name: string) => values[name] ?? `{${name}}`);
}

/** The component a `$ref` names. */
function component(ref: string): Json {
  const name = ref.replace('#/components/schemas/', '');
  const schema = doc.components.schemas[name];
  if (schema === undefined) throw new Error(`no component ${name}`);
  return schema;
}

beforeAll(async () => {
  app = await buildApp(testConfig());
  base = await app.listen({ host: '127.0.0.1', port: 0 });
  await app.readiness.settled;
  doc = (await (await fetch(`${base}/openapi.json`)).json()) as Json;
});

afterAll(async () => {
  await app?.close();
});

describe('the OpenAPI document', () => {
  it('is valid OpenAPI 3', async () => {
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('names every operation, once, and lists the API routes (not the playground or itself)', () => {
    const ids = operations().map(({ op }) => op.operationId);
    expect(ids.every((id) => typeof id === 'string' && id.length > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    const byRoute = Object.fromEntries(
      operations().map(({ method, path, op }) => [`${method} ${path}`, op.operationId]),
    );
    expect(byRoute).toMatchObject({
      'post /v1/roi': 'roi',
      'post /v1/diff': 'diff',
      'post /v1/features': 'features',
      'get /v1/backbone': 'backbone',
      'get /healthz': 'healthz',
      'get /readyz': 'readyz',
      'get /metrics': 'metrics',
    });
    expect(Object.keys(doc.paths)).not.toContain('/openapi.json');
    expect(Object.keys(doc.paths).filter((p) => p === '/' || p.startsWith('/playground'))).toEqual([]);
  });

  it('describes errors as application/problem+json with the Problem schema', () => {
    let problems = 0;
    for (const { method, path, op } of operations()) {
      for (const [status, response] of Object.entries(op.responses as Json)) {
        const content = (response as Json).content ?? {};
        for (const [type, media] of Object.entries(content as Json)) {
          const isProblem = (media as Json).schema?.$ref === '#/components/schemas/Problem';
          // A problem is always sent as problem+json, and what is sent as problem+json is a problem.
          expect(isProblem, `${method} ${path} ${status} ${type}`).toBe(type === 'application/problem+json');
          if (isProblem) problems++;
        }
        if (path.startsWith('/v1/') && Number(status) >= 400) {
          expect(Object.keys(content), `${method} ${path} ${status}`).toEqual(['application/problem+json']);
        }
      }
    }
    expect(problems).toBeGreaterThan(10);
    expect(component('#/components/schemas/Problem').required).toEqual(
      expect.arrayContaining(['type', 'title', 'status', 'detail']),
    );
  });

  it('has named component schemas, and every $ref resolves', () => {
    const names = Object.keys(doc.components.schemas);
    expect(names).toEqual(
      expect.arrayContaining([
        'RoiRequest',
        'RoiRequestMultipart',
        'RoiResponse',
        'DiffRequest',
        'DiffRequestMultipart',
        'DiffResponse',
        'FeaturesRequest',
        'FeaturesResponse',
        'BackboneDescription',
        'FeatureMap',
        'Tensor',
        'Problem',
        'Readiness',
      ]),
    );
    // The library's input/output twins are gone: one name per schema.
    expect(names.filter((n) => n.endsWith('Input'))).toEqual([]);
    const roi = doc.paths['/v1/roi'].post;
    expect(roi.requestBody.content['application/json'].schema.$ref).toBe('#/components/schemas/RoiRequest');
    expect(roi.responses['200'].content['application/json'].schema.$ref).toBe(
      '#/components/schemas/RoiResponse',
    );
    expect(component('#/components/schemas/RoiRequest').properties.samplingRatio.default).toBe(2);
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
    for (const ref of new Set(refs)) expect(() => component(JSON.parse(`{${ref}}`).$ref)).not.toThrow();
  });

  it('describes multipart bodies as sent: binary file parts, JSON-text fields', () => {
    for (const path of ['/v1/roi', '/v1/diff', '/v1/features']) {
      const content = doc.paths[path].post.requestBody.content;
      const json = component(content['application/json'].schema.$ref);
      const form = component(content['multipart/form-data'].schema.$ref);
      expect(form.properties.image, path).toMatchObject({ type: 'string', format: 'binary' });
      if (path !== '/v1/features') {
        expect(form.properties.features, path).toMatchObject({ type: 'string', format: 'binary' });
        expect(form.properties.boxes, path).toMatchObject({ type: 'string' });
        expect(form.properties.boxes.description, path).toMatch(/^JSON text/);
        expect(form.properties.outputSize.description, path).toMatch(/^JSON text/);
        // Plain values stay typed: swagger-ui offers the enum, clients the type.
        expect(form.properties.mode, path).toMatchObject({
          type: 'string',
          enum: ['avg', 'max', 'onnx_max'],
        });
        expect(form.properties.layout, path).toMatchObject({ enum: ['NCHW', 'NHWC'] });
        expect(form.required, path).toEqual(['boxes']);
      }
      // Every JSON field can be sent in the form too.
      for (const name of Object.keys(json.properties))
        expect(form.properties, `${path} ${name}`).toHaveProperty(name);
    }
  });

  it('a multipart request written as the document says is answered 200', async () => {
    const form = new FormData();
    const map = Float32Array.from({ length: 16 }, (_, i) => i);
    form.append('features', new Blob([new Uint8Array(writeNpy(map, [1, 1, 4, 4]))]), 'map.npy');
    form.append('layout', 'NCHW');
    form.append('boxes', '[[0, 0, 4, 4]]');
    form.append('outputSize', '[1, 2]');
    form.append('spatialScale', '1');
    form.append('ops', '["pool"]');
    form.append('encoding', 'array');
    const r = await fetch(`${base}/v1/roi`, { method: 'POST', body: form });
    expect(r.status).toBe(200);
    expect((await r.json()).outputs.pool).toEqual({ shape: [1, 1, 1, 2], dtype: 'float32', data: [14, 15] });

    const image = new FormData();
    image.append('image', new Blob([new Uint8Array(await testPng(32, 32))]), 'x.png');
    const f = await fetch(`${base}/v1/features`, { method: 'POST', body: image });
    expect(f.status).toBe(200);
  });

  it("every operation's example is answered with 2xx (Try it out works as it stands)", async () => {
    for (const { method, path, op } of operations()) {
      const json = op.requestBody?.content?.['application/json'];
      if (op.requestBody !== undefined) {
        // Only one of image / features: swagger-ui's made-up body had both, a 400.
        expect(json?.example, `${method} ${path} has a body example`).toBeDefined();
        const both = json.example.image !== undefined && json.example.features !== undefined;
        expect(both, `${method} ${path}`).toBe(false);
      }
      const r = await fetch(`${base}${examplePath(path, op)}`, {
        method: method.toUpperCase(),
        ...(json?.example !== undefined
          ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(json.example) }
          : {}),
      });
      const text = r.status >= 300 ? await r.text() : (await r.arrayBuffer(), '');
      expect(r.status, `${method} ${path}: ${text}`).toBeGreaterThanOrEqual(200);
      expect(r.status, `${method} ${path}: ${text}`).toBeLessThan(300);
    }
  });
});

/**
 * Typed calls through a client generated from the document. Written as a TypeScript file next to the
 * generated `schema.ts`, type-checked with the compiler (strict), then transpiled and run. Besides the
 * calls below, `examples()` calls every operation with the document's own example, each typed as the
 * generated request body type (so the examples are checked against the types too).
 */
const CLIENT = `
import createClient from 'openapi-fetch';
import type { components, paths } from './schema.js';

type RoiRequest = components['schemas']['RoiRequest'];
type RoiResponse = components['schemas']['RoiResponse'];
type BackboneDescription = components['schemas']['BackboneDescription'];
type Problem = components['schemas']['Problem'];

export async function run(baseUrl: string) {
  const client = createClient<paths>({ baseUrl });
  const body: RoiRequest = {
    features: { shape: [1, 1, 2, 2], layout: 'NCHW', data: 'AACAPwAAAEAAAEBAAACAQA==' },
    spatialScale: 1,
    boxes: [[0, 0, 2, 2]],
    outputSize: 1,
    ops: ['align'],
    encoding: 'array',
  };
  // @ts-expect-error: the generated types know boxes are rows of numbers
  const wrong: RoiRequest = { ...body, boxes: 'not boxes' };
  void wrong;

  const roi = await client.POST('/v1/roi', { body });
  const roiData = roi.data as RoiResponse | undefined;
  const backbone = await client.GET('/v1/backbone');
  const description: BackboneDescription | undefined = backbone.data;
  const bad = await client.POST('/v1/roi', { body: { ...body, boxes: [[2, 0, 0, 2]] } });
  const problem: Problem | undefined = bad.error;
  return {
    examples: await examples(client),
    roiStatus: roi.response.status,
    align: roiData?.outputs.align,
    stride: description?.stride,
    layers: description?.layers.length,
    badStatus: bad.response.status,
    badContentType: bad.response.headers.get('content-type'),
    problemType: problem?.type,
    problemField: problem?.errors?.[0]?.field,
  };
}
`;

/** `examples(client)`: each operation called with its example body (typed), statuses by operationId. */
function exampleCalls(): string {
  const calls = operations().map(({ method, path, op }) => {
    const call = `client.${method.toUpperCase()}(${JSON.stringify(path)}`;
    const example = op.requestBody?.content?.['application/json']?.example;
    const key = JSON.stringify(op.operationId);
    const pathParams = pathExample(op);
    const params =
      Object.keys(pathParams).length > 0 ? `params: { path: ${JSON.stringify(pathParams)} }, ` : '';
    if (example === undefined)
      return `  statuses[${key}] = (await ${call}, { ${params}parseAs: 'blob' })).response.status;`;
    const type = `NonNullable<paths[${JSON.stringify(path)}][${JSON.stringify(method)}]['requestBody']>['content']['application/json']`;
    return [
      '  {',
      `    const body: ${type} = ${JSON.stringify(example)};`,
      `    statuses[${key}] = (await ${call}, { ${params}body, parseAs: 'blob' })).response.status;`,
      '  }',
    ].join('\n');
  });
  return [
    '',
    'async function examples(client: ReturnType<typeof createClient<paths>>) {',
    '  const statuses: Record<string, number> = {};',
    ...calls,
    '  return statuses;',
    '}',
    '',
  ].join('\n');
}

describe('a typed client generated from /openapi.json', () => {
  let dir: string;

  beforeAll(() => {
    // Inside the repository (git-ignored), so the client's `import 'openapi-fetch'` resolves.
    mkdirSync(join(repo, 'test-results'), { recursive: true });
    dir = mkdtempSync(join(repo, 'test-results', 'openapi-client-'));
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('generates, type-checks and calls the live service', async () => {
    // defaultNonNullable off: request fields with defaults stay optional in the generated types.
    const ast = await openapiTS(doc as never, { defaultNonNullable: false, silent: true });
    writeFileSync(join(dir, 'schema.ts'), astToString(ast));
    const source = CLIENT + exampleCalls();
    writeFileSync(join(dir, 'client.ts'), source);

    const program = ts.createProgram([join(dir, 'schema.ts'), join(dir, 'client.ts')], {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
      types: [],
      skipLibCheck: true,
    });
    const diagnostics = ts
      .getPreEmitDiagnostics(program)
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    expect(diagnostics).toEqual([]);

    const js = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    writeFileSync(join(dir, 'client.mjs'), js);
    const client = (await import(/* @vite-ignore */ pathToFileURL(join(dir, 'client.mjs')).href)) as {
      run: (baseUrl: string) => Promise<Record<string, unknown>>;
    };
    const result = await client.run(base);
    expect(result).toMatchObject({
      roiStatus: 200,
      align: { shape: [1, 1, 1, 1], dtype: 'float32', data: [2.5] },
      stride: 16,
      badStatus: 400,
      badContentType: 'application/problem+json; charset=utf-8',
      problemType: 'urn:roiserve:problem:invalid-input',
    });
    expect(result.layers).toBeGreaterThan(5);
    // Every operation, called through the typed client with the document's example: 2xx.
    const statuses = result.examples as Record<string, number>;
    expect(Object.keys(statuses).sort()).toEqual(
      operations()
        .map(({ op }) => op.operationId as string)
        .sort(),
    );
    for (const [id, status] of Object.entries(statuses)) expect(status, id).toBeGreaterThanOrEqual(200);
    for (const [id, status] of Object.entries(statuses)) expect(status, id).toBeLessThan(300);
    expect(String(result.problemField)).toMatch(/^boxes/);
  });
});

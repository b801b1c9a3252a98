import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import playground, { playgroundRoot } from '../../routes/playground.js';

/** The page's pure helpers (plain browser ES module, typed here for the test). */
interface RequestHelpers {
  requestFields(route: 'diff' | 'roi', p: Record<string, unknown>): [string, string][];
  shellQuote(s: string): string;
  curlCommand(
    url: string,
    fields: [string, string][],
    imageName: string,
    output: string,
    withKey?: boolean,
  ): string;
  parseBoxes(text: string): number[][];
  parseServerTiming(header: string | null): { name: string; dur?: number; desc?: string }[];
  problemMessage(status: number, body: unknown): string;
}

const root = playgroundRoot();
const helpers = (await import(pathToFileURL(join(root, 'playground/request.js')).href)) as RequestHelpers;

/** Every file under `dir`, relative, with `/` separators. */
function listFiles(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? listFiles(join(dir, entry.name), `${prefix}${entry.name}/`)
      : [`${prefix}${entry.name}`],
  );
}

describe('playground route', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = Fastify();
    await app.register(playground);
    await app.ready();
  });
  afterAll(() => app.close());

  it('serves the page at / with a same-origin CSP', async () => {
    const res = await app.inject({ method: 'GET', url: '/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toContain('<canvas');
    expect(res.headers['content-security-policy']).toContain("default-src 'self'");
  });

  it('serves every asset the page references, with the right content type', async () => {
    const html = (await app.inject({ method: 'GET', url: '/' })).body;
    const refs = [...html.matchAll(/(?:src|href)="([^"#:]+)"/g)].map((m) => m[1]).filter((r) => r !== 'docs');
    expect(refs).toEqual(expect.arrayContaining(['playground/style.css', 'playground/app.js']));
    const js = readFileSync(join(root, 'playground/app.js'), 'utf8');
    // Module imports of app.js resolve next to it.
    const imports = [...js.matchAll(/from '\.\/([^']+)'/g)].map((m) => `playground/${m[1]}`);
    expect(imports.length).toBeGreaterThanOrEqual(3);
    for (const ref of [...refs, ...imports]) {
      const res = await app.inject({ method: 'GET', url: `/${ref}` });
      expect(res.statusCode, ref).toBe(200);
      const type = ref.endsWith('.css') ? /^text\/css/ : /^(application|text)\/javascript/;
      expect(res.headers['content-type'], ref).toMatch(type);
    }
  });

  it('loads nothing from other origins (works offline)', () => {
    for (const file of listFiles(root)) {
      const text = readFileSync(join(root, file), 'utf8');
      // Any absolute URL in a src/href/import/url() would be a network dependency.
      expect(text, file).not.toMatch(/(?:src|href)\s*=\s*["']?(?:https?:)?\/\//i);
      expect(text, file).not.toMatch(/(?:import|from)\s*\(?\s*["'](?:https?:)?\/\//i);
      expect(text, file).not.toMatch(/url\(\s*["']?(?:https?:)?\/\//i);
    }
  });

  it('does not answer API paths or unknown files (no wildcard route)', async () => {
    expect((await app.inject({ method: 'GET', url: '/v1/nothing' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/playground/../package.json' })).statusCode).toBe(404);
  });
});

describe('playground request helpers', () => {
  const params = {
    boxes: [[10, 20, 110, 90.5]],
    ops: ['pool', 'align'],
    outputSize: [7, 5],
    samplingRatio: 0,
    aligned: false,
    mode: 'onnx_max',
    maxBoxes: 12,
    channel: '3',
  };

  it('sends arrays as JSON text and plain values plain, in the API field names', () => {
    expect(helpers.requestFields('diff', { ...params, format: 'json' })).toEqual([
      ['boxes', '[[10,20,110,90.5]]'],
      ['ops', '["pool","align"]'],
      ['outputSize', '[7,5]'],
      ['samplingRatio', '0'],
      ['aligned', 'false'],
      ['mode', 'onnx_max'],
      ['maxBoxes', '12'],
      ['channel', '3'],
      ['format', 'json'],
    ]);
    // /v1/roi has no `maxBoxes` nor `channel`; a square output size goes as one integer.
    const roi = helpers.requestFields('roi', { ...params, outputSize: [7, 7], format: 'npy' });
    expect(roi.map(([k]) => k)).not.toContain('channel');
    expect(roi.map(([k]) => k)).not.toContain('maxBoxes');
    // The diff compares all three ops whatever `ops` says: the page leaves it out.
    expect(helpers.requestFields('diff', { ...params, ops: undefined }).map(([k]) => k)).not.toContain('ops');
    expect(roi).toContainEqual(['outputSize', '7']);
  });

  it('quotes shell words so that the shell gives back the exact bytes', async () => {
    const { execFileSync } = await import('node:child_process');
    const words = ['plain', "it's", 'boxes=[[1,2,3,4]]', 'ops=["pool","warp"]', 'a b $HOME `x` \\ !'];
    for (const word of words) {
      const echoed = execFileSync('sh', ['-c', `printf %s ${helpers.shellQuote(word)}`], {
        encoding: 'utf8',
      });
      expect(echoed).toBe(word);
    }
  });

  it('builds a curl command with one -F per field and the key from the environment', () => {
    const cmd = helpers.curlCommand(
      'http://127.0.0.1:8080/v1/diff',
      [['boxes', '[[1,2,3,4]]']],
      'my scene.png',
      'out.png',
      true,
    );
    expect(cmd).toContain(`-F 'image=@my scene.png'`);
    expect(cmd).toContain(`-F 'boxes=[[1,2,3,4]]'`);
    expect(cmd).toContain('-H "Authorization: Bearer $ROISERVE_API_KEY"');
    expect(cmd).toMatch(/-o out\.png \\\n {2}http:\/\/127\.0\.0\.1:8080\/v1\/diff$/);
    // curl would read ; and , in a file name as options: the name is double-quoted for curl.
    expect(helpers.curlCommand('u', [], 'a;b.png', 'o')).toContain(`-F 'image=@"a;b.png"'`);
  });

  it('parses pasted boxes and names the bad row', () => {
    expect(helpers.parseBoxes('[[1, 2, 3, 4], [0, 5, 6, 7, 8]]')).toEqual([
      [1, 2, 3, 4],
      [5, 6, 7, 8],
    ]);
    expect(helpers.parseBoxes('{"boxes": [[1, 2, 3, 4]]}')).toEqual([[1, 2, 3, 4]]);
    expect(helpers.parseBoxes('[1, 2, 3, 4]')).toEqual([[1, 2, 3, 4]]);
    expect(() => helpers.parseBoxes('[[1, 2, 3]]')).toThrow(/boxes\[0\]: expected 4 numbers/);
    expect(() => helpers.parseBoxes('[[1, 2, 3, 4], [5, 6, 1, 7]]')).toThrow(/boxes\[1\]: expected x2 >= x1/);
    expect(() => helpers.parseBoxes('[[1, 2, 3, 4, 5]]')).toThrow(/boxes\[0\]\[0\]/);
    expect(() => helpers.parseBoxes('[[1, 2, "3", 4]]')).toThrow(/finite numbers/);
    expect(() => helpers.parseBoxes('[[1, 2')).toThrow(/not valid JSON/);
  });

  it('reads Server-Timing and problem bodies', () => {
    expect(helpers.parseServerTiming('decode;dur=1.5, backbone;dur=30;desc="wasm", encode')).toEqual([
      { name: 'decode', dur: 1.5 },
      { name: 'backbone', dur: 30, desc: 'wasm' },
      { name: 'encode' },
    ]);
    expect(helpers.parseServerTiming(null)).toEqual([]);
    const message = helpers.problemMessage(400, {
      title: 'Invalid input',
      detail: 'boxes[0] has x2 < x1',
      errors: [{ field: 'boxes[0]', expected: 'x2 >= x1', message: 'bad box' }],
    });
    expect(message).toBe('400: Invalid input — boxes[0] has x2 < x1\nboxes[0]: expected x2 >= x1');
    expect(helpers.problemMessage(502, 'Bad gateway')).toBe('502: Bad gateway');
  });
});

describe('playground box colours', () => {
  it("never reuse the diff sheet's lost, gained or read-outline colours", async () => {
    const { boxColour } = (await import(pathToFileURL(join(root, 'playground/editor.js')).href)) as {
      boxColour(index: number): string;
    };
    const { PALETTE, hex } = await import('../../src/imaging/colormap.js');
    const reserved = [PALETTE.lost, PALETTE.gained, PALETTE.read].map((c) => hex(c).toLowerCase());
    const colours = Array.from({ length: 14 }, (_, i) => boxColour(i).toLowerCase());
    for (const c of colours) expect(reserved).not.toContain(c);
    // Seven distinct colours before they cycle.
    expect(new Set(colours).size).toBe(7);
  });
});

/**
 * The built `roiserve` CLI (dist/src/cli/index.js, what `bin` points at) run on `fixtures/`: its
 * files are the service's answers byte for byte, in-process and with `--url`; bad input exits 2 with
 * the field named; a folder batch writes one file per good image, lists the bad one and exits 1.
 */
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/server.js';
import { testConfig } from '../support/fixtures.js';
import { runProcess, type Run } from '../support/process.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(repo, 'dist/src/cli/index.js');
const photo = join(repo, 'fixtures/photo.jpg');
const featuresNpy = join(repo, 'fixtures/features.npy');

/** Runs the built CLI in `cwd` with a bare environment (one worker, no inherited service settings). */
function roiserve(args: string[], cwd: string): Promise<Run> {
  return runProcess(process.execPath, [cli, ...args], {
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, WORKERS: '1' },
  });
}

/** Whether dist is older than any source file it is built from (or missing). */
function distIsStale(): boolean {
  if (!existsSync(cli)) return true;
  const built = statSync(cli).mtimeMs;
  const newer = (folder: string): boolean =>
    readdirSync(join(repo, folder), { recursive: true, encoding: 'utf8' }).some(
      (file) => file.endsWith('.ts') && statSync(join(repo, folder, file)).mtimeMs > built,
    );
  return newer('src') || newer('routes');
}

/**
 * Builds dist (the CLI as `npx roiserve` runs it) when it is stale. Only then: other test files read
 * dist (test/clients/typescript.test.ts), and tsc rewriting it under them could race; CI builds first.
 */
function build(): Promise<void> {
  if (!distIsStale()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const tsc = join(repo, 'node_modules/typescript/bin/tsc');
    const child = spawn(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
      cwd: repo,
      stdio: 'inherit',
    });
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`tsc exited ${code}`))));
  });
}

let app: FastifyInstance;
let url: string;
let dir: string;

/** The service's answer to a multipart POST /v1/roi with these fields. */
async function service(file: { field: 'image' | 'features'; path: string }, fields: Record<string, string>) {
  const form = new FormData();
  form.append(file.field, new Blob([readFileSync(file.path)]), 'input');
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  const res = await fetch(`${url}/v1/roi`, { method: 'POST', body: form });
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

beforeAll(async () => {
  await build();
  app = await buildApp(testConfig());
  url = await app.listen({ host: '127.0.0.1', port: 0 });
  dir = mkdtempSync(join(tmpdir(), 'roiserve-cli-'));
  writeFileSync(
    join(dir, 'boxes.json'),
    JSON.stringify([
      [96, 56, 224, 144],
      [0, 0, 320, 240],
    ]),
  );
  writeFileSync(
    join(dir, 'map-boxes.json'),
    JSON.stringify({
      boxes: [
        [0, 2, 2, 10, 12],
        [1, 0, 0, 16, 16],
      ],
    }),
  );
}, 240_000);

afterAll(async () => {
  await app?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('roiserve roi', () => {
  it('an image in-process: the .npy is the service answer byte for byte', async () => {
    const run = await roiserve(
      ['roi', photo, '--boxes', 'boxes.json', '--op', 'align', '--no-aligned', '-o', 'align.npy'],
      dir,
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const expected = await service(
      { field: 'image', path: photo },
      { boxes: '[[96,56,224,144],[0,0,320,240]]', ops: '["align"]', aligned: 'false', format: 'npy' },
    );
    expect(readFileSync(join(dir, 'align.npy')).equals(expected)).toBe(true);
  }, 60_000);

  it('--pyramid: the image through the backbone pyramid, the service answer byte for byte', async () => {
    const run = await roiserve(
      [
        'roi',
        photo,
        '--boxes',
        'boxes.json',
        '--op',
        'align',
        '--pyramid',
        '--output-size',
        '2',
        '-o',
        'fpn.npy',
      ],
      dir,
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const expected = await service(
      { field: 'image', path: photo },
      {
        boxes: '[[96,56,224,144],[0,0,320,240]]',
        ops: '["align"]',
        pyramid: 'true',
        outputSize: '2',
        format: 'npy',
      },
    );
    expect(readFileSync(join(dir, 'fpn.npy')).equals(expected)).toBe(true);
  }, 60_000);

  it('a .npy feature map in-process and with --url: safetensors equal to the service answer', async () => {
    const args = [
      'roi',
      featuresNpy,
      '--spatial-scale',
      '0.5',
      '--boxes',
      'map-boxes.json',
      '--output-size',
      '2',
    ];
    const local = await roiserve([...args, '-o', 'roi.safetensors'], dir);
    expect(local.code).toBe(0);
    const remote = await roiserve([...args, '-o', 'remote.safetensors', '--url', url], dir);
    expect(remote.code).toBe(0);
    const expected = await service(
      { field: 'features', path: featuresNpy },
      { boxes: '[[0,2,2,10,12],[1,0,0,16,16]]', spatialScale: '0.5', outputSize: '2', format: 'safetensors' },
    );
    expect(readFileSync(join(dir, 'roi.safetensors')).equals(expected)).toBe(true);
    expect(readFileSync(join(dir, 'remote.safetensors')).equals(expected)).toBe(true);
  }, 60_000);

  it('an image with --url: the same .npy as in-process', async () => {
    const args = ['roi', photo, '--boxes', 'boxes.json', '--op', 'pool', '--output-size', '3'];
    const local = await roiserve([...args, '-o', 'pool-local.npy'], dir);
    const remote = await roiserve([...args, '-o', 'pool-remote.npy', '--url', url], dir);
    expect([local.code, remote.code]).toEqual([0, 0]);
    expect(readFileSync(join(dir, 'pool-local.npy')).equals(readFileSync(join(dir, 'pool-remote.npy')))).toBe(
      true,
    );
  }, 60_000);

  it('a bad box file: exit 2, the field named, nothing written', async () => {
    writeFileSync(join(dir, 'bad.json'), '[[10, 10, 50]]');
    const run = await roiserve(['roi', photo, '--boxes', 'bad.json', '-o', 'bad.npy'], dir);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/boxes\[0\]/);
    expect(existsSync(join(dir, 'bad.npy'))).toBe(false);
    // the same file through a server: the problem+json's field, the same exit code
    const remote = await roiserve(['roi', photo, '--boxes', 'bad.json', '-o', 'bad.npy', '--url', url], dir);
    expect(remote.code).toBe(2);
    expect(remote.stderr).toMatch(/boxes\[0\]/);
    writeFileSync(join(dir, 'notjson.json'), '[[10, 10,');
    const notJson = await roiserve(['roi', photo, '--boxes', 'notjson.json', '-o', 'bad.npy'], dir);
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toMatch(/--boxes notjson\.json: not JSON/);
  }, 60_000);

  it('box files and option values their types do not admit: exit 2 naming the field or flag, nothing written', async () => {
    // The CLI builds the core's typed input itself (no route schema): what the types do not say, it checks.
    writeFileSync(join(dir, 'null.json'), 'null');
    writeFileSync(join(dir, 'text-box.json'), '[[96, 56, 224, 144], ["10", 10, 50, 50]]');
    const roi = (...args: string[]) => roiserve(['roi', photo, '-o', 'refused.npy', ...args], dir);
    const diff = (...args: string[]) =>
      roiserve(['diff', photo, '--boxes', 'boxes.json', '-o', 'refused.png', ...args], dir);
    const runs = await Promise.all([
      roi('--boxes', 'null.json'),
      roi('--boxes', 'text-box.json'),
      roi('--boxes', 'boxes.json', '--output-size', '0'),
      roi('--boxes', 'boxes.json', '--output-size', '7,2.5'),
      roi('--boxes', 'boxes.json', '--sampling-ratio', '1.5'),
      roi('--boxes', 'boxes.json', '--max-side', '-4'),
      diff('--channel', 'median'),
      diff('--max-boxes', '33'),
      roiserve(['features', photo, '-o', 'refused.npy', '--max-side', '0'], dir),
      // no scheme: `new URL` read `localhost:` as one, and the run failed later with `Invalid URL`, exit 1
      roi('--boxes', 'boxes.json', '--url', 'localhost:8080'),
      roiserve(['backbone', '--url', 'ftp://localhost'], dir),
      // a map's memory order with an image: refused by both (diff used to ignore it silently)
      roi('--boxes', 'boxes.json', '--layout', 'NHWC'),
      diff('--layout', 'NHWC'),
    ]);
    const expected = [
      /^roiserve: boxes: expected an array/m,
      /^roiserve: boxes\[1\]\[0\]: expected a number, got string/m,
      /--output-size: "0" is not a positive integer/,
      /--output-size: "2\.5" is not a positive integer/,
      /--sampling-ratio: "1\.5" is not an integer/,
      /--max-side: "-4" is not a positive integer/,
      /--channel: "median" is neither a channel index nor one of mean, meanabs, max/,
      /--max-boxes: "33" is not an integer >= 0 <= 32/,
      /--max-side: "0" is not a positive integer/,
      /--url: "localhost:8080" is not an http\(s\) URL/,
      /--url: "ftp:\/\/localhost" is not an http\(s\) URL/,
      /--layout describes a \.npy feature map; the input is an image/,
      /--layout describes a \.npy feature map; the input is an image/,
    ];
    runs.forEach((run, i) => {
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toMatch(expected[i]);
      expect(run.stderr).not.toMatch(/TypeError|at .*\.js:\d+/);
    });
    expect(existsSync(join(dir, 'refused.npy'))).toBe(false);
    expect(existsSync(join(dir, 'refused.png'))).toBe(false);
  }, 60_000);

  it('usage errors exit 2; --help shows an example', async () => {
    const missing = await roiserve(['roi', photo, '-o', 'x.npy'], dir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--boxes/);
    const help = await roiserve(['roi', '--help'], dir);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Examples:\n\s+roiserve roi /);
  }, 60_000);
});

describe('roiserve features, diff, backbone', () => {
  it('write what /v1/features, /v1/diff and /v1/backbone answer', async () => {
    const features = await roiserve(['features', photo, '-o', 'photo-features.npy'], dir);
    const diff = await roiserve(
      ['diff', photo, '--boxes', 'boxes.json', '--max-boxes', '1', '-o', 'sheet.png'],
      dir,
    );
    const backbone = await roiserve(['backbone'], dir);
    // --url builds the multipart form (common.ts workForm): the same bytes from the running server.
    const remoteFeatures = await roiserve(
      ['features', photo, '-o', 'remote-features.npy', '--url', url],
      dir,
    );
    const remoteDiff = await roiserve(
      ['diff', photo, '--boxes', 'boxes.json', '--max-boxes', '1', '-o', 'remote-sheet.png', '--url', url],
      dir,
    );
    expect([features.code, diff.code, backbone.code, remoteFeatures.code, remoteDiff.code]).toEqual([
      0, 0, 0, 0, 0,
    ]);
    const form = (fields: Record<string, string>) => {
      const f = new FormData();
      f.append('image', new Blob([readFileSync(photo)]), 'photo.jpg');
      for (const [k, v] of Object.entries(fields)) f.append(k, v);
      return f;
    };
    const post = async (path: string, body: FormData) =>
      Buffer.from(await (await fetch(`${url}${path}`, { method: 'POST', body })).arrayBuffer());
    const expectedFeatures = await post('/v1/features', form({ format: 'npy' }));
    const expectedSheet = await post(
      '/v1/diff',
      form({ boxes: '[[96,56,224,144],[0,0,320,240]]', maxBoxes: '1' }),
    );
    expect(readFileSync(join(dir, 'photo-features.npy')).equals(expectedFeatures)).toBe(true);
    expect(readFileSync(join(dir, 'sheet.png')).equals(expectedSheet)).toBe(true);
    expect(readFileSync(join(dir, 'remote-features.npy')).equals(expectedFeatures)).toBe(true);
    expect(readFileSync(join(dir, 'remote-sheet.png')).equals(expectedSheet)).toBe(true);
    const described = JSON.parse(backbone.stdout) as { name: string; stride: number; layers: unknown[] };
    const served = (await (await fetch(`${url}/v1/backbone`)).json()) as typeof described;
    expect({ ...described, backendReason: undefined }).toMatchObject({
      name: served.name,
      stride: served.stride,
    });
    expect(described.layers).toEqual(served.layers);
  }, 90_000);
});

describe('roiserve roi DIR (batch)', () => {
  it('two good images and a corrupt one: two outputs, the failure listed, exit 1', async () => {
    const images = join(dir, 'images');
    mkdirSync(images);
    copyFileSync(photo, join(images, 'a.jpg'));
    copyFileSync(photo, join(images, 'b.jpg'));
    writeFileSync(join(images, 'broken.jpg'), Buffer.from('definitely not a JPEG'));
    const lines = ['a.jpg', 'broken.jpg', 'b.jpg'].map((image) =>
      JSON.stringify({ image, boxes: [[96, 56, 224, 144]] }),
    );
    writeFileSync(join(dir, 'boxes.jsonl'), `${lines.join('\n')}\n`);
    const run = await roiserve(
      ['roi', 'images', '--boxes', 'boxes.jsonl', '--op', 'align', '-o', 'out'],
      dir,
    );
    expect(run.code).toBe(1);
    expect(existsSync(join(dir, 'out/a.npy'))).toBe(true);
    expect(existsSync(join(dir, 'out/b.npy'))).toBe(true);
    expect(existsSync(join(dir, 'out/broken.npy'))).toBe(false);
    expect(run.stderr).toMatch(/2 of 3 done/);
    // stderr is a pipe here: plain progress lines (done/total, rate, ETA), no terminal bar
    expect(run.stderr).toMatch(/^roiserve: 3\/3 +[\d.]+ images\/s +ETA /m);
    expect(run.stderr).not.toContain(String.fromCharCode(27));
    expect(run.stderr).toMatch(/broken\.jpg \(line 2\): image/);
    // the batch's files are the single-image command's
    const single = await roiserve(
      ['roi', 'images/a.jpg', '--boxes', 'single.json', '--op', 'align', '-o', 'a-single.npy'],
      (writeFileSync(join(dir, 'single.json'), '[[96, 56, 224, 144]]'), dir),
    );
    expect(single.code).toBe(0);
    expect(readFileSync(join(dir, 'out/a.npy')).equals(readFileSync(join(dir, 'a-single.npy')))).toBe(true);
    // and the same batch sent to the server: the same files, the same failure
    const remote = await roiserve(
      ['roi', 'images', '--boxes', 'boxes.jsonl', '--op', 'align', '-o', 'out-url', '--url', url],
      dir,
    );
    expect(remote.code).toBe(1);
    expect(remote.stderr).toMatch(/broken\.jpg \(line 2\): image/);
    for (const name of ['a.npy', 'b.npy']) {
      expect(readFileSync(join(dir, 'out-url', name)).equals(readFileSync(join(dir, 'out', name)))).toBe(
        true,
      );
    }
  }, 90_000);

  it('a name outside DIR and a second image with the same output name fail; the first output stays', async () => {
    const images = join(dir, 'hostile');
    mkdirSync(join(images, 'sub'), { recursive: true });
    copyFileSync(photo, join(images, 'a.jpg'));
    copyFileSync(photo, join(images, 'sub/a.jpg'));
    const lines = ['a.jpg', '../single.json', 'sub/a.jpg'].map((image) =>
      JSON.stringify({ image, boxes: [[96, 56, 224, 144]] }),
    );
    writeFileSync(join(dir, 'single.json'), '[[96, 56, 224, 144]]');
    writeFileSync(join(dir, 'hostile.jsonl'), `${lines.join('\n')}\n`);
    const run = await roiserve(
      ['roi', 'hostile', '--boxes', 'hostile.jsonl', '--op', 'align', '-o', 'out-hostile'],
      dir,
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/1 of 3 done/);
    expect(run.stderr).toMatch(
      /\.\.\/single\.json \(line 2\): image: "\.\.\/single\.json" is not a file inside/,
    );
    expect(run.stderr).toMatch(
      /sub\/a\.jpg \(line 3\): .*out-hostile\/a\.npy is already the output of a\.jpg/,
    );
    expect(readdirSync(join(dir, 'out-hostile'))).toEqual(['a.npy']);
  }, 60_000);
});

describe("README's CLI example", () => {
  /** The ```sh block of the README's "Command line (`roiserve`)" section. */
  function cliBlock(): string {
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('### Command line (`roiserve`)'));
    const match = /```sh\n([\s\S]*?)\n```/.exec(section);
    if (!match) throw new Error('README.md: no sh block in the "Command line (`roiserve`)" section');
    return match[1];
  }

  it('runs as written, with the built CLI for npx roiserve and the live server for localhost:8080', async () => {
    const block = cliBlock();
    expect(block).toMatch(/npx roiserve /);
    const work = join(dir, 'readme');
    mkdirSync(work);
    symlinkSync(join(repo, 'fixtures'), join(work, 'fixtures'));
    const script = [
      'set -euo pipefail',
      block.replace(/npx roiserve /g, `node ${cli} `).replace(/http:\/\/localhost:8080/g, url),
    ].join('\n');
    const run = await runProcess('bash', ['-c', script], {
      cwd: work,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, WORKERS: '1' },
    });
    expect(run.code, run.stderr).toBe(0);
    // Every `# → OUTPUT` is in stdout, in order, whitespace ignored.
    const squash = (text: string) => text.replace(/\s+/g, '');
    let from = 0;
    for (const [, expected] of block.matchAll(/#\s*→\s*(.+)$/gm)) {
      const at = squash(run.stdout).indexOf(squash(expected), from);
      expect(at, `"# → ${expected}" not in\n${run.stdout}`).toBeGreaterThanOrEqual(0);
      from = at;
    }
    for (const file of ['align-cli.npy', 'roi-cli.safetensors', 'out/a.npy', 'out/b.npy', 'sheet-cli.png']) {
      expect(existsSync(join(work, file)), file).toBe(true);
    }
  }, 120_000);
});

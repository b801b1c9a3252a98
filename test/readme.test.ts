/**
 * The README's shell examples, run as written against a live server, so they cannot rot.
 *
 * Every ```sh block of README.md runs, in order, with bash against the app listening on a free port
 * (`localhost:8080` is rewritten to it). A block is skipped only when the line before it is
 * `<!-- no-test: why -->`, for what cannot run here: installing and starting the server itself
 * (`npm ci && npm start`) and Docker. An unmarked block that calls no `localhost:8080` fails
 * without being run (it might install or start something): mark it, or make it call the API. Each block runs in one temporary directory shared by all
 * blocks (later examples read files earlier ones wrote), with `fixtures/` linked into it, so the
 * README's `fixtures/...` inputs resolve and its `-o` outputs stay out of the repository.
 *
 * What "works" means:
 * - bash exits 0 under `set -euo pipefail`, and `curl` is wrapped with `--fail-with-body`, so an
 *   example that gets a 4xx/5xx fails here even though the README writes plain `curl -s`;
 * - every file written with `-o FILE` is there and is what its extension says (.npy, .png, .json,
 *   .safetensors);
 * - every `# → OUTPUT` comment is in the block's stdout, compared without whitespace, with `...` / `…`
 *   standing for anything (so `# → (2, 256, 7, 7)` after a python3 line checks what it prints).
 *
 * Needs `curl`, and `python3` with numpy for the lines that load `.npy` files (`.ci/run` installs
 * Debian's python3-numpy when it is missing).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/server.js';
import { testConfig } from './support/fixtures.js';

const repo = fileURLToPath(new URL('../', import.meta.url));

/** A fenced ```sh block: its 1-based line in README.md, its text, and the reason it is skipped, if any. */
interface ShBlock {
  line: number;
  code: string;
  skip: string | undefined;
}

/** The ```sh blocks of a markdown text, each with the `<!-- no-test: … -->` marker right above it. */
export function shBlocks(markdown: string): ShBlock[] {
  const lines = markdown.split('\n');
  const blocks: ShBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(sh|bash|shell)\s*$/.test(lines[i])) continue;
    const end = lines.findIndex((l, j) => j > i && /^```\s*$/.test(l));
    if (end < 0) throw new Error(`README.md:${i + 1}: unterminated code block`);
    let k = i - 1;
    while (k >= 0 && lines[k].trim() === '') k--;
    const marker = k >= 0 ? /^<!--\s*no-test:?\s*(.*?)\s*-->$/.exec(lines[k].trim()) : null;
    blocks.push({
      line: i + 1,
      code: lines.slice(i + 1, end).join('\n'),
      skip: marker ? marker[1] || 'no-test' : undefined,
    });
    i = end;
  }
  return blocks;
}

/** `# → OUTPUT` comments of a block (at the end of a command or on their own line). */
export function expectedOutputs(code: string): string[] {
  return [...code.matchAll(/#\s*→\s*(.+)$/gm)].map((m) => m[1]);
}

/** Whether `output` shows `expected`: whitespace ignored, `...` / `…` match anything, in order. */
export function showsOutput(output: string, expected: string): boolean {
  const squash = (s: string) => s.replace(/\s+/g, '');
  const text = squash(output);
  let from = 0;
  for (const raw of squash(expected).split(/\.\.\.|…/)) {
    // "{...}, ..." elides the rest of an object: the comma before the ellipsis is not in the output.
    const piece = raw.replace(/^,+|,+$/g, '');
    if (piece === '') continue;
    const at = text.indexOf(piece, from);
    if (at < 0) return false;
    from = at + piece.length;
  }
  return true;
}

/** Files a block writes with curl's `-o FILE`. */
function outputFiles(code: string): string[] {
  return [...code.matchAll(/(?:^|\s)-o\s+(\S+)/g)].map((m) => m[1].replace(/^['"]|['"]$/g, ''));
}

/** Checks that `path` holds what its extension says; returns a problem or undefined. */
function wellFormed(path: string): string | undefined {
  if (!existsSync(path) || statSync(path).size === 0) return 'missing or empty';
  const bytes = readFileSync(path);
  const ext = path.slice(path.lastIndexOf('.'));
  switch (ext) {
    case '.npy':
      return bytes.subarray(0, 6).toString('latin1') === '\x93NUMPY' ? undefined : 'not a .npy file';
    case '.png':
      return bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))
        ? undefined
        : 'not a PNG';
    case '.json':
      try {
        JSON.parse(bytes.toString('utf8'));
        return undefined;
      } catch {
        return 'not JSON';
      }
    case '.safetensors': {
      const n = Number(bytes.readBigUInt64LE(0));
      try {
        JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
        return undefined;
      } catch {
        return 'no safetensors header';
      }
    }
    default:
      return undefined;
  }
}

/** Runs a bash script (async: the server under test answers from this same process). */
function bash(
  script: string,
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({
        code: code ?? -1,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
  });
}

const readme = readFileSync(join(repo, 'README.md'), 'utf8');
const blocks = shBlocks(readme);

describe('README helpers', () => {
  it('finds the blocks, their markers and their expected outputs', () => {
    const md = [
      'x',
      '<!-- no-test: needs Docker -->',
      '```sh',
      'docker run x',
      '```',
      '',
      '```sh',
      'echo 1 # → 1',
      '```',
    ];
    expect(shBlocks(md.join('\n'))).toEqual([
      { line: 3, code: 'docker run x', skip: 'needs Docker' },
      { line: 7, code: 'echo 1 # → 1', skip: undefined },
    ]);
    expect(expectedOutputs('a # → (2, 256, 7, 7)\n# → "x": [1], ...')).toEqual([
      '(2, 256, 7, 7)',
      '"x": [1], ...',
    ]);
    expect(showsOutput('{"x":[1],"y":2}\n', '"x": [1], ...')).toBe(true);
    expect(showsOutput('(2, 256, 7, 7)\n', '(2, 256, 7, 7)')).toBe(true);
    expect(showsOutput('(2, 256, 7, 8)\n', '(2, 256, 7, 7)')).toBe(false);
  });

  it('the README has runnable blocks, and skips only what cannot run here', () => {
    expect(blocks.filter((b) => b.skip === undefined).length).toBeGreaterThanOrEqual(2);
    // Skipped blocks must say why; the HTTP examples must never be among them.
    for (const b of blocks.filter((x) => x.skip !== undefined)) {
      expect(b.skip, `README.md:${b.line}`).not.toBe('no-test');
      expect(
        /curl\b[^\n]*localhost:8080/.test(b.code),
        `README.md:${b.line} calls the API but is skipped`,
      ).toBe(false);
    }
  });
});

describe('README examples against a live server', () => {
  let app: FastifyInstance;
  let port: number;
  let work: string;

  beforeAll(async () => {
    app = await buildApp(testConfig());
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as { port: number }).port;
    await app.readiness.settled;
    work = mkdtempSync(join(tmpdir(), 'roiserve-readme-'));
    symlinkSync(join(repo, 'fixtures'), join(work, 'fixtures'));
  });

  afterAll(async () => {
    await app?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('has curl, and python3 with numpy', () => {
    expect(spawnSync('curl', ['--version']).status, 'curl is missing').toBe(0);
    const numpy = spawnSync('python3', ['-c', 'import numpy']);
    expect(numpy.status, 'python3 with numpy is missing (apt-get install python3-numpy)').toBe(0);
  });

  for (const block of blocks) {
    const title = `README.md:${block.line}: ${block.code.split('\n')[0].slice(0, 70)}`;
    if (block.skip !== undefined) {
      it.skip(`${title} (${block.skip})`, () => {});
      continue;
    }
    it(title, { timeout: 180_000 }, async () => {
      // Never run a block that does not talk to the server: it could install, start or build things.
      expect(
        block.code.includes('localhost:8080'),
        `README.md:${block.line} calls no API at localhost:8080: mark it <!-- no-test: why --> if it cannot run here`,
      ).toBe(true);
      const code = block.code.replace(/localhost:8080/g, `127.0.0.1:${port}`);
      // `--fail-with-body`: an error status fails the example; `--show-error` says why under `-s`.
      const script = [
        'set -euo pipefail',
        'curl() { command curl --fail-with-body --show-error "$@"; }',
        code,
      ].join('\n');
      writeFileSync(join(work, `block-${block.line}.sh`), script);
      // API_KEY: the README shows it passed as a header; this server has none, so any value goes.
      const env = { ...process.env, API_KEY: 'readme-test-key' };
      const r = await bash(script, work, env);
      const report = `README.md:${block.line} exited ${r.code}\nstderr: ${r.stderr.slice(-2000)}\nstdout: ${r.stdout.slice(-1000)}`;
      expect(r.code, report).toBe(0);
      for (const file of outputFiles(code)) {
        expect(wellFormed(join(work, file)), `README.md:${block.line}: -o ${file}`).toBeUndefined();
      }
      for (const expected of expectedOutputs(code)) {
        expect(
          showsOutput(r.stdout, expected),
          `README.md:${block.line}: "# → ${expected}" not in\n${r.stdout.slice(0, 2000)}`,
        ).toBe(true);
      }
    });
  }
});

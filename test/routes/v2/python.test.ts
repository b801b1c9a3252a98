/**
 * The README's `requests` + numpy example of the Open Inference Protocol (the block after
 * `<!-- v2-python-requests -->`) runs as written against a live server: binary tensors both ways, no
 * `Content-Type`, what `tritonclient.http` sends. It needs /usr/bin/python3 with Debian's
 * python3-requests and python3-numpy (`.ci/run` installs them); without them it is skipped, except
 * under CI, where it fails.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { useListeningApp } from '../../support/app.js';
import { PYTHON, debianPython } from '../../support/python.js';
import { runProcess, type Run } from '../../support/process.js';

const readme = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
const available = debianPython({
  modules: ['requests', 'numpy'],
  packages: ['python3-requests', 'python3-numpy'],
  what: 'README Open Inference Protocol Python example',
});

/** The ```python block right after `marker`. */
function pythonBlock(marker: string): string {
  const at = readme.indexOf(marker);
  if (at < 0) throw new Error(`README.md has no ${marker}`);
  const match = /```python\n([\s\S]*?)\n```/.exec(readme.slice(at));
  if (!match) throw new Error(`no python block after ${marker}`);
  return match[1];
}

/** Runs `code` with python3 (asynchronously: the server answers from this same process). */
function runPython(code: string): Promise<Run> {
  return runProcess(PYTHON, ['-'], { input: code });
}

const server = useListeningApp();

describe('README: the Open Inference Protocol from Python (requests + numpy)', () => {
  it.skipIf(!available)('runs as written and prints what its comment says', async () => {
    const code = pythonBlock('<!-- v2-python-requests -->');
    const expected = /# → (.*)$/m.exec(code)?.[1];
    expect(expected).toBeDefined();
    const r = await runPython(code.replaceAll('localhost:8080', `127.0.0.1:${server.port}`));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(expected);
  });
});

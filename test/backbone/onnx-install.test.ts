/**
 * onnxruntime-node's install script must not download its CUDA provider (hundreds of MB from NuGet) on
 * `npm ci`: package.json `allowScripts` denies the script (npm ≥ 11.16), and `.npmrc`'s
 * `onnxruntime-node-install=skip` reaches the script as `npm_config_onnxruntime_node_install`, which its
 * own flag parser reads as "skip" (any npm). This checks both switches and that the script, given what
 * npm gives it, exits before any download.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const require = createRequire(import.meta.url);
const ortDir = dirname(require.resolve('onnxruntime-node/package.json'));

describe("onnxruntime-node's CUDA download stays off", () => {
  it('package.json denies its install script and lists it as a runtime dependency', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    expect(pkg.allowScripts['onnxruntime-node']).toBe(false);
    expect(pkg.dependencies['onnxruntime-node']).toMatch(/^\^1\./);
    expect(pkg.devDependencies?.['onnxruntime-node']).toBeUndefined();
  });

  it('.npmrc sets onnxruntime-node-install=skip, which npm passes to install scripts', () => {
    expect(readFileSync(join(root, '.npmrc'), 'utf8')).toMatch(/^onnxruntime-node-install=skip$/m);
    // What a lifecycle script of this project sees (npm run runs with the same config as npm ci).
    const r = spawnSync('npm', ['config', 'get', 'onnxruntime-node-install'], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(r.stdout.trim()).toBe('skip');
  });

  it("the package's own flag parser reads that variable as skip, and its script then exits at once", () => {
    const env = { ...process.env, npm_config_onnxruntime_node_install: 'skip', ONNXRUNTIME_NODE_INSTALL: '' };
    const parse = spawnSync(
      process.execPath,
      [
        '-e',
        `console.log(JSON.stringify(require(${JSON.stringify(join(ortDir, 'script', 'install-utils.js'))}).parseInstallFlag()))`,
      ],
      { env, encoding: 'utf8' },
    );
    expect(parse.stdout.trim()).toBe('false');
    // The install script itself: exit 0, nothing printed (it would log each download).
    const install = spawnSync(process.execPath, [join(ortDir, 'script', 'install.js')], {
      env,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(install.status).toBe(0);
    expect(install.stdout + install.stderr).toBe('');
  });
});

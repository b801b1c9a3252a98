/**
 * Debian's /usr/bin/python3 as a test oracle. The tests that compare with numpy, torch or torchvision
 * (or run a Python client) must not pass silently where those are missing under CI, so one helper
 * decides for all of them: available → run; missing under CI (`CI` set) → a test that fails and says
 * what to install; missing locally → skipped with a warning.
 */
import { spawnSync } from 'node:child_process';
import { it } from 'vitest';

/** The interpreter the oracles run: Debian's, whose python3-* packages `.ci/run` installs. */
export const PYTHON = '/usr/bin/python3';

/** Whether {@link PYTHON} can run `import <modules>`. */
export function pythonCan(modules: readonly string[]): boolean {
  return spawnSync(PYTHON, ['-c', `import ${modules.join(', ')}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Whether {@link PYTHON} imports every one of `modules`. When it does not: under CI, registers a test
 * (named `has <modules> …`) that fails naming the Debian `packages` to install; elsewhere prints that
 * `what` is skipped. Call it at module level (it may register a test).
 */
export function debianPython(options: {
  modules: readonly string[];
  packages: readonly string[];
  what: string;
}): boolean {
  const { modules, packages, what } = options;
  if (pythonCan(modules)) return true;
  const missing = `${PYTHON} cannot import ${modules.join(', ')}`;
  if (process.env.CI) {
    it(`has ${modules.join(', ')} to compare with`, () => {
      throw new Error(`${missing}: CI must install Debian's ${packages.join(' ')} (see .ci/run)`);
    });
  } else {
    console.warn(`${what} skipped: ${missing} (apt-get install -y ${packages.join(' ')})`);
  }
  return false;
}

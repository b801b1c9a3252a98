/**
 * The pool fixes V8's heap growing factor (`src/runtime/heap-growth.ts`) unless the process was
 * started with its own, and the flag it sets is one this Node's V8 knows (a renamed flag would only
 * print "unrecognized flag" and change nothing, so that is checked in a child process on each
 * Node the suite runs on). What the factor does to the request rate is measured, not asserted here:
 * `npm run bench -- idle`.
 */
import { describe, expect, it } from 'vitest';
import { fixHeapGrowth, HEAP_GROWING_FLAG, HEAP_GROWING_PERCENT } from '../../src/runtime/heap-growth.js';
import { runProcess } from '../support/process.js';

describe('fixHeapGrowth', () => {
  it('sets --heap-growing-percent when the process has none of its own', () => {
    const set: string[] = [];
    expect(fixHeapGrowth(['--enable-source-maps'], (flag) => set.push(flag))).toBe(
      `${HEAP_GROWING_FLAG}=${HEAP_GROWING_PERCENT}`,
    );
    expect(set).toEqual([`--heap-growing-percent=${HEAP_GROWING_PERCENT}`]);
    expect(HEAP_GROWING_PERCENT).toBeGreaterThan(0);
  });

  it("leaves the operator's own flag, in either spelling, alone", () => {
    for (const own of ['--heap-growing-percent=20', '--heap_growing_percent=20']) {
      const set: string[] = [];
      expect(fixHeapGrowth(['--import', 'tsx', own], (flag) => set.push(flag))).toBeNull();
      expect(set).toEqual([]);
    }
  });

  it("names a flag this Node's V8 recognizes", async () => {
    const probe = (flag: string) =>
      runProcess(process.execPath, ['-e', `require('node:v8').setFlagsFromString(${JSON.stringify(flag)})`]);
    const ours = await probe(`${HEAP_GROWING_FLAG}=${HEAP_GROWING_PERCENT}`);
    expect(ours.code).toBe(0);
    expect(ours.stderr).toBe('');
    // The check can fail: V8 reports a flag it does not know on stderr.
    const misspelt = await probe('--heap-growing-percents=50');
    expect(misspelt.stderr).toMatch(/unrecognized flag/);
  });
});

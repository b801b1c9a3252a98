/**
 * The JSON wire of the torchvision oracle scripts under test/oracle: float32 arrays as base64 and one
 * {@link PYTHON} process per batch of cases (`python3 script in.json out.json` in a temporary folder).
 * Kept here, independent of src/tensors, so an encoding bug there cannot hide in an oracle's input.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PYTHON } from '../support/python.js';

const HERE = dirname(fileURLToPath(import.meta.url));

/** A float32 array's little-endian bytes in base64 (numpy's `frombuffer(..., '<f4')`). */
export const b64 = (a: Float32Array): string =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');

/** Little-endian float32 values from base64 (numpy's `astype('<f4').tobytes()`). */
export function fromB64(s: string): Float32Array {
  const buf = Buffer.from(s, 'base64');
  const out = new Float32Array(buf.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = buf.readFloatLE(4 * i);
  return out;
}

/**
 * Runs `script` (a file in test/oracle) on `input` written as JSON and returns its parsed JSON output;
 * throws with the script's stderr when it exits non-zero.
 */
export function runOracleScript(script: string, input: unknown): unknown {
  const dir = mkdtempSync(join(tmpdir(), 'roiserve-oracle-'));
  try {
    const inFile = join(dir, 'cases.json');
    const outFile = join(dir, 'out.json');
    writeFileSync(inFile, JSON.stringify(input));
    const r = spawnSync(PYTHON, [join(HERE, script), inFile, outFile], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${script} failed (${String(r.status)}): ${r.stderr}`);
    return JSON.parse(readFileSync(outFile, 'utf8')) as unknown;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

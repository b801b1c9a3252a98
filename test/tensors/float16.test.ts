/**
 * float32 → float16 / bfloat16 (src/tensors/float16.ts) bit for bit against numpy 1.24's
 * `astype(np.float16)` and torch 1.13's `.half()` / `.bfloat16()` (Debian's python3-numpy and
 * python3-torch, run by /usr/bin/python3 through test/tensors/half_oracle.py), on seeded random bit
 * patterns (every exponent, NaNs included), random values at typical scales, and edge cases: ties at
 * every float16 exponent, 65504, 65520 (rounds to Infinity), subnormals and their ties, the halves of
 * the smallest subnormal, ±0, ±Infinity, NaNs, bfloat16 ties and the largest float32s.
 * NaN: numpy keeps the payload's top bits (as we do) and is compared bit for bit; torch returns a
 * canonical NaN, so against torch a NaN only has to be a NaN.
 *
 * numpy / torch missing: the test FAILS under CI (`CI` set) and is skipped locally with a message.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
} from '../../src/tensors/float16.js';
import { mulberry32 } from '../support/random.js';
import { PYTHON, debianPython } from '../support/python.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'half_oracle.py');
const haveOracle = debianPython({
  modules: ['numpy', 'torch'],
  packages: ['python3-numpy', 'python3-torch'],
  what: 'float16 oracle',
});

/** The float32 inputs, as bit patterns: edge cases first, then seeded random ones. */
function inputBits(): Uint32Array {
  const bits: number[] = [];
  const both = (b: number) => bits.push(b >>> 0, (b | 0x80000000) >>> 0);
  const value = (v: number) => {
    const f = new Float32Array([v]);
    both(new Uint32Array(f.buffer)[0]);
  };
  // Zeros, infinities, NaNs (quiet, signalling, payloads whose top 10 / 7 bits are zero).
  for (const b of [0, 0x7f800000, 0x7fc00000, 0x7f800001, 0x7fa00000, 0x7f802000, 0x7f801fff, 0x7fffffff])
    both(b);
  // float16 ties at every exponent (normals: float32 exponents 113…142), both parities, ±1 ulp.
  for (let e = 113; e <= 142; e++) {
    for (const high of [0, 1, 2, 0x155, 0x2aa, 0x3fe, 0x3ff]) {
      for (const low of [0x1000, 0x0fff, 0x1001, 0, 0x1fff]) both((e << 23) | (high << 13) | low);
    }
  }
  // Subnormal ties: (2j + 1) · 2^-25 for every j, and the float32s either side of them.
  for (let j = 0; j < 1024; j++) {
    const f = new Float32Array([(2 * j + 1) * 2 ** -25]);
    const b = new Uint32Array(f.buffer)[0];
    both(b - 1);
    both(b);
    both(b + 1);
  }
  // Around the range limits: the smallest subnormal and its halves, the smallest normal, the largest.
  for (const v of [
    2 ** -24,
    2 ** -25,
    2 ** -26,
    1.5 * 2 ** -24,
    2 ** -14,
    2 ** -14 - 2 ** -25,
    65504,
    65505,
    65519,
    65519.99609375,
    65520,
    65536,
    1e10,
    1,
    -1,
    0.1,
    1 / 3,
  ])
    value(v);
  for (const b of [0x33000000, 0x33000001, 0x32ffffff, 0x387fefff, 0x387ff000, 0x387fffff]) both(b);
  // bfloat16: ties (low half 0x8000) with even and odd upper halves, ±1, across exponents; the largest float32s.
  for (let e = 0; e <= 254; e += 3) {
    for (const high of [0, 1, 0x7e, 0x7f]) {
      for (const low of [0x8000, 0x7fff, 0x8001, 0xffff]) both((e << 23) | (high << 16) | low);
    }
  }
  for (const b of [0x7f7fffff, 0x7f7f8000, 0x7f7f7fff, 0x7f7e8000, 0x7f7effff, 0x00008000, 0x00018000])
    both(b);
  // Seeded random: any bit pattern (every exponent, NaNs included), and values at typical scales.
  const rand = mulberry32(20261201);
  for (let i = 0; i < 100_000; i++) bits.push(Math.floor(rand() * 2 ** 32) >>> 0);
  const f = new Float32Array(1);
  const fb = new Uint32Array(f.buffer);
  for (let i = 0; i < 100_000; i++) {
    f[0] = (rand() - 0.5) * 10 ** Math.floor(rand() * 12 - 8);
    bits.push(fb[0]);
  }
  return Uint32Array.from(bits);
}

function oracle(input: Float32Array) {
  const dir = mkdtempSync(join(tmpdir(), 'roiserve-half-oracle-'));
  try {
    const inFile = join(dir, 'in.f32');
    const outFile = join(dir, 'out.bin');
    writeFileSync(inFile, new Uint8Array(input.buffer, input.byteOffset, input.byteLength));
    const r = spawnSync(PYTHON, [SCRIPT, inFile, outFile], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`half_oracle.py failed (${r.status}): ${r.stderr}`);
    const buf = readFileSync(outFile);
    const n = input.length;
    const u16 = (k: number) =>
      new Uint16Array(buf.buffer.slice(buf.byteOffset + 2 * n * k, buf.byteOffset + 2 * n * (k + 1)));
    const widened = new Uint32Array(
      buf.buffer.slice(buf.byteOffset + 6 * n, buf.byteOffset + 6 * n + 4 * 65536),
    );
    return { numpy16: u16(0), torch16: u16(1), torchBf16: u16(2), numpyWidened: widened };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const hex = (v: number) => `0x${v.toString(16).padStart(4, '0')}`;
const isNan16 = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
const isNanBf16 = (h: number) => (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;

/** The first few mismatches, as readable lines (empty when all agree). */
function mismatches(
  input: Uint32Array,
  ours: Uint16Array,
  theirs: Uint16Array,
  nanOnly: ((h: number) => boolean) | null,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < input.length && out.length < 10; i++) {
    const same = nanOnly && nanOnly(theirs[i]) ? nanOnly(ours[i]) : ours[i] === theirs[i];
    if (!same)
      out.push(
        `float32 0x${input[i].toString(16).padStart(8, '0')}: ours ${hex(ours[i])}, theirs ${hex(theirs[i])}`,
      );
  }
  return out;
}

describe.skipIf(!haveOracle)('float16 / bfloat16 conversion vs numpy and torch', () => {
  const bits = inputBits();
  const input = new Float32Array(bits.buffer);
  const ref = oracle(input);

  it('float16 equals numpy bit for bit (NaN payloads included)', () => {
    const { bits: ours } = float32ToFloat16Bits(input);
    expect(mismatches(bits, ours, ref.numpy16, null)).toEqual([]);
  });

  it('float16 equals torch bit for bit (a NaN only has to be a NaN)', () => {
    const { bits: ours } = float32ToFloat16Bits(input);
    expect(mismatches(bits, ours, ref.torch16, isNan16)).toEqual([]);
  });

  it('bfloat16 equals torch bit for bit (a NaN only has to be a NaN)', () => {
    const { bits: ours } = float32ToBfloat16Bits(input);
    expect(mismatches(bits, ours, ref.torchBf16, isNanBf16)).toEqual([]);
  });

  it('counts the finite values that became ±Infinity', () => {
    const finite = (b: number) => (b & 0x7f800000) !== 0x7f800000;
    const expected16 = [...bits].filter((b, i) => finite(b) && (ref.numpy16[i] & 0x7fff) === 0x7c00).length;
    const expectedBf = [...bits].filter((b, i) => finite(b) && (ref.torchBf16[i] & 0x7fff) === 0x7f80).length;
    expect(expected16).toBeGreaterThan(1000);
    expect(expectedBf).toBeGreaterThan(0);
    expect(float32ToFloat16Bits(input).overflow).toBe(expected16);
    expect(float32ToBfloat16Bits(input).overflow).toBe(expectedBf);
  });

  it('widens every float16 bit pattern back to float32 as numpy does', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const ours = new Uint32Array(float16BitsToFloat32(all).buffer);
    const bad = [...ours.keys()].filter((i) => ours[i] !== ref.numpyWidened[i]).slice(0, 5);
    expect(
      bad.map((i) => `${hex(i)}: ${ours[i].toString(16)} vs ${ref.numpyWidened[i].toString(16)}`),
    ).toEqual([]);
  });
});

describe('float16 / bfloat16 conversion, known values', () => {
  const f16 = (v: number) => float32ToFloat16Bits(new Float32Array([v])).bits[0];
  const bf16 = (v: number) => float32ToBfloat16Bits(new Float32Array([v])).bits[0];

  it('rounds to nearest, ties to even, keeps subnormals and −0, overflows to Infinity past 65504', () => {
    expect(hex(f16(1))).toBe('0x3c00');
    expect(hex(f16(-0))).toBe('0x8000');
    expect(hex(f16(65504))).toBe('0x7bff');
    expect(hex(f16(65519))).toBe('0x7bff');
    expect(hex(f16(65520))).toBe('0x7c00'); // the tie between 65504 and 65536 goes to the even one: Infinity
    expect(hex(f16(-65520))).toBe('0xfc00');
    expect(hex(f16(2 ** -24))).toBe('0x0001'); // smallest subnormal
    expect(hex(f16(2 ** -25))).toBe('0x0000'); // half of it: a tie, to even (0)
    expect(hex(f16(1.5 * 2 ** -24))).toBe('0x0002'); // a tie between 1 and 2 units: to even (2)
    expect(hex(f16(1 + 2 ** -11))).toBe('0x3c00'); // tie between 1 and 1 + 2^-10: even (1)
    expect(hex(f16(1 + 3 * 2 ** -11))).toBe('0x3c02'); // tie between odd and even mantissas: even
    expect(Number.isNaN(float16BitsToFloat32(new Uint16Array([f16(NaN)]))[0])).toBe(true);
    expect(hex(bf16(1 + 2 ** -8))).toBe('0x3f80'); // bfloat16 tie, to even
    expect(hex(bf16(1 + 3 * 2 ** -8))).toBe('0x3f82');
    expect(hex(bf16(3.4028234663852886e38))).toBe('0x7f80'); // float32 max rounds up to Infinity
    expect(Number.isNaN(bfloat16BitsToFloat32(new Uint16Array([bf16(NaN)]))[0])).toBe(true);
    expect(float32ToFloat16Bits(new Float32Array([65520, 1e6, Infinity, NaN, 1])).overflow).toBe(2);
  });
});

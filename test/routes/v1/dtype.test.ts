/**
 * `dtype` on `POST /v1/roi`: float16 / bfloat16 outputs in every format (`.npy` `<f2`, safetensors
 * `F16` / `BF16`, JSON base64 and arrays), each equal to the float32 output rounded by
 * `src/tensors/float16.ts` (itself checked bit for bit against numpy and torch in
 * test/tensors/float16.test.ts); bfloat16 `.npy` refused; float16 overflow warned (base64 / npy /
 * safetensors) or refused (`encoding: "array"`); float32 still the default.
 * When Debian's /usr/bin/python3 has numpy (always under CI), `numpy.load` reads the float16 `.npy` too.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roiAlign, roiPool, toCanonicalBoxes, type FeatureMap } from '../../../src/ops/index.js';
import { roiResponseSchema } from '../../../routes/v1/schemas/responses.js';
import { buildApp } from '../../../src/server.js';
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
} from '../../../src/tensors/float16.js';
import { parseNpyHeader } from '../../../src/tensors/npy.js';
import { WARNINGS_HEADER } from '../../../src/warnings.js';
import { featuresField, randomMap, testConfig } from '../../support/fixtures.js';
import { PYTHON, pythonCan } from '../../support/python.js';

let app: FastifyInstance;

beforeAll(async () => {
  app = await buildApp(testConfig());
});

afterAll(async () => {
  await app?.close();
});

// Values scaled so that float16 rounding is visible (|v| up to 300: a float16 step of 0.25 there).
const fm: FeatureMap = (() => {
  const m = randomMap([2, 3, 10, 12], 11);
  for (let i = 0; i < m.data.length; i++) m.data[i] *= 300;
  return m;
})();
const boxes = [
  [0, 1.5, 2.25, 13.75, 15],
  [1, 0, 0, 20, 18],
  [0, 4, 4, 4, 9],
];
const canonical = toCanonicalBoxes(boxes, { format: 'xyxy', batchSize: 2 });
const align = roiAlign(fm, canonical, { spatialScale: 0.5 }).data;
const pool = roiPool(fm, canonical, { spatialScale: 0.5 }).data;
/** K · C · PH · PW of one output. */
const VALUES = 3 * 3 * 7 * 7;

function roi(payload: Record<string, unknown>) {
  return app.inject({ method: 'POST', url: '/v1/roi', payload: { spatialScale: 0.5, boxes, ...payload } });
}

const u16 = (bytes: Uint8Array) => {
  const copy = Uint8Array.from(bytes);
  return new Uint16Array(copy.buffer, 0, copy.length / 2);
};

/** The safetensors header and each tensor's bytes. */
function readSafetensorsRaw(file: Buffer) {
  const headerLength = Number(file.readBigUInt64LE(0));
  const header = JSON.parse(file.toString('utf8', 8, 8 + headerLength)) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  > & { __metadata__: Record<string, string> };
  const data = (name: string) => {
    const [a, b] = header[name].data_offsets;
    return file.subarray(8 + headerLength + a, 8 + headerLength + b);
  };
  return { header, data, dataLength: file.length - 8 - headerLength };
}

describe('dtype on POST /v1/roi', () => {
  it('float32 stays the default, echoed in params', async () => {
    const r = await roi({ features: featuresField(fm), ops: ['align'] });
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body.params.dtype).toBe('float32');
    expect(body.outputs.align.dtype).toBe('float32');
    expect(Buffer.from(body.outputs.align.data, 'base64').length).toBe(VALUES * 4);
    const npy = await roi({ features: featuresField(fm), ops: ['align'], format: 'npy' });
    expect(npy.rawPayload.toString('latin1', 10, 30)).toContain("'descr': '<f4'");
  });

  it('format "npy" with float16 is a <f2 .npy of the rounded values, 2 bytes each', async () => {
    const r = await roi({ features: featuresField(fm), ops: ['align'], format: 'npy', dtype: 'float16' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('application/x-npy');
    const file = r.rawPayload;
    const headerLength = file.readUInt16LE(8);
    const header = parseNpyHeader(file.toString('latin1', 10, 10 + headerLength));
    expect(header.get('descr')).toBe('<f2');
    expect(header.get('shape')).toEqual({ tuple: [3, 3, 7, 7] });
    expect((10 + headerLength) % 64).toBe(0);
    const bits = u16(file.subarray(10 + headerLength));
    expect(bits.length).toBe(VALUES);
    expect(Array.from(bits)).toEqual(Array.from(float32ToFloat16Bits(align).bits));
    // Rounding happened (values up to ±300 have steps of 0.25), within half a step of float32.
    const back = float16BitsToFloat32(bits);
    expect(back).not.toEqual(align);
    for (let i = 0; i < VALUES; i++) expect(Math.abs(back[i] - align[i])).toBeLessThanOrEqual(0.125);

    // numpy's reading is checked wherever it is installed, and always under CI (.ci/run installs it):
    // there a missing numpy fails below instead of skipping the check unseen
    if (process.env.CI || pythonCan(['numpy'])) {
      const dir = mkdtempSync(join(tmpdir(), 'roiserve-dtype-'));
      try {
        writeFileSync(join(dir, 'a.npy'), file);
        const py = spawnSync(
          PYTHON,
          [
            '-c',
            'import numpy as np, sys; a = np.load(sys.argv[1]); ' +
              'print(a.dtype.str, a.shape, a.view("<u2").ravel().tolist() == [int(x) for x in sys.argv[2].split(",")])',
            join(dir, 'a.npy'),
            Array.from(bits).join(','),
          ],
          { encoding: 'utf8' },
        );
        expect(py.stdout.trim(), py.stderr).toBe('<f2 (3, 3, 7, 7) True');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  it('format "npy" with bfloat16 is refused (400, field dtype): numpy has no bfloat16', async () => {
    const r = await roi({ features: featuresField(fm), ops: ['align'], format: 'npy', dtype: 'bfloat16' });
    expect(r.statusCode).toBe(400);
    const [e] = r.json().errors;
    expect(e.field).toBe('dtype');
    expect(e.message).toContain('numpy has no bfloat16');
    expect(e.expected).toContain('safetensors');
  });

  it('an unknown dtype is refused naming the field', async () => {
    const r = await roi({ features: featuresField(fm), dtype: 'float64' });
    expect(r.statusCode).toBe(400);
    expect(r.json().errors[0].field).toBe('dtype');
  });

  for (const [dtype, tag, convert] of [
    ['float16', 'F16', float32ToFloat16Bits],
    ['bfloat16', 'BF16', float32ToBfloat16Bits],
  ] as const) {
    it(`format "safetensors" with ${dtype}: ${tag} tensors of K·C·PH·PW·2 bytes, dtype in the params`, async () => {
      const r = await roi({
        features: featuresField(fm),
        ops: ['pool', 'align'],
        format: 'safetensors',
        dtype,
      });
      expect(r.statusCode).toBe(200);
      const { header, data, dataLength } = readSafetensorsRaw(r.rawPayload);
      expect(dataLength).toBe(2 * VALUES * 2);
      for (const [op, values] of [
        ['pool', pool],
        ['align', align],
      ] as const) {
        expect(header[op].dtype).toBe(tag);
        expect(header[op].shape).toEqual([3, 3, 7, 7]);
        const [a, b] = header[op].data_offsets;
        expect(b - a).toBe(VALUES * 2);
        expect(Array.from(u16(data(op)))).toEqual(Array.from(convert(values).bits));
      }
      expect(JSON.parse(header.__metadata__.params)).toMatchObject({ format: 'safetensors', dtype });
    });

    it(`JSON base64 with ${dtype}: the tensor's dtype field says so, 2 bytes per value`, async () => {
      const r = await roi({ features: featuresField(fm), ops: ['align'], dtype });
      expect(r.statusCode).toBe(200);
      const body = r.json();
      expect(roiResponseSchema.safeParse(body).error).toBeUndefined();
      expect(body.params.dtype).toBe(dtype);
      expect(body.outputs.align).toMatchObject({ shape: [3, 3, 7, 7], dtype });
      const bytes = Buffer.from(body.outputs.align.data, 'base64');
      expect(bytes.length).toBe(VALUES * 2);
      expect(Array.from(u16(bytes))).toEqual(Array.from(convert(align).bits));
    });

    it(`JSON arrays with ${dtype}: the values are the rounded numbers`, async () => {
      const r = await roi({ features: featuresField(fm), ops: ['align'], dtype, encoding: 'array' });
      expect(r.statusCode).toBe(200);
      const widen = dtype === 'float16' ? float16BitsToFloat32 : bfloat16BitsToFloat32;
      expect(r.json().outputs.align.data).toEqual(Array.from(widen(convert(align).bits)));
    });
  }

  describe('float16 overflow (|v| ≥ 65520 rounds to ±Infinity)', () => {
    const big: FeatureMap = { ...fm, data: fm.data.map((v) => v * 1000) };

    it('base64 / npy / safetensors: sent as ±Infinity with a dtype-overflow warning (body and header)', async () => {
      const r = await roi({ features: featuresField(big), ops: ['align'], dtype: 'float16' });
      expect(r.statusCode).toBe(200);
      const body = r.json();
      const back = float16BitsToFloat32(u16(Buffer.from(body.outputs.align.data, 'base64')));
      const infinities = back.filter((v) => !Number.isFinite(v)).length;
      expect(infinities).toBeGreaterThan(0);
      const warning = body.warnings.find((w: { code: string }) => w.code === 'dtype-overflow');
      expect(warning).toMatchObject({ field: 'dtype' });
      expect(warning.message).toMatch(
        new RegExp(`^${infinities} finite values of outputs\\.align lie beyond float16's range`),
      );
      expect(JSON.parse(r.headers[WARNINGS_HEADER.toLowerCase()] as string)).toContainEqual(warning);

      const npy = await roi({
        features: featuresField(big),
        ops: ['align'],
        dtype: 'float16',
        format: 'npy',
      });
      expect(npy.statusCode).toBe(200);
      expect(npy.headers[WARNINGS_HEADER.toLowerCase()]).toContain('dtype-overflow');
      const st = await roi({
        features: featuresField(big),
        ops: ['align'],
        dtype: 'float16',
        format: 'safetensors',
      });
      expect(JSON.parse(readSafetensorsRaw(st.rawPayload).header.__metadata__.warnings)).toContainEqual(
        warning,
      );

      // bfloat16 has float32's range: no overflow, no warning.
      const bf = await roi({ features: featuresField(big), ops: ['align'], dtype: 'bfloat16' });
      expect(bf.json().warnings.some((w: { code: string }) => w.code === 'dtype-overflow')).toBe(false);
    });

    it('encoding "array" refuses it (400, field dtype): JSON has no Infinity', async () => {
      const r = await roi({
        features: featuresField(big),
        ops: ['align'],
        dtype: 'float16',
        encoding: 'array',
      });
      expect(r.statusCode).toBe(400);
      const [e] = r.json().errors;
      expect(e.field).toBe('dtype');
      expect(e.message).toMatch(
        /^outputs\.align\.data\[\d+\] is -?[\d.e+]+, beyond float16's range: it rounds to -?Infinity/,
      );
      expect(e.expected).toContain('"bfloat16"');
    });
  });

  it('multipart: dtype as a plain field', async () => {
    const form = new FormData();
    form.append('features', JSON.stringify(featuresField(fm)));
    form.append('spatialScale', '0.5');
    form.append('boxes', JSON.stringify(boxes));
    form.append('ops', '["align"]');
    form.append('dtype', 'float16');
    const req = new Request('http://x/', { method: 'POST', body: form });
    const r = await app.inject({
      method: 'POST',
      url: '/v1/roi',
      headers: { 'content-type': req.headers.get('content-type') as string },
      payload: Buffer.from(await req.arrayBuffer()),
    });
    expect(r.statusCode).toBe(200);
    expect(r.json().outputs.align.dtype).toBe('float16');
  });
});

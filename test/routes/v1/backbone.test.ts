/** `GET /v1/backbone` through `inject`: the built-in backbone's description, and the pyramid it carries (the response schema keeps it). */
import { describe, expect, it } from 'vitest';
import { useApp } from '../../support/app.js';
import { autoBackend } from '../../support/tf.js';

const server = useApp();

describe('GET /v1/backbone: pyramid', () => {
  it('describes the built-in pyramid: levels 3, 4, 5 at strides 8, 16, 32, 64 channels, its cost', async () => {
    const r = await server.app.inject({ method: 'GET', url: '/v1/backbone' });
    expect(r.statusCode).toBe(200);
    const d = r.json();
    expect(d.pyramid).toMatchObject({ channels: 64, strides: [8, 16, 32] });
    expect(d.pyramid.levels.map((l: { level: number; stride: number }) => [l.level, l.stride])).toEqual([
      [3, 8],
      [4, 16],
      [5, 32],
    ]);
    // The pyramid's pass includes the backbone's and adds its head.
    expect(d.pyramid.totalMultiplyAdds).toBeGreaterThan(d.totalMultiplyAdds);
    expect(d.pyramid.totalMultiplyAdds).toBe(
      d.totalMultiplyAdds +
        d.pyramid.layers.reduce((s: number, l: { multiplyAdds: number }) => s + l.multiplyAdds, 0),
    );
    expect(d.pyramid.layers.map((l: { type: string }) => l.type)).toContain('upsample');
  });
});

describe('GET /v1/backbone', () => {
  it('describes the built-in backbone', async () => {
    const r = await server.app.inject({ method: 'GET', url: '/v1/backbone' });
    expect(r.statusCode).toBe(200);
    const d = r.json();
    expect(d).toMatchObject({
      name: 'builtin-inception-s16',
      ...(await autoBackend()),
      stride: 16,
      outputChannels: 256,
    });
    expect(d.layers.length).toBeGreaterThan(5);
    expect(d.totalParams).toBe(d.layers.reduce((s: number, l: { params: number }) => s + l.params, 0));
  });
});

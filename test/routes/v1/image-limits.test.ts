/** MAX_IMAGE_PIXELS and MAX_IMAGE_SIDE on `POST /v1/roi` and `/v1/features` with an image, through `inject` (the strict app). */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { useApp } from '../../support/app.js';
import { STRICT_API_KEY as API_KEY, roiPoster, strictConfig } from '../../support/v1.js';

const server = useApp();
const strictServer = useApp(strictConfig());
const roi = roiPoster(server);

describe('image limits: MAX_IMAGE_PIXELS and MAX_IMAGE_SIDE', () => {
  const auth = { authorization: `Bearer ${API_KEY}` };

  it('413 for an image over MAX_IMAGE_PIXELS, before decoding', async () => {
    const png = await sharp({ create: { width: 100, height: 100, channels: 3, background: '#000' } })
      .png()
      .toBuffer();
    const r = await strictServer.app.inject({
      method: 'POST',
      url: '/v1/features',
      headers: auth,
      payload: { image: png.toString('base64') },
    });
    expect(r.statusCode).toBe(413);
    expect(r.json()).toMatchObject({ type: 'urn:roiserve:problem:too-large', errors: [{ field: 'image' }] });
  });

  it('shrinks to MAX_IMAGE_SIDE: boxes stay in input pixels, operators and coverage work in the resized frame', async () => {
    // Solid colour: a small file, under the strictServer.app app's 4 kB body limit.
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3a6' } })
      .png()
      .toBuffer();
    const r = await roi(
      { image: png.toString('base64'), boxes: [[0, 0, 64, 48]], outputSize: 1, ops: ['align'] },
      strictServer.app,
      auth,
    );
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body.image).toEqual({
      width: 32,
      height: 24,
      originalWidth: 64,
      originalHeight: 48,
      scale: 0.5,
      scaleX: 0.5,
      scaleY: 0.5,
      format: 'png',
    });
    expect(body.featureMap.shape).toEqual([1, 256, 2, 2]);
    expect(body.boxes).toEqual([[0, 0, 0, 64, 48]]);
    expect(body.coverage[0].box).toEqual({ x1: 0, y1: 0, x2: 32, y2: 24 });
  });

  it('a request maxSide over MAX_IMAGE_SIDE is served at the cap, with a max-side-capped warning', async () => {
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3a6' } })
      .png()
      .toBuffer();
    const image = png.toString('base64');
    const r = await roi(
      { image, boxes: [[0, 0, 64, 48]], outputSize: 1, ops: ['align'], maxSide: 48 },
      strictServer.app,
      auth,
    );
    expect(r.statusCode).toBe(200);
    expect(r.json().image).toMatchObject({ width: 32, height: 24 });
    expect(r.json().params.maxSide).toBe(32);
    expect(r.json().warnings).toEqual([
      expect.objectContaining({ code: 'max-side-capped', field: 'maxSide' }),
    ]);
    expect(JSON.parse(r.headers['x-roiserve-warnings'] as string)).toEqual(r.json().warnings);
    const smaller = await roi(
      { image, boxes: [[0, 0, 64, 48]], outputSize: 1, ops: ['align'], maxSide: 16 },
      strictServer.app,
      auth,
    );
    expect(smaller.json().image).toMatchObject({ width: 16, height: 12 });
    expect(smaller.json().warnings).toEqual([]);
  });

  it('scales box x by width / originalWidth and y by height / originalHeight (they differ after rounding)', async () => {
    // 64×27 → 32×14 (13.5 rounds up): x factor 0.5, y factor 14/27. Boxes were scaled by 0.5 on both
    // axes, so the full-image box ended at y 13.5 in a 14-pixel-high image.
    const png = await sharp({ create: { width: 64, height: 27, channels: 3, background: '#3a6' } })
      .png()
      .toBuffer();
    const r = await roi(
      {
        image: png.toString('base64'),
        boxes: [
          [0, 0, 64, 27],
          [10, 9, 30, 18],
        ],
        outputSize: 1,
        ops: ['align'],
      },
      strictServer.app,
      auth,
    );
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body.image).toMatchObject({ width: 32, height: 14, scaleX: 0.5, scaleY: 14 / 27 });
    expect(body.coverage[0].box).toEqual({ x1: 0, y1: 0, x2: 32, y2: 14 });
    expect(body.coverage[0].align.iou).toBe(1);
    const f = Math.fround;
    expect(body.coverage[1].box).toEqual({ x1: 5, y1: f(9 * (14 / 27)), x2: 15, y2: f(18 * (14 / 27)) });
  });
});

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import sharp, { type Sharp } from 'sharp';
import { describe, expect, it } from 'vitest';
import { InvalidInputError, TooLargeError, UnsupportedMediaError } from '../../src/errors.js';
import { decodeImage, type DecodedImage } from '../../src/imaging/decode.js';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, '../../fixtures/images', name));

/** RGB of pixel (x, y). */
function px(img: DecodedImage, x: number, y: number): number[] {
  const i = (y * img.width + x) * 3;
  return [img.rgb[i], img.rgb[i + 1], img.rgb[i + 2]];
}

/** A 40×30 picture: left half pure red, right half pure blue (lossless formats keep it exact). */
async function redBlue(): Promise<Sharp> {
  const blue = await sharp({ create: { width: 20, height: 30, channels: 3, background: '#0000ff' } })
    .png()
    .toBuffer();
  const png = await sharp({ create: { width: 40, height: 30, channels: 3, background: '#ff0000' } })
    .composite([{ input: blue, left: 20, top: 0 }])
    .png()
    .toBuffer();
  return sharp(png);
}

/** Channel values within `tol` of `expected` (lossy codecs). */
function near(actual: number[], expected: number[], tol: number): boolean {
  return actual.every((v, i) => Math.abs(v - expected[i]) <= tol);
}

describe('decodeImage: formats', () => {
  const encoders: Array<[string, (s: Sharp) => Sharp, number]> = [
    ['png', (s) => s.png(), 0],
    ['jpeg', (s) => s.jpeg({ quality: 95 }), 8],
    ['webp', (s) => s.webp({ lossless: true }), 0],
    ['avif', (s) => s.avif({ lossless: true }), 2],
    ['gif', (s) => s.gif(), 0],
    ['tiff', (s) => s.tiff({ compression: 'lzw' }), 0],
  ];
  for (const [format, encode, tol] of encoders) {
    it(`decodes ${format} to HWC RGB and names the format`, async () => {
      const bytes = await encode(await redBlue()).toBuffer();
      const img = await decodeImage(bytes);
      expect(img.format).toBe(format);
      expect([img.width, img.height, img.originalWidth, img.originalHeight]).toEqual([40, 30, 40, 30]);
      expect(img.scale).toBe(1);
      expect(img.rgb.length).toBe(40 * 30 * 3);
      expect(near(px(img, 5, 15), [255, 0, 0], tol)).toBe(true);
      expect(near(px(img, 35, 15), [0, 0, 255], tol)).toBe(true);
    });
  }

  it('accepts a Uint8Array view as well as a Buffer', async () => {
    const bytes = await (await redBlue()).png().toBuffer();
    const padded = new Uint8Array(bytes.length + 7);
    padded.set(bytes, 7);
    const img = await decodeImage(padded.subarray(7));
    expect(px(img, 0, 0)).toEqual([255, 0, 0]);
  });

  it('returns pixels another thread can take by transfer (Node 22+ refuses addon-allocated buffers)', async () => {
    const img = await decodeImage(await (await redBlue()).png().toBuffer());
    expect(img.rgb.byteOffset).toBe(0);
    expect(img.rgb.byteLength).toBe(img.rgb.buffer.byteLength);
    const { port1, port2 } = new MessageChannel();
    try {
      // Threw DataCloneError on Node 22 and 24 when rgb was a view of sharp's output.
      port1.postMessage(img.rgb, [img.rgb.buffer]);
      expect(img.rgb.buffer.byteLength).toBe(0); // moved, not copied
    } finally {
      port1.close();
      port2.close();
    }
  });

  it('refuses SVG with 415 naming the format', async () => {
    const svg = Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>',
    );
    const err = await decodeImage(svg).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsupportedMediaError);
    expect((err as UnsupportedMediaError).status).toBe(415);
    expect((err as Error).message).toMatch(/'svg'/);
    expect((err as UnsupportedMediaError).field).toBe('image');
  });

  it('refuses BMP (sharp cannot read it) with 415 naming bmp', async () => {
    // Minimal BITMAPFILEHEADER + BITMAPINFOHEADER of a 1×1 24-bit BMP.
    const bmp = Buffer.alloc(58);
    bmp.write('BM', 0, 'ascii');
    bmp.writeUInt32LE(58, 2);
    bmp.writeUInt32LE(54, 10);
    bmp.writeUInt32LE(40, 14);
    bmp.writeInt32LE(1, 18);
    bmp.writeInt32LE(1, 22);
    bmp.writeUInt16LE(1, 26);
    bmp.writeUInt16LE(24, 28);
    await expect(decodeImage(bmp)).rejects.toThrow(/'bmp'/);
    await expect(decodeImage(bmp)).rejects.toBeInstanceOf(UnsupportedMediaError);
  });

  it('refuses undetectable bytes with 415 "unknown", using the given field name', async () => {
    const err = await decodeImage(Buffer.from('definitely not an image'), { field: 'file' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UnsupportedMediaError);
    expect((err as Error).message).toMatch(/'unknown'/);
    expect((err as UnsupportedMediaError).field).toBe('file');
  });
});

describe('decodeImage: orientation, alpha, grey, depth, frames (committed fixtures)', () => {
  it('applies EXIF orientation 6 (stored 32×16 left red/right blue → shown 16×32 red on top)', async () => {
    const img = await decodeImage(fixture('orientation-6.jpg'));
    expect([img.width, img.height, img.originalWidth, img.originalHeight]).toEqual([16, 32, 16, 32]);
    expect(near(px(img, 8, 4), [255, 0, 0], 12)).toBe(true);
    expect(near(px(img, 8, 28), [0, 0, 255], 12)).toBe(true);
  });

  it('applies EXIF orientations 3 (180°) and 2 (mirror) on generated images', async () => {
    const src = await (await redBlue()).png().toBuffer();
    const rot180 = await decodeImage(
      await sharp(src).jpeg({ quality: 95 }).withMetadata({ orientation: 3 }).toBuffer(),
    );
    expect([rot180.width, rot180.height]).toEqual([40, 30]);
    expect(near(px(rot180, 5, 15), [0, 0, 255], 12)).toBe(true);
    const mirror = await decodeImage(
      await sharp(src).jpeg({ quality: 95 }).withMetadata({ orientation: 2 }).toBuffer(),
    );
    expect(near(px(mirror, 35, 15), [255, 0, 0], 12)).toBe(true);
  });

  it('flattens grey+alpha onto black and expands grey to RGB', async () => {
    const img = await decodeImage(fixture('grey-alpha.png'));
    expect(img.rgb.length).toBe(8 * 8 * 3);
    expect(px(img, 1, 3)).toEqual([0, 0, 0]); // alpha 0 → black
    expect(px(img, 6, 3)).toEqual([128, 128, 128]); // opaque grey → grey in all three channels
  });

  it('flattens half-transparent RGBA onto black', async () => {
    const rgba = await sharp({
      create: { width: 4, height: 4, channels: 4, background: { r: 200, g: 100, b: 50, alpha: 0.5 } },
    })
      .png()
      .toBuffer();
    const img = await decodeImage(rgba);
    const [r, g, b] = px(img, 2, 2);
    expect(near([r, g, b], [100, 50, 25], 1)).toBe(true);
  });

  it('converts a 16-bit PNG to 8 bits', async () => {
    const img = await decodeImage(fixture('rgb16.png'));
    expect(img.rgb).toBeInstanceOf(Uint8Array);
    expect(img.rgb.length).toBe(4 * 3 * 3);
    expect(px(img, 3, 2)).toEqual([128, 128, 128]);
  });

  it('converts a CMYK JPEG to RGB', async () => {
    const cmyk = await (await redBlue()).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer();
    expect((await sharp(cmyk).metadata()).space).toBe('cmyk');
    const img = await decodeImage(cmyk);
    expect(img.rgb.length).toBe(40 * 30 * 3);
    const [r, g, b] = px(img, 5, 15);
    expect(r).toBeGreaterThan(200);
    expect(Math.max(g, b)).toBeLessThan(60);
  });

  it('takes the first frame of an animated GIF', async () => {
    const img = await decodeImage(fixture('two-frames.gif'));
    expect([img.width, img.height]).toEqual([8, 6]);
    expect(px(img, 4, 5)).toEqual([255, 0, 0]);
  });
});

describe('decodeImage: limits and resizing', () => {
  it('refuses an image over limitInputPixels with 413, before decoding', async () => {
    const png = await sharp({ create: { width: 100, height: 50, channels: 3, background: '#000' } })
      .png()
      .toBuffer();
    const err = await decodeImage(png, { limitInputPixels: 4999 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TooLargeError);
    expect((err as TooLargeError).status).toBe(413);
    expect((err as Error).message).toMatch(/5000 pixels.*4999/);
    await expect(decodeImage(png, { limitInputPixels: 5000 })).resolves.toMatchObject({ width: 100 });
  });

  it('applies the 40 MP default limit', async () => {
    // A 1×1 PNG whose header claims 7000×6000 = 42 MP: refused from the header, nothing is decoded.
    const png = Buffer.from(
      await sharp({ create: { width: 1, height: 1, channels: 3, background: '#000' } })
        .png()
        .toBuffer(),
    );
    png.writeUInt32BE(7000, 16);
    png.writeUInt32BE(6000, 20);
    png.writeUInt32BE(crc32(png.subarray(12, 29)), 29); // IHDR CRC covers type + data
    const err = await decodeImage(png).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TooLargeError);
    expect((err as Error).message).toMatch(/42000000 pixels.*40000000/);
  });

  it('refuses an empty body with 400', async () => {
    const err = await decodeImage(Buffer.alloc(0)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).status).toBe(400);
    expect((err as InvalidInputError).field).toBe('image');
  });

  it('refuses truncated JPEG and PNG with 400', async () => {
    const noisy = await sharp(Buffer.from(Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 7919) % 251)), {
      raw: { width: 64, height: 64, channels: 3 },
    });
    const jpeg = await noisy.clone().jpeg().toBuffer();
    const png = await noisy.clone().png().toBuffer();
    for (const bytes of [jpeg.subarray(0, jpeg.length >> 1), png.subarray(0, png.length >> 1)]) {
      const err = await decodeImage(bytes).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidInputError);
      expect((err as Error).message).toMatch(/truncated or corrupt/);
    }
  });

  it('refuses a JPEG whose scan data stops after its header (libjpeg only warns) with 400', async () => {
    // 268 bytes: the headers of a 4000×4000 JPEG, three bytes of scan data, EOI. sharp's
    // failOn 'error' (and 'truncated') decoded this as 16 MP of grey and the backbone ran on it.
    const full = await sharp({ create: { width: 4000, height: 4000, channels: 3, background: '#336699' } })
      .jpeg()
      .toBuffer();
    const sos = full.indexOf(Buffer.from([0xff, 0xda]));
    const sosLength = full.readUInt16BE(sos + 2);
    const bytes = Buffer.concat([full.subarray(0, sos + 2 + sosLength + 3), Buffer.from([0xff, 0xd9])]);
    expect(bytes.length).toBe(268);
    const err = await decodeImage(bytes).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err).toMatchObject({ status: 400, field: 'image', expected: 'a complete, valid image' });
    expect((err as Error).message).toMatch(/truncated or corrupt.*premature end of data segment/);
  });

  it('still decodes a JPEG with a harmless libjpeg warning (extraneous bytes before a marker)', async () => {
    const jpeg = await (await redBlue()).jpeg({ quality: 95 }).toBuffer();
    const sos = jpeg.indexOf(Buffer.from([0xff, 0xda]));
    const odd = Buffer.concat([jpeg.subarray(0, sos), Buffer.from([0x00, 0x00]), jpeg.subarray(sos)]);
    // The strict decode does refuse it: the lenient retry is what lets it through.
    await expect(sharp(odd, { failOn: 'warning' }).raw().toBuffer()).rejects.toThrow(/extraneous bytes/);
    const img = await decodeImage(odd);
    expect([img.width, img.height]).toEqual([40, 30]);
    expect(near(px(img, 5, 15), [255, 0, 0], 8)).toBe(true);
  });

  it('runs checkSize on the header, before decoding, with the sizes before and after resizing', async () => {
    const png = Buffer.from(
      await sharp({ create: { width: 40, height: 20, channels: 3, background: '#123456' } })
        .png()
        .toBuffer(),
    );
    const idat = png.indexOf('IDAT');
    png.fill(0xff, idat + 4, idat + 20); // corrupt pixels: decoding would fail
    const seen: unknown[] = [];
    const refused = new Error('refused by checkSize');
    const err = await decodeImage(png, {
      maxSide: 10,
      checkSize: (size) => {
        seen.push(size);
        throw refused;
      },
    }).catch((e: unknown) => e);
    expect(err).toBe(refused);
    expect(seen).toEqual([{ width: 10, height: 5, originalWidth: 40, originalHeight: 20 }]);
  });

  it('refuses a PNG with corrupt pixel data with 400', async () => {
    const png = Buffer.from(
      await sharp({ create: { width: 32, height: 32, channels: 3, background: '#123456' } })
        .png()
        .toBuffer(),
    );
    const idat = png.indexOf('IDAT');
    png.fill(0xff, idat + 4, idat + 20); // smash the zlib stream, keep the header
    await expect(decodeImage(png)).rejects.toBeInstanceOf(InvalidInputError);
  });

  it('shrinks so the longer side is maxSide and reports the scale', async () => {
    const src = await (await redBlue()).png().toBuffer(); // 40×30
    const img = await decodeImage(src, { maxSide: 20 });
    expect([img.width, img.height, img.originalWidth, img.originalHeight]).toEqual([20, 15, 40, 30]);
    expect(img.scale).toBe(0.5);
    expect(img.scaleY).toBe(0.5);
    expect(img.rgb.length).toBe(20 * 15 * 3);
    expect(near(px(img, 2, 7), [255, 0, 0], 2)).toBe(true);
    expect(near(px(img, 17, 7), [0, 0, 255], 2)).toBe(true);
  });

  it('never enlarges, and resizes after EXIF orientation', async () => {
    const same = await decodeImage(await (await redBlue()).png().toBuffer(), { maxSide: 4000 });
    expect([same.width, same.height, same.scale]).toEqual([40, 30, 1]);
    const rotated = await decodeImage(fixture('orientation-6.jpg'), { maxSide: 8 });
    expect([rotated.width, rotated.height, rotated.originalWidth, rotated.originalHeight]).toEqual([
      4, 8, 16, 32,
    ]);
    expect(rotated.scale).toBe(0.25);
  });

  it('rounds odd sizes and reports both axis scales exactly', async () => {
    const png = await sharp({ create: { width: 333, height: 101, channels: 3, background: '#000' } })
      .png()
      .toBuffer();
    const img = await decodeImage(png, { maxSide: 100 });
    expect([img.width, img.height]).toEqual([100, 30]); // 101·100/333 = 30.33
    expect(img.scaleX).toBe(100 / 333);
    expect(img.scaleY).toBe(30 / 101);
  });
});

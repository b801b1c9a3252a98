/**
 * Image decoding with sharp: untrusted bytes → 8-bit RGB pixels `[H, W, 3]` (HWC, row-major).
 *
 * What it does, in order: detect the format (refuse anything but JPEG, PNG, WebP, AVIF, GIF, TIFF),
 * check the pixel limit before decoding, decode the first frame/page, apply the EXIF orientation,
 * flatten alpha onto black, convert grey/CMYK/16-bit to 8-bit sRGB, and optionally shrink so the
 * longer side is at most `maxSide`. Truncated or corrupt pixel data is refused: sharp `failOn: 'truncated'`,
 * and libjpeg's "premature end of data segment" warning too (see the decode below).
 */
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { InvalidInputError, TooLargeError, UnsupportedMediaError } from '../errors.js';

/** Formats the service accepts, as named in errors and in {@link DecodedImage.format}. */
export const SUPPORTED_IMAGE_FORMATS = ['jpeg', 'png', 'webp', 'avif', 'gif', 'tiff'] as const;

/** Default for {@link DecodeOptions.limitInputPixels}: 40 MP. */
export const DEFAULT_LIMIT_INPUT_PIXELS = 40_000_000;

export interface DecodeOptions {
  /** Refuse (413) images with more than this many pixels (width × height of one frame). Default 40e6. */
  limitInputPixels?: number;
  /** Shrink so that max(width, height) ≤ maxSide (never enlarges). Default: undefined, keep the size. */
  maxSide?: number;
  /** Field name used in error responses. Default `'image'`. */
  field?: string;
  /**
   * Called with the size the pixels will have (after orientation and resizing) and the size as sent,
   * from the header, before any pixel is decoded; throw to refuse the image. The pipeline passes the
   * backbone's limits here, so an image it cannot take costs no decoding. Default: none.
   */
  checkSize?: (size: {
    width: number;
    height: number;
    originalWidth: number;
    originalHeight: number;
  }) => void;
}

/** A decoded image: its pixels, and the sizes the results report (`ImageInfo`, `src/core/results.ts`). */
export interface DecodedImage {
  /** Pixels `[height, width, 3]`, RGB, 8-bit, row-major (HWC). */
  rgb: Uint8Array;
  /** Width after the optional `MAX_IMAGE_SIDE` / `maxSide` resize: the frame of the operators and coverage. */
  width: number;
  /** Height after the optional resize. */
  height: number;
  /** Width after EXIF orientation, before resizing: the frame boxes are given in. */
  originalWidth: number;
  /** Height after EXIF orientation, before resizing. */
  originalHeight: number;
  /** `width / originalWidth`; 1 when not resized. Same as `scaleX`. */
  scale: number;
  /** `width / originalWidth`: multiply box x coordinates by this. */
  scaleX: number;
  /** `height / originalHeight`: multiply box y coordinates by this (equals `scaleX` up to rounding). */
  scaleY: number;
  /** Detected format: one of {@link SUPPORTED_IMAGE_FORMATS}. */
  format: string;
}

/** Magic numbers of common formats sharp does not decode here, only to name them in the 415 error. */
const UNSUPPORTED_SIGNATURES: Array<[string, (b: Uint8Array) => boolean]> = [
  ['bmp', (b) => b[0] === 0x42 && b[1] === 0x4d],
  ['ico', (b) => b[0] === 0 && b[1] === 0 && b[2] === 1 && b[3] === 0],
  ['pdf', (b) => ascii(b, 0, 5) === '%PDF-'],
  ['psd', (b) => ascii(b, 0, 4) === '8BPS'],
  ['jxl', (b) => (b[0] === 0xff && b[1] === 0x0a) || ascii(b, 4, 8) === 'JXL '],
  ['jp2', (b) => ascii(b, 4, 8) === 'jP  '],
  ['heic', (b) => ascii(b, 4, 8) === 'ftyp' && /^(heic|heix|hevc|mif1|msf1)$/.test(ascii(b, 8, 12))],
];

function ascii(bytes: Uint8Array, start: number, end: number): string {
  return String.fromCharCode(...bytes.subarray(start, end));
}

function unsupported(detected: string, field: string): UnsupportedMediaError {
  return new UnsupportedMediaError(
    `Unsupported image format '${detected}'; expected one of ${SUPPORTED_IMAGE_FORMATS.join(', ')}`,
    field,
    `an image in one of: ${SUPPORTED_IMAGE_FORMATS.join(', ')}`,
  );
}

/** What an image's header tells, before any pixel is decoded (see {@link readImageSize}). */
export interface ImageHeaderSize {
  /** Width after EXIF orientation and the optional `maxSide` resize: the width the pixels will have. */
  width: number;
  height: number;
  /** Width after EXIF orientation, before resizing: the frame boxes are given in. */
  originalWidth: number;
  originalHeight: number;
  /** Detected format: one of {@link SUPPORTED_IMAGE_FORMATS}. */
  format: string;
}

/**
 * Reads an image's size from its header (no pixel decoded) with the checks {@link decodeImage} makes
 * before decoding: empty, unsupported or corrupt header, zero size, the pixel limit; and the size it
 * will have after `maxSide`. The pipeline uses it to cost all the images of a request (`images`)
 * before any of them is decoded or goes through the backbone.
 *
 * @param opts - `limitInputPixels`, `maxSide` and `field` as for {@link decodeImage} (`checkSize` is not called)
 * @throws as {@link decodeImage} does for the header
 */
export async function readImageSize(
  bytes: Buffer | Uint8Array,
  opts: DecodeOptions = {},
): Promise<ImageHeaderSize> {
  const { width, height, originalWidth, originalHeight, format } = await readHeader(bytes, opts);
  return { width, height, originalWidth, originalHeight, format };
}

/** The header half of {@link decodeImage}: the checks and sizes that need no pixel. */
async function readHeader(bytes: Buffer | Uint8Array, opts: DecodeOptions) {
  const field = opts.field ?? 'image';
  const limit = opts.limitInputPixels ?? DEFAULT_LIMIT_INPUT_PIXELS;
  const { maxSide } = opts;
  if (maxSide !== undefined && !(Number.isInteger(maxSide) && maxSide >= 1)) {
    throw new RangeError(`decodeImage: maxSide must be an integer >= 1, got ${maxSide}`);
  }
  if (bytes.length === 0) {
    throw new InvalidInputError('The image is empty (0 bytes)', field, 'a non-empty encoded image');
  }
  const input = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  // sharp's own limit stays on as a second guard; ours runs first to give a precise message.
  const sharpOptions = { failOn: 'truncated', limitInputPixels: limit, pages: 1, page: 0 } as const;
  let meta: Metadata;
  try {
    // Header only: the pixel limit is checked below with a clearer message than sharp's.
    meta = await sharp(input, { ...sharpOptions, limitInputPixels: false }).metadata();
  } catch (err) {
    const message = (err as Error).message;
    if (/unsupported image format/i.test(message)) {
      const named = UNSUPPORTED_SIGNATURES.find(([, test]) => test(input));
      throw unsupported(named ? named[0] : 'unknown', field);
    }
    throw corrupt(message, field);
  }

  const format =
    meta.format === 'heif' ? (meta.compression === 'av1' ? 'avif' : 'heic') : String(meta.format);
  if (!(SUPPORTED_IMAGE_FORMATS as readonly string[]).includes(format)) throw unsupported(format, field);

  // One frame of a multi-page GIF/TIFF/WebP: `pageHeight` is the frame height, `height` may be the stack.
  const frameWidth = meta.width ?? 0;
  const frameHeight = meta.pageHeight ?? meta.height ?? 0;
  if (frameWidth <= 0 || frameHeight <= 0) {
    throw new InvalidInputError(
      `The image has zero size (${frameWidth}×${frameHeight})`,
      field,
      'width and height ≥ 1',
    );
  }
  if (frameWidth * frameHeight > limit) {
    throw new TooLargeError(
      `The image has ${frameWidth}×${frameHeight} = ${frameWidth * frameHeight} pixels, over the limit of ${limit}`,
      field,
      `at most ${limit} pixels`,
    );
  }
  // Orientations 5..8 swap the axes.
  const swapped = (meta.orientation ?? 1) >= 5;
  const originalWidth = swapped ? frameHeight : frameWidth;
  const originalHeight = swapped ? frameWidth : frameHeight;

  let width = originalWidth;
  let height = originalHeight;
  if (maxSide !== undefined && Math.max(width, height) > maxSide) {
    const s = maxSide / Math.max(width, height);
    width = Math.max(1, Math.round(originalWidth * s));
    height = Math.max(1, Math.round(originalHeight * s));
  }

  return { input, field, limit, sharpOptions, width, height, originalWidth, originalHeight, format };
}

/**
 * Decodes an uploaded image into RGB pixels.
 *
 * @param bytes - The encoded image.
 * @param opts.limitInputPixels - Pixel limit of one frame, default 40e6 (413 above it).
 * @param opts.maxSide - Optional longest side after resizing; default keeps the original size.
 * @param opts.field - Field name for errors, default `'image'`.
 * @param opts.checkSize - Size check run on the header before decoding, default none.
 * @returns RGB pixels `[H, W, 3]` plus original size and the scale used.
 * @throws UnsupportedMediaError (415) for an undetectable or unsupported format (the error names it);
 *   TooLargeError (413) over the pixel limit; InvalidInputError (400) for empty, zero-size,
 *   truncated or corrupt images.
 */
export async function decodeImage(
  bytes: Buffer | Uint8Array,
  opts: DecodeOptions = {},
): Promise<DecodedImage> {
  const { input, field, limit, sharpOptions, width, height, originalWidth, originalHeight, format } =
    await readHeader(bytes, opts);
  opts.checkSize?.({ width, height, originalWidth, originalHeight });
  const decode = (failOn: 'warning' | 'truncated') => {
    let pipeline = sharp(input, { ...sharpOptions, failOn, autoOrient: true })
      .flatten({ background: { r: 0, g: 0, b: 0 } })
      .toColourspace('srgb')
      .removeAlpha();
    if (width !== originalWidth || height !== originalHeight) {
      // Exact target size on both axes so scaleX/scaleY are exactly width/originalWidth, height/originalHeight.
      pipeline = pipeline.resize(width, height, { fit: 'fill' });
    }
    return pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  };
  let data: Buffer;
  let info: OutputInfo;
  try {
    try {
      // Strict first: libjpeg reports scan data that ends early ("Corrupt JPEG data: premature end of
      // data segment") only as a warning, so `failOn: 'error'` or `'truncated'` let a 268-byte JPEG
      // whose header claims 4000×4000 through as 16 MP of grey, and the backbone ran on it.
      ({ data, info } = await decode('warning'));
    } catch (err) {
      // Other warnings are common in real files (a PNG's "known incorrect sRGB profile", a JPEG's
      // "extraneous bytes before marker") and harmless: those images are decoded again, leniently.
      if (MISSING_DATA.test((err as Error).message)) throw err;
      ({ data, info } = await decode('truncated'));
    }
  } catch (err) {
    const message = (err as Error).message;
    if (/exceeds pixel limit/i.test(message)) {
      throw new TooLargeError(
        `The image exceeds the pixel limit of ${limit}`,
        field,
        `at most ${limit} pixels`,
      );
    }
    throw corrupt(message, field);
  }
  if (info.channels !== 3 || info.width !== width || info.height !== height) {
    // Would be a bug in the pipeline above, not bad input.
    throw new Error(
      `decodeImage: expected ${width}×${height}×3 pixels, sharp produced ${info.width}×${info.height}×${info.channels}`,
    );
  }
  return {
    // A copy, not a view: sharp's output is memory the addon allocated (an "external" buffer), which
    // Node 22 and later refuse to transfer between threads ("DataCloneError: Cannot transfer object of
    // unsupported type"), and the worker moves these pixels to the HTTP thread. One memcpy of W×H×3
    // bytes is small next to the backbone's work on the same pixels.
    rgb: new Uint8Array(data),
    width,
    height,
    originalWidth,
    originalHeight,
    scale: width / originalWidth,
    scaleX: width / originalWidth,
    scaleY: height / originalHeight,
    format,
  };
}

/** libvips / libjpeg / libpng messages that mean pixel data is missing, not merely odd. */
const MISSING_DATA = /premature end|truncat|exceeds pixel limit|not enough|unexpected end/i;

function corrupt(sharpMessage: string, field: string): InvalidInputError {
  // libvips repeats lines; the first one says what went wrong.
  const reason = sharpMessage.split('\n')[0].trim();
  return new InvalidInputError(
    `The image could not be decoded (truncated or corrupt): ${reason}`,
    field,
    'a complete, valid image',
  );
}

/**
 * float32 → float16 (IEEE 754 binary16) and → bfloat16 conversion, for outputs sent with
 * `dtype: "float16"` / `"bfloat16"` (half the bytes of float32). Pure integer work on the float32 bit
 * patterns (a Uint32Array view of the same memory): no per-element allocation, and no reliance on
 * `Float16Array` (Node 20 has none).
 *
 * The rounding, the same as numpy's `astype(np.float16)` and torch's `.half()` / `.bfloat16()` (tested
 * bit for bit against both, `test/tensors/float16.test.ts`):
 * - round to nearest, ties to even, in every range (normals, subnormals, the step into Infinity);
 * - float16: a magnitude that rounds past 65504 (i.e. ≥ 65520) becomes ±Infinity; bfloat16 has float32's
 *   exponent range, so only values within half a bfloat16 step of float32's largest (≥ 3.3961e38)
 *   overflow. {@link Float16Conversion.overflow} counts finite values that became ±Infinity;
 * - float16 subnormals (2^-24 … 2^-14) are kept, not flushed to zero; magnitudes at or below 2^-25
 *   (half the smallest subnormal, a tie, to even) become ±0; −0 stays −0;
 * - ±Infinity stays ±Infinity; NaN stays NaN with its sign and the top bits of its payload; when those
 *   bits are all zero the lowest mantissa bit is set so that the result is still a NaN (numpy's rule;
 *   torch returns a canonical NaN instead).
 */

/** The element types an output can be sent in. */
export const OUTPUT_DTYPES = ['float32', 'float16', 'bfloat16'] as const;
export type OutputDtype = (typeof OUTPUT_DTYPES)[number];

/** Largest finite float16, 65504. */
export const FLOAT16_MAX = 65504;

/** The result of a conversion: the 16-bit patterns and how many finite inputs became ±Infinity. */
export interface Float16Conversion {
  bits: Uint16Array;
  overflow: number;
}

/** The float32 bit patterns of `values`, sharing memory (no copy). */
function float32Bits(values: Float32Array): Uint32Array {
  if (values.byteOffset % 4 !== 0) {
    // A Float32Array is always 4-byte aligned; this only guards against a future refactor.
    throw new Error('float32Bits: unaligned Float32Array');
  }
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

/**
 * float32 → IEEE 754 binary16 bit patterns, round to nearest, ties to even.
 *
 * @param values - float32 values
 * @param out - where to write (length ≥ `values.length`); default a new array
 */
export function float32ToFloat16Bits(
  values: Float32Array,
  out = new Uint16Array(values.length),
): Float16Conversion {
  const src = float32Bits(values);
  let overflow = 0;
  for (let i = 0; i < src.length; i++) {
    const f = src[i];
    const sign = (f >>> 16) & 0x8000;
    const a = f & 0x7fffffff;
    let h: number;
    if (a >= 0x477ff000) {
      // |x| ≥ 65520 (rounds past 65504), Infinity or NaN: exponent all ones.
      if (a > 0x7f800000) {
        // NaN: keep the top 10 payload bits; if they are all zero, set the lowest (still a NaN).
        const payload = (a >>> 13) & 0x3ff;
        h = 0x7c00 | (payload === 0 ? 1 : payload);
      } else {
        if (a < 0x7f800000) overflow++;
        h = 0x7c00;
      }
    } else if (a >= 0x38800000) {
      // Normal in float16 (|x| ≥ 2^-14): rebias the exponent (127 → 15) and drop 13 mantissa bits,
      // adding 0xfff plus the kept lowest bit first: that rounds to nearest with ties to even. A carry
      // out of the mantissa bumps the exponent, as it should (up to 0x7bff at most here).
      h = (a - 0x38000000 + 0xfff + ((a >>> 13) & 1)) >>> 13;
    } else if (a >= 0x33000000) {
      // Subnormal in float16 (2^-25 ≤ |x| < 2^-14): the value in units of 2^-24 is
      // m · 2^(e − 150 + 24) with the implicit bit in m, i.e. m >> (126 − e), rounded to nearest even.
      // A carry to 0x400 is exactly the smallest normal's encoding.
      const e = a >>> 23;
      const m = (a & 0x7fffff) | 0x800000;
      const shift = 126 - e; // 14 … 24
      h = (m + (1 << (shift - 1)) - 1 + ((m >>> shift) & 1)) >>> shift;
    } else {
      // |x| < 2^-25: below half the smallest subnormal, rounds to zero.
      h = 0;
    }
    out[i] = sign | h;
  }
  return { bits: out, overflow };
}

/**
 * float32 → bfloat16 bit patterns (the upper 16 bits of a float32), round to nearest, ties to even.
 *
 * @param values - float32 values
 * @param out - where to write (length ≥ `values.length`); default a new array
 */
export function float32ToBfloat16Bits(
  values: Float32Array,
  out = new Uint16Array(values.length),
): Float16Conversion {
  const src = float32Bits(values);
  let overflow = 0;
  for (let i = 0; i < src.length; i++) {
    const f = src[i];
    const a = f & 0x7fffffff;
    if (a > 0x7f800000) {
      // NaN: rounding could carry the payload into ±Infinity or the sign; truncate instead, as for float16.
      const top = f >>> 16;
      out[i] = (top & 0x7f) === 0 ? top | 1 : top;
    } else {
      // Adding 0x7fff plus the lowest kept bit rounds to nearest, ties to even; a carry out of the
      // mantissa goes into the exponent (the largest float32s round up to Infinity, as they should).
      const h = ((f + 0x7fff + ((f >>> 16) & 1)) >>> 16) & 0xffff;
      if (a < 0x7f800000 && (h & 0x7fff) === 0x7f80) overflow++;
      out[i] = h;
    }
  }
  return { bits: out, overflow };
}

/** float32 → float16 or bfloat16 bits (`dtype` not float32). */
export function toHalfBits(values: Float32Array, dtype: 'float16' | 'bfloat16'): Float16Conversion {
  return dtype === 'float16' ? float32ToFloat16Bits(values) : float32ToBfloat16Bits(values);
}

/**
 * float16 bit patterns → float32 values (exact: every float16 is a float32). For `encoding: "array"`
 * (the numbers a client would get by reading the float16 bytes) and for tests.
 */
export function float16BitsToFloat32(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  const dst = float32Bits(out);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const sign = (h & 0x8000) << 16;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0x1f) {
      dst[i] = (sign | 0x7f800000 | (m << 13)) >>> 0;
    } else if (e !== 0) {
      dst[i] = (sign | ((e + 112) << 23) | (m << 13)) >>> 0;
    } else {
      // ±0 or subnormal: m · 2^-24, exact in float32 (and in the float64 product).
      out[i] = (sign ? -1 : 1) * m * 2 ** -24;
    }
  }
  return out;
}

/** bfloat16 bit patterns → float32 values (exact: the bits are a float32's upper half). */
export function bfloat16BitsToFloat32(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  const dst = float32Bits(out);
  for (let i = 0; i < bits.length; i++) dst[i] = (bits[i] << 16) >>> 0;
  return out;
}

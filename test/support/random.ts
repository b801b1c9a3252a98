/** Seeded random inputs shared by the oracle tests, the reference tests and the bench. */

/** mulberry32: a small, fast, seedable PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform float32 values in `[lo, hi)`. */
export function randomMap(rand: () => number, size: number, lo = -2, hi = 2): Float32Array {
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = lo + (hi - lo) * rand();
  return out;
}

/** Integer in `[lo, hi]`. */
export function randInt(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

const f32 = new Float32Array(1);
const f32Bits = new Int32Array(f32.buffer);

/** The float32 `steps` ulps away from `fround(v)` (towards +∞ for steps > 0). */
function float32Step(v: number, steps: number): number {
  f32[0] = v;
  if (steps === 0 || f32[0] === 0) return f32[0];
  f32Bits[0] += f32[0] > 0 ? steps : -steps;
  return f32[0];
}

/**
 * One random box `(x1, y1, x2, y2)` in image pixels for a map of `H × W` cells at `stride`, drawn from
 * a mix of the awkward cases: inside, partly or wholly outside, zero-size, sub-cell, negative, huge,
 * and `.5` ties under C rounding: coordinates on half-cells, or one float32 step either side of one
 * (at scales float32 cannot hold, such as 1/7 and 0.3, whether `x·s` rounds to the tie depends on
 * computing the product in float32, as the peers do, or in float64).
 */
export function randomBox(
  rand: () => number,
  H: number,
  W: number,
  stride: number,
): [number, number, number, number] {
  const kind = randInt(rand, 0, 9);
  const imgW = W * stride;
  const imgH = H * stride;
  const coord = (extent: number): number => (rand() * 1.4 - 0.2) * extent;
  let x1: number, y1: number, x2: number, y2: number;
  switch (kind) {
    case 0: {
      // zero-size
      x1 = x2 = coord(imgW);
      y1 = y2 = coord(imgH);
      break;
    }
    case 1: {
      // sub-cell
      x1 = coord(imgW);
      y1 = coord(imgH);
      x2 = x1 + rand() * stride * 0.9;
      y2 = y1 + rand() * stride * 0.9;
      break;
    }
    case 2: {
      // .5 ties: corners on half-cells (and whole cells), half the time nudged by a float32 step
      const half = stride / 2;
      const nudge = rand() < 0.5;
      const tie = (v: number) => (nudge ? float32Step(v, randInt(rand, -1, 1)) : v);
      const hx = randInt(rand, -4, 2 * W + 4);
      const hy = randInt(rand, -4, 2 * H + 4);
      x1 = tie(hx * half);
      y1 = tie(hy * half);
      x2 = Math.max(x1, tie((hx + randInt(rand, 0, 2 * W)) * half));
      y2 = Math.max(y1, tie((hy + randInt(rand, 0, 2 * H)) * half));
      break;
    }
    case 3: {
      // wholly outside (negative side or beyond the far edge)
      const side = rand() < 0.5 ? -1 : 1;
      x1 = side < 0 ? -imgW * (1 + rand()) : imgW * (1 + rand());
      y1 = coord(imgH);
      x2 = x1 + rand() * imgW * 0.5;
      y2 = y1 + rand() * imgH * 0.5;
      break;
    }
    case 4: {
      // huge
      x1 = -1e4 * rand();
      y1 = -1e4 * rand();
      x2 = 1e4 * (1 + rand());
      y2 = 1e4 * (1 + rand());
      break;
    }
    default: {
      // ordinary, possibly crossing an edge
      x1 = coord(imgW);
      y1 = coord(imgH);
      x2 = x1 + rand() * imgW * 0.8;
      y2 = y1 + rand() * imgH * 0.8;
    }
  }
  return [x1, y1, x2, y2];
}

/** `count` canonical rows `(b, x1, y1, x2, y2)` (float32) with random batch indices `< N`. */
export function randomBoxes(
  rand: () => number,
  count: number,
  N: number,
  H: number,
  W: number,
  stride: number,
): Float32Array {
  const data = new Float32Array(count * 5);
  for (let k = 0; k < count; k++) {
    const [x1, y1, x2, y2] = randomBox(rand, H, W, stride);
    data.set([randInt(rand, 0, N - 1), x1, y1, x2, y2], 5 * k);
  }
  return data;
}

/**
 * A box `[x1, y1, x2, y2]` lying inside a `imgW`×`imgH` image, width `w[0] + rand()·w[1]` and height
 * `h[0] + rand()·h[1]` (draws: width, height, x1, y1, in that order). The benches' realistic boxes,
 * unlike {@link randomBox}'s edge cases.
 */
export function boxInside(
  rand: () => number,
  imgW: number,
  imgH: number,
  w: [min: number, span: number],
  h: [min: number, span: number],
): [number, number, number, number] {
  const bw = w[0] + rand() * w[1];
  const bh = h[0] + rand() * h[1];
  const x1 = rand() * (imgW - bw);
  const y1 = rand() * (imgH - bh);
  return [x1, y1, x1 + bw, y1 + bh];
}

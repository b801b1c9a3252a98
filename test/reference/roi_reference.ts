/**
 * Slow, obviously-correct references for the three operators: one nested loop per output value,
 * written straight from docs/semantics.md (the contract), reading NCHW through an index function.
 * Geometry in float32 (`Math.fround`) as the contract asks; values accumulate in doubles.
 * The fast kernels in src/ops are compared with these on random inputs.
 */
import type { AlignMode } from '../../src/ops/types.js';

const f = Math.fround;

export interface RefMap {
  data: Float32Array; // NCHW
  N: number;
  C: number;
  H: number;
  W: number;
}

export interface RefBox {
  b: number;
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

export interface RefAlignParams {
  s: number;
  PH: number;
  PW: number;
  samplingRatio: number;
  aligned: boolean;
  mode: AlignMode;
}

/** C round: half away from zero. */
export function refRound(v: number): number {
  const r = Math.floor(Math.abs(v) + 0.5);
  return v < 0 ? -r : r;
}

/**
 * The Caffe2 bilinear sample of plane (n, c) at (y, x), with the 4 weighted taps for onnx_max: off
 * the map (outside `[-1, size]`, or NaN) → 0; weights rounded to float32, taps summed in doubles.
 */
export function sampleTaps(
  X: RefMap,
  n: number,
  c: number,
  yIn: number,
  xIn: number,
): { value: number; taps: number[] } {
  const { H, W } = X;
  if (yIn < -1 || yIn > H || xIn < -1 || xIn > W || Number.isNaN(yIn) || Number.isNaN(xIn)) {
    return { value: 0, taps: [0, 0, 0, 0] };
  }
  let y = Math.max(yIn, 0);
  let x = Math.max(xIn, 0);
  let y0 = Math.floor(y);
  let x0 = Math.floor(x);
  let y1: number, x1: number;
  if (y0 >= H - 1) {
    y0 = y1 = H - 1;
    y = y0;
  } else y1 = y0 + 1;
  if (x0 >= W - 1) {
    x0 = x1 = W - 1;
    x = x0;
  } else x1 = x0 + 1;
  const ly = f(y - y0);
  const lx = f(x - x0);
  const hy = f(1 - ly);
  const hx = f(1 - lx);
  const P = (yy: number, xx: number): number => X.data[((n * X.C + c) * H + yy) * W + xx];
  const taps = [
    f(hy * hx) * P(y0, x0),
    f(hy * lx) * P(y0, x1),
    f(ly * hx) * P(y1, x0),
    f(ly * lx) * P(y1, x1),
  ];
  return { value: taps[0] + taps[1] + taps[2] + taps[3], taps };
}

/** RoI Align per the contract. Returns NCHW `[K, C, PH, PW]`. */
export function refRoiAlign(X: RefMap, boxes: RefBox[], p: RefAlignParams): Float32Array {
  const { C } = X;
  const { PH, PW } = p;
  const s = f(p.s);
  const out = new Float32Array(boxes.length * C * PH * PW);
  const off = p.aligned ? 0.5 : 0;
  boxes.forEach((box, k) => {
    const sx = f(f(f(box.x1) * s) - off);
    const sy = f(f(f(box.y1) * s) - off);
    const ex = f(f(f(box.x2) * s) - off);
    const ey = f(f(f(box.y2) * s) - off);
    let rw = f(ex - sx);
    let rh = f(ey - sy);
    if (!p.aligned) {
      rw = Math.max(rw, 1);
      rh = Math.max(rh, 1);
    }
    const bw = f(rw / PW);
    const bh = f(rh / PH);
    const gh = p.samplingRatio > 0 ? p.samplingRatio : Math.ceil(bh);
    const gw = p.samplingRatio > 0 ? p.samplingRatio : Math.ceil(bw);
    for (let c = 0; c < C; c++) {
      for (let ph = 0; ph < PH; ph++) {
        for (let pw = 0; pw < PW; pw++) {
          let sum = 0;
          let best = -Infinity;
          for (let iy = 0; iy < gh; iy++) {
            const y = f(f(sy + f(ph * bh)) + f(f((iy + 0.5) * bh) / gh));
            for (let ix = 0; ix < gw; ix++) {
              const x = f(f(sx + f(pw * bw)) + f(f((ix + 0.5) * bw) / gw));
              const { value, taps } = sampleTaps(X, box.b, c, y, x);
              sum += value;
              const v = p.mode === 'onnx_max' ? Math.max(...taps) : value;
              best = Math.max(best, v);
            }
          }
          const empty = gh * gw === 0;
          const y = p.mode === 'avg' ? sum / Math.max(gh * gw, 1) : empty ? 0 : best;
          out[((k * C + c) * PH + ph) * PW + pw] = y;
        }
      }
    }
  });
  return out;
}

/** RoI Pool per the contract. Returns NCHW `[K, C, PH, PW]`. */
export function refRoiPool(
  X: RefMap,
  boxes: RefBox[],
  p: { s: number; PH: number; PW: number },
): Float32Array {
  const { C, H, W } = X;
  const { PH, PW } = p;
  const s = f(p.s);
  const out = new Float32Array(boxes.length * C * PH * PW);
  boxes.forEach((box, k) => {
    const sx = refRound(f(f(box.x1) * s));
    const sy = refRound(f(f(box.y1) * s));
    const ex = refRound(f(f(box.x2) * s));
    const ey = refRound(f(f(box.y2) * s));
    const rw = Math.max(ex - sx + 1, 1);
    const rh = Math.max(ey - sy + 1, 1);
    const bw = f(rw / PW);
    const bh = f(rh / PH);
    for (let c = 0; c < C; c++) {
      for (let ph = 0; ph < PH; ph++) {
        for (let pw = 0; pw < PW; pw++) {
          const r0 = Math.min(Math.max(Math.floor(f(ph * bh)) + sy, 0), H);
          const r1 = Math.min(Math.max(Math.ceil(f((ph + 1) * bh)) + sy, 0), H);
          const c0 = Math.min(Math.max(Math.floor(f(pw * bw)) + sx, 0), W);
          const c1 = Math.min(Math.max(Math.ceil(f((pw + 1) * bw)) + sx, 0), W);
          let best = -Infinity;
          for (let y = r0; y < r1; y++) {
            for (let x = c0; x < c1; x++) {
              best = Math.max(best, X.data[((box.b * C + c) * H + y) * W + x]);
            }
          }
          out[((k * C + c) * PH + ph) * PW + pw] = best === -Infinity ? 0 : best;
        }
      }
    }
  });
  return out;
}

/** RoI Warp per the contract: snap to cells (C round, at least one cell), then RoI Align at scale 1. */
export function refRoiWarp(X: RefMap, boxes: RefBox[], p: RefAlignParams): Float32Array {
  const s = f(p.s);
  const snapped = boxes.map((box) => {
    const qx1 = refRound(f(f(box.x1) * s));
    const qy1 = refRound(f(f(box.y1) * s));
    let qx2 = refRound(f(f(box.x2) * s));
    let qy2 = refRound(f(f(box.y2) * s));
    if (qx2 <= qx1) qx2 = qx1 + 1;
    if (qy2 <= qy1) qy2 = qy1 + 1;
    return { b: box.b, x1: qx1, y1: qy1, x2: qx2, y2: qy2 };
  });
  // The integer cell box at scale 1 (not q/s at scale s: that round trip is inexact in float32).
  return refRoiAlign(X, snapped, { ...p, s: 1 });
}

/** Canonical `[K, 5]` float32 rows → reference boxes. */
export function refBoxes(data: Float32Array, count: number): RefBox[] {
  return Array.from({ length: count }, (_, k) => ({
    b: data[5 * k],
    x1: data[5 * k + 1],
    y1: data[5 * k + 2],
    x2: data[5 * k + 3],
    y2: data[5 * k + 4],
  }));
}

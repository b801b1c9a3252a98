/**
 * Slow, obviously-correct references for position-sensitive RoI Align / Pool: one nested loop per
 * output value, written straight from docs/semantics.md ("Position-sensitive RoI Align / Pool"),
 * reading NCHW through an index function. Geometry in float32 (`Math.fround`) as the contract asks;
 * values accumulate in doubles (so the fast kernels, which sum in float32 like torchvision, agree to
 * float tolerance, and choose exactly the same samples and cells).
 */
import { refRound, type RefBox, type RefMap } from './roi_reference.js';

const f = Math.fround;

/** Value of plane (n, c) at cell (y, x). */
const at = (X: RefMap, n: number, c: number, y: number, x: number): number =>
  X.data[((n * X.C + c) * X.H + y) * X.W + x];

/** The contract's bilinear `sample(P, y, x)` (Caffe2 rule) on plane (n, c). */
function sample(X: RefMap, n: number, c: number, yIn: number, xIn: number): number {
  const { H, W } = X;
  if (Number.isNaN(yIn) || Number.isNaN(xIn) || yIn < -1 || yIn > H || xIn < -1 || xIn > W) return 0;
  let y = Math.max(yIn, 0);
  let x = Math.max(xIn, 0);
  let y0 = Math.floor(y);
  let x0 = Math.floor(x);
  let y1 = y0 + 1;
  let x1 = x0 + 1;
  if (y0 >= H - 1) {
    y0 = y1 = H - 1;
    y = y0;
  }
  if (x0 >= W - 1) {
    x0 = x1 = W - 1;
    x = x0;
  }
  const ly = y - y0;
  const lx = x - x0;
  const hy = 1 - ly;
  const hx = 1 - lx;
  return (
    hy * hx * at(X, n, c, y0, x0) +
    hy * lx * at(X, n, c, y0, x1) +
    ly * hx * at(X, n, c, y1, x0) +
    ly * lx * at(X, n, c, y1, x1)
  );
}

/** Input channel of output channel `c`, bin `(ph, pw)`: `(c·PH + ph)·PW + pw`. */
const psChannel = (c: number, ph: number, pw: number, PH: number, PW: number): number =>
  (c * PH + ph) * PW + pw;

/** ps_align per the contract (half-pixel offset always on; empty grid → 0). NCHW `[K, C/(PH·PW), PH, PW]`. */
export function refPsRoiAlign(
  X: RefMap,
  boxes: RefBox[],
  p: { s: number; PH: number; PW: number; samplingRatio: number },
): Float32Array {
  const { PH, PW } = p;
  const Cout = X.C / (PH * PW);
  const s = f(p.s);
  const out = new Float32Array(boxes.length * Cout * PH * PW);
  boxes.forEach((box, k) => {
    const sx = f(f(f(box.x1) * s) - 0.5);
    const sy = f(f(f(box.y1) * s) - 0.5);
    const rw = f(f(f(f(box.x2) * s) - 0.5) - sx);
    const rh = f(f(f(f(box.y2) * s) - 0.5) - sy);
    const bw = f(rw / PW);
    const bh = f(rh / PH);
    const gh = p.samplingRatio > 0 ? p.samplingRatio : Math.ceil(bh);
    const gw = p.samplingRatio > 0 ? p.samplingRatio : Math.ceil(bw);
    for (let c = 0; c < Cout; c++) {
      for (let ph = 0; ph < PH; ph++) {
        for (let pw = 0; pw < PW; pw++) {
          const cin = psChannel(c, ph, pw, PH, PW);
          let sum = 0;
          for (let iy = 0; iy < gh; iy++) {
            const y = f(f(sy + f(ph * bh)) + f(f((iy + 0.5) * bh) / gh));
            for (let ix = 0; ix < gw; ix++) {
              const x = f(f(sx + f(pw * bw)) + f(f((ix + 0.5) * bw) / gw));
              sum += sample(X, box.b, cin, y, x);
            }
          }
          out[((k * Cout + c) * PH + ph) * PW + pw] = gh * gw === 0 ? 0 : sum / (gh * gw);
        }
      }
    }
  });
  return out;
}

/** ps_pool per the contract (C round, no +1, clip to [0, H−1] × [0, W−1], mean; empty → 0). */
export function refPsRoiPool(
  X: RefMap,
  boxes: RefBox[],
  p: { s: number; PH: number; PW: number },
): Float32Array {
  const { H, W } = X;
  const { PH, PW } = p;
  const Cout = X.C / (PH * PW);
  const s = f(p.s);
  const out = new Float32Array(boxes.length * Cout * PH * PW);
  const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
  boxes.forEach((box, k) => {
    const sx = refRound(f(f(box.x1) * s));
    const sy = refRound(f(f(box.y1) * s));
    const ex = refRound(f(f(box.x2) * s));
    const ey = refRound(f(f(box.y2) * s));
    const bw = f(Math.max(ex - sx, 1) / PW);
    const bh = f(Math.max(ey - sy, 1) / PH);
    for (let c = 0; c < Cout; c++) {
      for (let ph = 0; ph < PH; ph++) {
        for (let pw = 0; pw < PW; pw++) {
          const cin = psChannel(c, ph, pw, PH, PW);
          const r0 = clip(Math.floor(f(ph * bh)) + sy, H - 1);
          const r1 = clip(Math.ceil(f((ph + 1) * bh)) + sy, H - 1);
          const c0 = clip(Math.floor(f(pw * bw)) + sx, W - 1);
          const c1 = clip(Math.ceil(f((pw + 1) * bw)) + sx, W - 1);
          let sum = 0;
          let n = 0;
          for (let y = r0; y < r1; y++) {
            for (let x = c0; x < c1; x++, n++) sum += at(X, box.b, cin, y, x);
          }
          out[((k * Cout + c) * PH + ph) * PW + pw] = n === 0 ? 0 : sum / n;
        }
      }
    }
  });
  return out;
}

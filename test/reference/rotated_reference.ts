/**
 * Slow, obviously-correct reference for Rotated RoI Align: one nested loop per output value, written
 * straight from detectron2's ROIAlignRotated_cpu.cpp (and mmcv's roi_align_rotated.cpp for
 * `aligned = false` / `clockwise`), reading NCHW through an index function. Geometry in float32
 * (`Math.fround`, the C++ order of operations with T = float); values accumulate in doubles.
 * The fast kernel in src/ops/rotated_roi_align.ts is compared with this on random inputs.
 */
import type { RefMap } from './roi_reference.js';

const f = Math.fround;

export interface RefRotatedBox {
  b: number;
  cx: number;
  cy: number;
  w: number;
  h: number;
  /** Degrees, counter-clockwise as seen in the image. */
  angle: number;
}

export interface RefRotatedParams {
  s: number;
  PH: number;
  PW: number;
  samplingRatio: number;
  aligned: boolean;
  clockwise: boolean;
}

/** Rows of a `[K, 6]` float32 array as reference boxes. */
export function refRotatedBoxes(data: Float32Array, count: number): RefRotatedBox[] {
  return Array.from({ length: count }, (_, k) => {
    const [b, cx, cy, w, h, angle] = data.subarray(6 * k, 6 * k + 6);
    return { b, cx, cy, w, h, angle };
  });
}

/** The Caffe2 / detectron2 bilinear sample of plane (n, c) at (y, x). */
function bilinear(X: RefMap, n: number, c: number, yIn: number, xIn: number): number {
  const { H, W } = X;
  if (yIn < -1 || yIn > H || xIn < -1 || xIn > W) return 0;
  let y = yIn < 0 ? 0 : yIn;
  let x = xIn < 0 ? 0 : xIn;
  let y0 = Math.trunc(y);
  let x0 = Math.trunc(x);
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
  return f(hy * hx) * P(y0, x0) + f(hy * lx) * P(y0, x1) + f(ly * hx) * P(y1, x0) + f(ly * lx) * P(y1, x1);
}

/** Rotated RoI Align per detectron2's formula. Returns NCHW `[K, C, PH, PW]`. */
export function refRotatedRoiAlign(X: RefMap, boxes: RefRotatedBox[], p: RefRotatedParams): Float32Array {
  const { C } = X;
  const { PH, PW } = p;
  const s = f(p.s);
  const out = new Float32Array(boxes.length * C * PH * PW);
  const offset = p.aligned ? 0.5 : 0;
  boxes.forEach((box, k) => {
    const cx = f(f(box.cx * s) - offset);
    const cy = f(f(box.cy * s) - offset);
    let rw = f(box.w * s);
    let rh = f(box.h * s);
    if (!p.aligned) {
      rw = Math.max(rw, 1);
      rh = Math.max(rh, 1);
    }
    let theta = f((box.angle * Math.PI) / 180);
    if (p.clockwise) theta = -theta;
    const cosT = f(Math.cos(theta));
    const sinT = f(Math.sin(theta));
    const bh = f(rh / PH);
    const bw = f(rw / PW);
    const gh = p.samplingRatio > 0 ? p.samplingRatio : Math.ceil(bh);
    const gw = p.samplingRatio > 0 ? p.samplingRatio : Math.ceil(bw);
    const count = Math.max(gh * gw, 1);
    const startH = f(-rh / 2);
    const startW = f(-rw / 2);
    for (let c = 0; c < C; c++) {
      for (let ph = 0; ph < PH; ph++) {
        for (let pw = 0; pw < PW; pw++) {
          let sum = 0;
          for (let iy = 0; iy < gh; iy++) {
            const yy = f(f(startH + f(ph * bh)) + f(f((iy + 0.5) * bh) / gh));
            for (let ix = 0; ix < gw; ix++) {
              const xx = f(f(startW + f(pw * bw)) + f(f((ix + 0.5) * bw) / gw));
              const y = f(f(f(yy * cosT) - f(xx * sinT)) + cy);
              const x = f(f(f(yy * sinT) + f(xx * cosT)) + cx);
              sum += bilinear(X, box.b, c, y, x);
            }
          }
          out[((k * C + c) * PH + ph) * PW + pw] = sum / count;
        }
      }
    }
  });
  return out;
}

/**
 * Slow, obviously-correct reference for Rotated RoI Align: one nested loop per output value, written
 * straight from detectron2's ROIAlignRotated_cpu.cpp (and mmcv's roi_align_rotated.cpp for
 * `aligned = false` / `clockwise`), reading NCHW through an index function. Geometry in float32
 * (`Math.fround`, the C++ order of operations with T = float); values accumulate in doubles.
 * The fast kernel in src/ops/rotated_roi_align.ts is compared with this on random inputs.
 */
import { sampleTaps, type RefMap } from './roi_reference.js';

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
              sum += sampleTaps(X, box.b, c, y, x).value;
            }
          }
          out[((k * C + c) * PH + ph) * PW + pw] = sum / count;
        }
      }
    }
  });
  return out;
}

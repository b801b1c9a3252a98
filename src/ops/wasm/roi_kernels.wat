;; The channel loops of roiserve's RoI kernels, hand-written with 128-bit SIMD (f32x4).
;;
;; The JS side (src/ops/roi_align.ts, roi_pool.ts) does the argument checks and the per-RoI float32
;; geometry, and writes small per-RoI tables into this module's memory; these functions only run the
;; loops over channels. Everything is addressed in bytes.
;;
;; Memory (laid out by src/ops/wasm/workspace.ts):
;; - the feature map in NHWC with the channel count padded to Cp = 4 * ceil(C / 4) (the padding lanes
;;   may be read, never stored), so one cell is Cp * 4 bytes and 16-byte loads never cross a cell;
;; - a block of zeros at address 0 (Cp floats): taps of samples that fall off the map point there;
;; - the per-RoI tables, a scratch block for one RoI's result, the output of a chunk of RoIs, and a
;;   staging area where an NCHW map is copied before `transpose` turns it into NHWC.
;;
;; Output: channels contiguous, value (bin b, channel c) at out + b * binStride + 4 * c (NHWC; for an
;; NCHW result the caller runs a RoI into a scratch block and `transpose`s it into place).
;;
;; Channels run in blocks of 16 (four f32x4 accumulators), then blocks of 4 (one accumulator); the
;; last block of 4 may hold fewer real channels, and only those are stored.
;;
;; Max uses f32x4.pmax(a, b) = (a < b) ? b : a: the C++ peers' `std::max` / `if (v > m) m = v`, so
;; ties (+0 / -0) keep the earlier value exactly as ONNX Runtime does.
(module
  (memory (export "memory") 1)

  ;; Stores lanes 0 .. n-1 of $v (n >= 1) at $p: the last, partial block of channels.
  (func $store4 (param $p i32) (param $v v128) (param $n i32)
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then
        (v128.store align=4 (local.get $p) (local.get $v))
        (return)))
    (f32.store offset=0 (local.get $p) (f32x4.extract_lane 0 (local.get $v)))
    (if (i32.lt_u (local.get $n) (i32.const 2)) (then (return)))
    (f32.store offset=4 (local.get $p) (f32x4.extract_lane 1 (local.get $v)))
    (if (i32.lt_u (local.get $n) (i32.const 3)) (then (return)))
    (f32.store offset=8 (local.get $p) (f32x4.extract_lane 2 (local.get $v))))

  ;; Writes 0 to channels 0 .. C-1 of one bin.
  (func $store_zeros (param $o i32) (param $C i32)
    (local $c i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $c) (local.get $C)))
        (call $store4
          (i32.add (local.get $o) (i32.shl (local.get $c) (i32.const 2)))
          (v128.const f32x4 0 0 0 0)
          (i32.sub (local.get $C) (local.get $c)))
        (local.set $c (i32.add (local.get $c) (i32.const 4)))
        (br $next))))

  ;; RoI Align `avg`: out[b][c] = sum over taps t of bin b of w[t] * X[off[t] + c].
  ;; $first: nBins + 1 i32 tap indices (bin b owns taps first[b] .. first[b+1]-1);
  ;; $taps: 8 bytes per tap, i32 byte address of the cell's channel 0, f32 weight (already / count).
  ;; A bin without taps gives 0.
  (func (export "weightedSum")
    (param $nBins i32) (param $first i32) (param $taps i32) (param $out i32)
    (param $binStride i32) (param $C i32)
    (local $b i32) (local $o i32) (local $c i32) (local $cb i32) (local $C16 i32)
    (local $p0 i32) (local $pEnd i32) (local $p i32) (local $a i32) (local $w v128)
    (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128)
    (local.set $C16 (i32.and (local.get $C) (i32.const -16)))
    (block $bins_done
      (loop $bins
        (br_if $bins_done (i32.ge_u (local.get $b) (local.get $nBins)))
        (local.set $p0 (i32.add (local.get $taps)
          (i32.shl (i32.load (i32.add (local.get $first) (i32.shl (local.get $b) (i32.const 2)))) (i32.const 3))))
        (local.set $pEnd (i32.add (local.get $taps)
          (i32.shl (i32.load offset=4 (i32.add (local.get $first) (i32.shl (local.get $b) (i32.const 2)))) (i32.const 3))))
        (local.set $o (i32.add (local.get $out) (i32.mul (local.get $b) (local.get $binStride))))
        (local.set $c (i32.const 0))
        (block $wide_done
          (loop $wide
            (br_if $wide_done (i32.ge_u (local.get $c) (local.get $C16)))
            (local.set $cb (i32.shl (local.get $c) (i32.const 2)))
            (local.set $s0 (v128.const f32x4 0 0 0 0))
            (local.set $s1 (v128.const f32x4 0 0 0 0))
            (local.set $s2 (v128.const f32x4 0 0 0 0))
            (local.set $s3 (v128.const f32x4 0 0 0 0))
            (local.set $p (local.get $p0))
            ;; a bin without taps (every sample off the map) keeps the zeros
            (if (i32.lt_u (local.get $p) (local.get $pEnd))
              (then
                (loop $tap
                  (local.set $a (i32.add (i32.load (local.get $p)) (local.get $cb)))
                  (local.set $w (f32x4.splat (f32.load offset=4 (local.get $p))))
                  (local.set $s0 (f32x4.add (local.get $s0) (f32x4.mul (local.get $w) (v128.load offset=0 (local.get $a)))))
                  (local.set $s1 (f32x4.add (local.get $s1) (f32x4.mul (local.get $w) (v128.load offset=16 (local.get $a)))))
                  (local.set $s2 (f32x4.add (local.get $s2) (f32x4.mul (local.get $w) (v128.load offset=32 (local.get $a)))))
                  (local.set $s3 (f32x4.add (local.get $s3) (f32x4.mul (local.get $w) (v128.load offset=48 (local.get $a)))))
                  (local.set $p (i32.add (local.get $p) (i32.const 8)))
                  (br_if $tap (i32.lt_u (local.get $p) (local.get $pEnd))))))
            (local.set $p (i32.add (local.get $o) (i32.shl (local.get $c) (i32.const 2))))
            (v128.store offset=0 align=4 (local.get $p) (local.get $s0))
            (v128.store offset=16 align=4 (local.get $p) (local.get $s1))
            (v128.store offset=32 align=4 (local.get $p) (local.get $s2))
            (v128.store offset=48 align=4 (local.get $p) (local.get $s3))
            (local.set $c (i32.add (local.get $c) (i32.const 16)))
            (br $wide)))
        (block $narrow_done
          (loop $narrow
            (br_if $narrow_done (i32.ge_u (local.get $c) (local.get $C)))
            (local.set $cb (i32.shl (local.get $c) (i32.const 2)))
            (local.set $s0 (v128.const f32x4 0 0 0 0))
            (local.set $p (local.get $p0))
            (block $taps_done
              (loop $tap
                (br_if $taps_done (i32.ge_u (local.get $p) (local.get $pEnd)))
                (local.set $a (i32.add (i32.load (local.get $p)) (local.get $cb)))
                (local.set $w (f32x4.splat (f32.load offset=4 (local.get $p))))
                (local.set $s0 (f32x4.add (local.get $s0) (f32x4.mul (local.get $w) (v128.load (local.get $a)))))
                (local.set $p (i32.add (local.get $p) (i32.const 8)))
                (br $tap)))
            (call $store4 (i32.add (local.get $o) (i32.shl (local.get $c) (i32.const 2)))
              (local.get $s0) (i32.sub (local.get $C) (local.get $c)))
            (local.set $c (i32.add (local.get $c) (i32.const 4)))
            (br $narrow)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $bins))))

  ;; RoI Align `max` (interpolate each sample, then max) when $onnx = 0, or `onnx_max` (the largest
  ;; single weighted tap of each sample, then max: ONNX Runtime's rule) when $onnx = 1.
  ;; $samples: 32 bytes per sample, bin b owns samples b*nSamp .. (b+1)*nSamp - 1; per sample four i32
  ;; byte addresses (cells lo-lo, lo-hi, hi-lo, hi-hi) then their four f32 weights. A sample off the map
  ;; has weights 0 and addresses of the zero block (value +0). nSamp = 0 (empty grid) gives 0.
  ;; Interpolation sums in ONNX Runtime's order: ((w1*v1 + w2*v2) + w3*v3) + w4*v4.
  (func (export "sampleMax")
    (param $nBins i32) (param $nSamp i32) (param $samples i32) (param $out i32)
    (param $binStride i32) (param $C i32) (param $onnx i32)
    (local $b i32) (local $o i32) (local $c i32) (local $cb i32) (local $C16 i32)
    (local $p0 i32) (local $pEnd i32) (local $p i32)
    (local $a1 i32) (local $a2 i32) (local $a3 i32) (local $a4 i32)
    (local $w1 v128) (local $w2 v128) (local $w3 v128) (local $w4 v128)
    (local $m0 v128) (local $m1 v128) (local $m2 v128) (local $m3 v128)
    (local.set $C16 (i32.and (local.get $C) (i32.const -16)))
    (block $bins_done
      (loop $bins
        (br_if $bins_done (i32.ge_u (local.get $b) (local.get $nBins)))
        (local.set $p0 (i32.add (local.get $samples)
          (i32.shl (i32.mul (local.get $b) (local.get $nSamp)) (i32.const 5))))
        (local.set $pEnd (i32.add (local.get $p0) (i32.shl (local.get $nSamp) (i32.const 5))))
        (local.set $o (i32.add (local.get $out) (i32.mul (local.get $b) (local.get $binStride))))
        (local.set $c (i32.const 0))
        (if (i32.eqz (local.get $nSamp))
          (then (call $store_zeros (local.get $o) (local.get $C)))
          (else
            (block $wide_done
              (loop $wide
                (br_if $wide_done (i32.ge_u (local.get $c) (local.get $C16)))
                (local.set $cb (i32.shl (local.get $c) (i32.const 2)))
                (local.set $m0 (v128.const f32x4 -inf -inf -inf -inf))
                (local.set $m1 (v128.const f32x4 -inf -inf -inf -inf))
                (local.set $m2 (v128.const f32x4 -inf -inf -inf -inf))
                (local.set $m3 (v128.const f32x4 -inf -inf -inf -inf))
                (local.set $p (local.get $p0))
                (if (local.get $onnx)
                  (then
                    (loop $sample
                      (local.set $a1 (i32.add (i32.load offset=0 (local.get $p)) (local.get $cb)))
                      (local.set $a2 (i32.add (i32.load offset=4 (local.get $p)) (local.get $cb)))
                      (local.set $a3 (i32.add (i32.load offset=8 (local.get $p)) (local.get $cb)))
                      (local.set $a4 (i32.add (i32.load offset=12 (local.get $p)) (local.get $cb)))
                      (local.set $w1 (f32x4.splat (f32.load offset=16 (local.get $p))))
                      (local.set $w2 (f32x4.splat (f32.load offset=20 (local.get $p))))
                      (local.set $w3 (f32x4.splat (f32.load offset=24 (local.get $p))))
                      (local.set $w4 (f32x4.splat (f32.load offset=28 (local.get $p))))
                      (local.set $m0 (f32x4.pmax (local.get $m0)
                        (f32x4.pmax (f32x4.pmax (f32x4.pmax
                          (f32x4.mul (local.get $w1) (v128.load offset=0 (local.get $a1)))
                          (f32x4.mul (local.get $w2) (v128.load offset=0 (local.get $a2))))
                          (f32x4.mul (local.get $w3) (v128.load offset=0 (local.get $a3))))
                          (f32x4.mul (local.get $w4) (v128.load offset=0 (local.get $a4))))))
                      (local.set $m1 (f32x4.pmax (local.get $m1)
                        (f32x4.pmax (f32x4.pmax (f32x4.pmax
                          (f32x4.mul (local.get $w1) (v128.load offset=16 (local.get $a1)))
                          (f32x4.mul (local.get $w2) (v128.load offset=16 (local.get $a2))))
                          (f32x4.mul (local.get $w3) (v128.load offset=16 (local.get $a3))))
                          (f32x4.mul (local.get $w4) (v128.load offset=16 (local.get $a4))))))
                      (local.set $m2 (f32x4.pmax (local.get $m2)
                        (f32x4.pmax (f32x4.pmax (f32x4.pmax
                          (f32x4.mul (local.get $w1) (v128.load offset=32 (local.get $a1)))
                          (f32x4.mul (local.get $w2) (v128.load offset=32 (local.get $a2))))
                          (f32x4.mul (local.get $w3) (v128.load offset=32 (local.get $a3))))
                          (f32x4.mul (local.get $w4) (v128.load offset=32 (local.get $a4))))))
                      (local.set $m3 (f32x4.pmax (local.get $m3)
                        (f32x4.pmax (f32x4.pmax (f32x4.pmax
                          (f32x4.mul (local.get $w1) (v128.load offset=48 (local.get $a1)))
                          (f32x4.mul (local.get $w2) (v128.load offset=48 (local.get $a2))))
                          (f32x4.mul (local.get $w3) (v128.load offset=48 (local.get $a3))))
                          (f32x4.mul (local.get $w4) (v128.load offset=48 (local.get $a4))))))
                      (local.set $p (i32.add (local.get $p) (i32.const 32)))
                      (br_if $sample (i32.lt_u (local.get $p) (local.get $pEnd)))))
                  (else
                    (loop $sample
                      (local.set $a1 (i32.add (i32.load offset=0 (local.get $p)) (local.get $cb)))
                      (local.set $a2 (i32.add (i32.load offset=4 (local.get $p)) (local.get $cb)))
                      (local.set $a3 (i32.add (i32.load offset=8 (local.get $p)) (local.get $cb)))
                      (local.set $a4 (i32.add (i32.load offset=12 (local.get $p)) (local.get $cb)))
                      (local.set $w1 (f32x4.splat (f32.load offset=16 (local.get $p))))
                      (local.set $w2 (f32x4.splat (f32.load offset=20 (local.get $p))))
                      (local.set $w3 (f32x4.splat (f32.load offset=24 (local.get $p))))
                      (local.set $w4 (f32x4.splat (f32.load offset=28 (local.get $p))))
                      (local.set $m0 (f32x4.pmax (local.get $m0)
                        (f32x4.add (f32x4.add (f32x4.add
                          (f32x4.mul (local.get $w1) (v128.load offset=0 (local.get $a1)))
                          (f32x4.mul (local.get $w2) (v128.load offset=0 (local.get $a2))))
                          (f32x4.mul (local.get $w3) (v128.load offset=0 (local.get $a3))))
                          (f32x4.mul (local.get $w4) (v128.load offset=0 (local.get $a4))))))
                      (local.set $m1 (f32x4.pmax (local.get $m1)
                        (f32x4.add (f32x4.add (f32x4.add
                          (f32x4.mul (local.get $w1) (v128.load offset=16 (local.get $a1)))
                          (f32x4.mul (local.get $w2) (v128.load offset=16 (local.get $a2))))
                          (f32x4.mul (local.get $w3) (v128.load offset=16 (local.get $a3))))
                          (f32x4.mul (local.get $w4) (v128.load offset=16 (local.get $a4))))))
                      (local.set $m2 (f32x4.pmax (local.get $m2)
                        (f32x4.add (f32x4.add (f32x4.add
                          (f32x4.mul (local.get $w1) (v128.load offset=32 (local.get $a1)))
                          (f32x4.mul (local.get $w2) (v128.load offset=32 (local.get $a2))))
                          (f32x4.mul (local.get $w3) (v128.load offset=32 (local.get $a3))))
                          (f32x4.mul (local.get $w4) (v128.load offset=32 (local.get $a4))))))
                      (local.set $m3 (f32x4.pmax (local.get $m3)
                        (f32x4.add (f32x4.add (f32x4.add
                          (f32x4.mul (local.get $w1) (v128.load offset=48 (local.get $a1)))
                          (f32x4.mul (local.get $w2) (v128.load offset=48 (local.get $a2))))
                          (f32x4.mul (local.get $w3) (v128.load offset=48 (local.get $a3))))
                          (f32x4.mul (local.get $w4) (v128.load offset=48 (local.get $a4))))))
                      (local.set $p (i32.add (local.get $p) (i32.const 32)))
                      (br_if $sample (i32.lt_u (local.get $p) (local.get $pEnd))))))
                (local.set $p (i32.add (local.get $o) (i32.shl (local.get $c) (i32.const 2))))
                (v128.store offset=0 align=4 (local.get $p) (local.get $m0))
                (v128.store offset=16 align=4 (local.get $p) (local.get $m1))
                (v128.store offset=32 align=4 (local.get $p) (local.get $m2))
                (v128.store offset=48 align=4 (local.get $p) (local.get $m3))
                (local.set $c (i32.add (local.get $c) (i32.const 16)))
                (br $wide)))
            (block $narrow_done
              (loop $narrow
                (br_if $narrow_done (i32.ge_u (local.get $c) (local.get $C)))
                (local.set $cb (i32.shl (local.get $c) (i32.const 2)))
                (local.set $m0 (v128.const f32x4 -inf -inf -inf -inf))
                (local.set $p (local.get $p0))
                (loop $sample
                  (local.set $a1 (i32.add (i32.load offset=0 (local.get $p)) (local.get $cb)))
                  (local.set $a2 (i32.add (i32.load offset=4 (local.get $p)) (local.get $cb)))
                  (local.set $a3 (i32.add (i32.load offset=8 (local.get $p)) (local.get $cb)))
                  (local.set $a4 (i32.add (i32.load offset=12 (local.get $p)) (local.get $cb)))
                  (local.set $w1 (f32x4.mul (f32x4.splat (f32.load offset=16 (local.get $p))) (v128.load (local.get $a1))))
                  (local.set $w2 (f32x4.mul (f32x4.splat (f32.load offset=20 (local.get $p))) (v128.load (local.get $a2))))
                  (local.set $w3 (f32x4.mul (f32x4.splat (f32.load offset=24 (local.get $p))) (v128.load (local.get $a3))))
                  (local.set $w4 (f32x4.mul (f32x4.splat (f32.load offset=28 (local.get $p))) (v128.load (local.get $a4))))
                  (local.set $m0 (f32x4.pmax (local.get $m0)
                    (if (result v128) (local.get $onnx)
                      (then (f32x4.pmax (f32x4.pmax (f32x4.pmax (local.get $w1) (local.get $w2)) (local.get $w3)) (local.get $w4)))
                      (else (f32x4.add (f32x4.add (f32x4.add (local.get $w1) (local.get $w2)) (local.get $w3)) (local.get $w4))))))
                  (local.set $p (i32.add (local.get $p) (i32.const 32)))
                  (br_if $sample (i32.lt_u (local.get $p) (local.get $pEnd))))
                (call $store4 (i32.add (local.get $o) (i32.shl (local.get $c) (i32.const 2)))
                  (local.get $m0) (i32.sub (local.get $C) (local.get $c)))
                (local.set $c (i32.add (local.get $c) (i32.const 4)))
                (br $narrow)))))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $bins))))

  ;; RoI Pool: out[b][c] = max over the bin's rectangle of cells of X[cell + c]; an empty bin gives 0.
  ;; $rects: 12 bytes per bin, i32 byte address of the top-left cell's channel 0, i32 rows, i32 columns.
  ;; $rowStride / $cellStride: bytes between rows / cells of the map.
  (func (export "rectMax")
    (param $nBins i32) (param $rects i32) (param $rowStride i32) (param $cellStride i32) (param $out i32)
    (param $binStride i32) (param $C i32)
    (local $b i32) (local $o i32) (local $c i32) (local $C16 i32) (local $r i32)
    (local $base i32) (local $rowBytes i32) (local $colBytes i32)
    (local $row i32) (local $rowEnd i32) (local $p i32) (local $pEnd i32)
    (local $m0 v128) (local $m1 v128) (local $m2 v128) (local $m3 v128)
    (local.set $C16 (i32.and (local.get $C) (i32.const -16)))
    (block $bins_done
      (loop $bins
        (br_if $bins_done (i32.ge_u (local.get $b) (local.get $nBins)))
        (local.set $r (i32.add (local.get $rects) (i32.mul (local.get $b) (i32.const 12))))
        (local.set $base (i32.load offset=0 (local.get $r)))
        (local.set $rowBytes (i32.mul (i32.load offset=4 (local.get $r)) (local.get $rowStride)))
        (local.set $colBytes (i32.mul (i32.load offset=8 (local.get $r)) (local.get $cellStride)))
        (local.set $o (i32.add (local.get $out) (i32.mul (local.get $b) (local.get $binStride))))
        (local.set $c (i32.const 0))
        (if (i32.or (i32.eqz (local.get $rowBytes)) (i32.eqz (local.get $colBytes)))
          (then (call $store_zeros (local.get $o) (local.get $C)))
          (else
            (block $wide_done
              (loop $wide
                (br_if $wide_done (i32.ge_u (local.get $c) (local.get $C16)))
                (local.set $m0 (v128.const f32x4 -inf -inf -inf -inf))
                (local.set $m1 (v128.const f32x4 -inf -inf -inf -inf))
                (local.set $m2 (v128.const f32x4 -inf -inf -inf -inf))
                (local.set $m3 (v128.const f32x4 -inf -inf -inf -inf))
                (local.set $row (i32.add (local.get $base) (i32.shl (local.get $c) (i32.const 2))))
                (local.set $rowEnd (i32.add (local.get $row) (local.get $rowBytes)))
                (loop $rows
                  (local.set $p (local.get $row))
                  (local.set $pEnd (i32.add (local.get $row) (local.get $colBytes)))
                  (loop $cols
                    (local.set $m0 (f32x4.pmax (local.get $m0) (v128.load offset=0 (local.get $p))))
                    (local.set $m1 (f32x4.pmax (local.get $m1) (v128.load offset=16 (local.get $p))))
                    (local.set $m2 (f32x4.pmax (local.get $m2) (v128.load offset=32 (local.get $p))))
                    (local.set $m3 (f32x4.pmax (local.get $m3) (v128.load offset=48 (local.get $p))))
                    (local.set $p (i32.add (local.get $p) (local.get $cellStride)))
                    (br_if $cols (i32.lt_u (local.get $p) (local.get $pEnd))))
                  (local.set $row (i32.add (local.get $row) (local.get $rowStride)))
                  (br_if $rows (i32.lt_u (local.get $row) (local.get $rowEnd))))
                (local.set $p (i32.add (local.get $o) (i32.shl (local.get $c) (i32.const 2))))
                (v128.store offset=0 align=4 (local.get $p) (local.get $m0))
                (v128.store offset=16 align=4 (local.get $p) (local.get $m1))
                (v128.store offset=32 align=4 (local.get $p) (local.get $m2))
                (v128.store offset=48 align=4 (local.get $p) (local.get $m3))
                (local.set $c (i32.add (local.get $c) (i32.const 16)))
                (br $wide)))
            (block $narrow_done
              (loop $narrow
                (br_if $narrow_done (i32.ge_u (local.get $c) (local.get $C)))
                (local.set $m0 (v128.const f32x4 -inf -inf -inf -inf))
                (local.set $row (i32.add (local.get $base) (i32.shl (local.get $c) (i32.const 2))))
                (local.set $rowEnd (i32.add (local.get $row) (local.get $rowBytes)))
                (loop $rows
                  (local.set $p (local.get $row))
                  (local.set $pEnd (i32.add (local.get $row) (local.get $colBytes)))
                  (loop $cols
                    (local.set $m0 (f32x4.pmax (local.get $m0) (v128.load (local.get $p))))
                    (local.set $p (i32.add (local.get $p) (local.get $cellStride)))
                    (br_if $cols (i32.lt_u (local.get $p) (local.get $pEnd))))
                  (local.set $row (i32.add (local.get $row) (local.get $rowStride)))
                  (br_if $rows (i32.lt_u (local.get $row) (local.get $rowEnd))))
                (call $store4 (i32.add (local.get $o) (i32.shl (local.get $c) (i32.const 2)))
                  (local.get $m0) (i32.sub (local.get $C) (local.get $c)))
                (local.set $c (i32.add (local.get $c) (i32.const 4)))
                (br $narrow)))))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $bins))))

  ;; Transposes a rows × cols matrix of floats: dst[j * dstStride + i * 4] = src[i * srcStride + j * 4]
;; (strides in bytes). Blocks of 4 × 4 are turned with shuffles, so both sides move whole vectors.
  ;; Used to copy an NCHW feature map in as NHWC, and to turn a RoI's NHWC result into NCHW: strided
  ;; single-float stores straight from the kernels cost several times more.
  (func (export "transpose")
    (param $src i32) (param $srcStride i32) (param $dst i32) (param $dstStride i32)
    (param $rows i32) (param $cols i32)
    (local $i i32) (local $j i32) (local $s i32) (local $d i32) (local $r i32)
    (local $r0 v128) (local $r1 v128) (local $r2 v128) (local $r3 v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (block $blocks_done
      (loop $blocks
        (br_if $blocks_done (i32.gt_u (i32.add (local.get $i) (i32.const 4)) (local.get $rows)))
        (local.set $s (i32.add (local.get $src) (i32.mul (local.get $i) (local.get $srcStride))))
        (local.set $d (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2))))
        (local.set $j (i32.const 0))
        (block $cols_done
          (loop $cols4
            (br_if $cols_done (i32.gt_u (i32.add (local.get $j) (i32.const 4)) (local.get $cols)))
            (local.set $r (i32.add (local.get $s) (i32.shl (local.get $j) (i32.const 2))))
            (local.set $r0 (v128.load align=4 (local.get $r)))
            (local.set $r (i32.add (local.get $r) (local.get $srcStride)))
            (local.set $r1 (v128.load align=4 (local.get $r)))
            (local.set $r (i32.add (local.get $r) (local.get $srcStride)))
            (local.set $r2 (v128.load align=4 (local.get $r)))
            (local.set $r (i32.add (local.get $r) (local.get $srcStride)))
            (local.set $r3 (v128.load align=4 (local.get $r)))
            ;; t0 = a0 b0 a1 b1, t1 = a2 b2 a3 b3, t2 = c0 d0 c1 d1, t3 = c2 d2 c3 d3
            (local.set $t0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $r0) (local.get $r1)))
            (local.set $t1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $r0) (local.get $r1)))
            (local.set $t2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $r2) (local.get $r3)))
            (local.set $t3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $r2) (local.get $r3)))
            (local.set $r (i32.add (local.get $d) (i32.mul (local.get $j) (local.get $dstStride))))
            (v128.store align=4 (local.get $r)
              (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t0) (local.get $t2)))
            (local.set $r (i32.add (local.get $r) (local.get $dstStride)))
            (v128.store align=4 (local.get $r)
              (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t0) (local.get $t2)))
            (local.set $r (i32.add (local.get $r) (local.get $dstStride)))
            (v128.store align=4 (local.get $r)
              (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t1) (local.get $t3)))
            (local.set $r (i32.add (local.get $r) (local.get $dstStride)))
            (v128.store align=4 (local.get $r)
              (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t1) (local.get $t3)))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $cols4)))
        ;; the last cols % 4 columns of these 4 rows
        (block $tail_done
          (loop $tail
            (br_if $tail_done (i32.ge_u (local.get $j) (local.get $cols)))
            (local.set $r (i32.add (local.get $d) (i32.mul (local.get $j) (local.get $dstStride))))
            (local.set $s (i32.add (local.get $src) (i32.add (i32.mul (local.get $i) (local.get $srcStride)) (i32.shl (local.get $j) (i32.const 2)))))
            (f32.store offset=0 (local.get $r) (f32.load (local.get $s)))
            (local.set $s (i32.add (local.get $s) (local.get $srcStride)))
            (f32.store offset=4 (local.get $r) (f32.load (local.get $s)))
            (local.set $s (i32.add (local.get $s) (local.get $srcStride)))
            (f32.store offset=8 (local.get $r) (f32.load (local.get $s)))
            (local.set $s (i32.add (local.get $s) (local.get $srcStride)))
            (f32.store offset=12 (local.get $r) (f32.load (local.get $s)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $tail)))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $blocks)))
    ;; the last rows % 4 rows, one float at a time
    (block $rows_done
      (loop $rows
        (br_if $rows_done (i32.ge_u (local.get $i) (local.get $rows)))
        (local.set $j (i32.const 0))
        (block $row_done
          (loop $row
            (br_if $row_done (i32.ge_u (local.get $j) (local.get $cols)))
            (f32.store
              (i32.add (local.get $dst) (i32.add (i32.mul (local.get $j) (local.get $dstStride)) (i32.shl (local.get $i) (i32.const 2))))
              (f32.load (i32.add (local.get $src) (i32.add (i32.mul (local.get $i) (local.get $srcStride)) (i32.shl (local.get $j) (i32.const 2))))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $row)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rows))))
)

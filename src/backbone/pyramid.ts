/**
 * The built-in backbone's feature pyramid (`pyramid: true` on image input): a light FPN (Lin et al.,
 * 2017) on the built-in net, levels P3, P4, P5 at strides 8, 16 and 32, {@link PYRAMID_CHANNELS}
 * channels each.
 *
 * ```
 * C3 = inception3a/output  112 ch, stride 8      (the built-in net, unchanged)
 * C4 = inception4a/output  256 ch, stride 16     (the built-in net's output)
 * C5 = conv5  3×3/2 256 → 128 + ReLU, stride 32  (one more stage, so P5 sees more than C4)
 * lateral_k = 1×1 conv C_k → 64 (linear)
 * top5 = lateral5; top4 = lateral4 + up(top5); top3 = lateral3 + up(top4)   (nearest ×2, cropped)
 * P_k = 3×3 conv top_k → 64 (linear)
 * ```
 * As torchvision's `FeaturePyramidNetwork` (no activation after the laterals and the smoothing convs,
 * top-down by nearest interpolation to the lateral's size). Odd sizes: `ceil(H/16)` is `2·ceil(H/32)`
 * or one less, so the upsampled map is cropped at the bottom/right (see `builtin.ts`'s `upsample`).
 * Level `k` is `ceil(H / 2^k) × ceil(W / 2^k)`.
 *
 * Weights: the built-in net's own (same seed, same streams: every tensor has its own PRNG stream keyed
 * by the layer's name), plus He-uniform weights for the new layers from the same seeded PRNG. A plain
 * (non-pyramid) request runs the unchanged built-in model; the pyramid is a second model, built on
 * first use.
 *
 * 64 channels keep it light (the smoothing conv on P3 is the largest new cost) and make the
 * position-sensitive ops usable on it with 1×1, 2×2, 4×4 or 8×8 bins (`C` must be a multiple of `PH·PW`).
 */
import {
  BUILTIN_NETWORK,
  describeNetwork,
  type NetworkNode,
  type PyramidDescription,
  type PyramidLevelDescription,
} from './builtin.js';

export type { PyramidDescription, PyramidLevelDescription };

/** Channels of every pyramid level. */
export const PYRAMID_CHANNELS = 64;
/** Strides of the levels, finest first. */
export const PYRAMID_STRIDES: readonly number[] = [8, 16, 32];
/** The network nodes whose outputs are the levels, finest first (P3, P4, P5). */
export const PYRAMID_OUTPUTS: readonly string[] = ['fpn/p3', 'fpn/p4', 'fpn/p5'];

const linear = (name: string, input: string, kernel: number): NetworkNode => ({
  name,
  type: 'conv',
  input,
  filters: PYRAMID_CHANNELS,
  kernel,
  stride: 1,
  relu: false,
});

/** The nodes the pyramid adds to {@link BUILTIN_NETWORK}, in topological order. */
export const PYRAMID_HEAD: readonly NetworkNode[] = [
  { name: 'conv5', type: 'conv', input: 'inception4a/output', filters: 128, kernel: 3, stride: 2 },
  linear('fpn/lateral3', 'inception3a/output', 1),
  linear('fpn/lateral4', 'inception4a/output', 1),
  linear('fpn/lateral5', 'conv5', 1),
  { name: 'fpn/up5', type: 'upsample', input: 'fpn/lateral5', like: 'fpn/lateral4' },
  { name: 'fpn/top4', type: 'add', inputs: ['fpn/lateral4', 'fpn/up5'] },
  { name: 'fpn/up4', type: 'upsample', input: 'fpn/top4', like: 'fpn/lateral3' },
  { name: 'fpn/top3', type: 'add', inputs: ['fpn/lateral3', 'fpn/up4'] },
  linear('fpn/p3', 'fpn/top3', 3),
  linear('fpn/p4', 'fpn/top4', 3),
  linear('fpn/p5', 'fpn/lateral5', 3),
];

/** The built-in net with the pyramid head: {@link BUILTIN_NETWORK}'s node objects, then {@link PYRAMID_HEAD}. */
export const PYRAMID_NETWORK: readonly NetworkNode[] = [...BUILTIN_NETWORK, ...PYRAMID_HEAD];

/** The pyramid at `referenceInput` (`[H, W]`). */
export function describePyramid(referenceInput: [number, number]): PyramidDescription {
  const rows = describeNetwork(PYRAMID_NETWORK, referenceInput);
  const added = new Set(PYRAMID_HEAD.map((n) => n.name));
  const byName = new Map(rows.map((r) => [r.name, r]));
  return {
    channels: PYRAMID_CHANNELS,
    strides: [...PYRAMID_STRIDES],
    levels: PYRAMID_OUTPUTS.map((name, i) => {
      const row = byName.get(name)!;
      return {
        name,
        level: Math.log2(PYRAMID_STRIDES[i]),
        stride: PYRAMID_STRIDES[i],
        outputShape: row.outputShape,
        receptiveField: row.receptiveField,
      };
    }),
    totalParams: rows.reduce((sum, r) => sum + r.params, 0),
    totalMultiplyAdds: rows.reduce((sum, r) => sum + r.multiplyAdds, 0),
    layers: rows.filter((r) => added.has(r.name)),
  };
}

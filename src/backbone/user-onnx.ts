/**
 * A user's ONNX backbone (`BACKBONE_DIR/model.onnx`), run by ONNX Runtime: torchvision's conventions.
 *
 * Input: RGB float32 NCHW `[1, 3, H, W]` in [0, 1], then `(x − mean) / std` per channel when
 * `BACKBONE_MEAN` / `BACKBONE_STD` are set, then zeros at the bottom/right up to a multiple of
 * `BACKBONE_SIZE_DIVISIBILITY` (torchvision's `GeneralizedRCNNTransform`: normalize, then `batch_images`
 * pads). Boxes and coverage stay in the unpadded image: padding only adds rows and columns after it.
 *
 * Output: every output must be float32 `[1, C, h, w]`. One output is a single map; several are a
 * pyramid, finest first, all with the same C. Each level's stride is `BACKBONE_STRIDES` or inferred as
 * torchvision's `MultiScaleRoIAlign` infers its scales: `2^round(log2(padded size / map size))`,
 * accepted only when the map is that stride's `ceil` or `floor` of the padded size on both axes.
 * Start-up probes the model and refuses to start, saying what it found, otherwise.
 */
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { FeatureMap } from '../ops/types.js';
import type { BackboneDescription, LayerDescription } from './builtin.js';
import {
  createSession,
  loadOrt,
  ortVersion,
  paddedSize,
  probeImage,
  rgbToInput,
  runSession,
  type InputTransform,
  type OrtSession,
} from './onnx-engine.js';

/** The file a `BACKBONE_DIR` holds for this loader. */
export const USER_ONNX_FILE = 'model.onnx';

export interface UserOnnxOptions {
  modelDir: string;
  /** Per-channel mean subtracted after /255 (`BACKBONE_MEAN`). */
  mean?: readonly [number, number, number];
  /** Per-channel std divided by after the mean (`BACKBONE_STD`). */
  std?: readonly [number, number, number];
  /** Pad to a multiple of this (`BACKBONE_SIZE_DIVISIBILITY`). Default 1. */
  sizeDivisibility?: number;
  /** Each output's stride, finest first (`BACKBONE_STRIDES`); default inferred. */
  strides?: readonly number[];
  /** A single map's expected stride (`BACKBONE_STRIDE`); checked when given. */
  stride?: number;
  /** ONNX Runtime intra-op threads. */
  threads: number;
  /** Why this engine, in words (for `/readyz`). */
  engineReason: string;
}

/** What {@link loadUserOnnx} found and the functions the `Backbone` wraps. */
export interface UserOnnx {
  name: string;
  strides: number[];
  channels: number;
  /** One map per output, finest first, NCHW; `image` already checked by the caller. */
  run(image: { rgb: Uint8Array; width: number; height: number }): Promise<FeatureMap[]>;
  describe(backend: {
    backend: string;
    backendReason: string;
    tfjsNodeError: string | null;
  }): BackboneDescription;
  bytes: Uint8Array;
  release(): Promise<void>;
}

const isPowerOfTwo = (n: number) => Number.isInteger(n) && n >= 1 && (n & (n - 1)) === 0;

/**
 * The stride of a map `[h, w]` computed from a padded input `[H, W]`: `2^round(log2(H / h))`, when
 * both axes agree and the map is `ceil` or `floor` of the input over it; else undefined.
 */
export function inferStride(input: [number, number], map: [number, number]): number | undefined {
  const [H, W] = input;
  const [h, w] = map;
  if (!(h >= 1 && w >= 1)) return undefined;
  const s = 2 ** Math.round(Math.log2(H / h));
  const fits = (big: number, small: number) => small === Math.ceil(big / s) || small === Math.floor(big / s);
  return s >= 1 && fits(H, h) && fits(W, w) ? s : undefined;
}

/**
 * Loads and probes `modelDir/model.onnx`.
 * @throws Error saying what was found: unreadable file, a model ORT refuses, a failed probe run,
 *   outputs not float32 4-D with batch 1, channels that differ between levels, strides not powers of
 *   two or not increasing, or a stride other than the configured one
 */
export async function loadUserOnnx(opts: UserOnnxOptions): Promise<UserOnnx> {
  const file = join(opts.modelDir, USER_ONNX_FILE);
  const where = `Backbone model ${file}`;
  const divisibility = opts.sizeDivisibility ?? 1;
  const transform: InputTransform = { mean: opts.mean, std: opts.std, sizeDivisibility: divisibility };
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(file));
  } catch (err) {
    throw new Error(`${where}: cannot be read: ${(err as Error).message}`, { cause: err });
  }
  let session: OrtSession;
  try {
    session = await createSession(bytes, opts.threads);
  } catch (err) {
    throw new Error(`${where}: ONNX Runtime cannot load it: ${(err as Error).message.split('\n')[0]}`, {
      cause: err,
    });
  }
  const refuse = async (why: string): Promise<never> => {
    await session.release();
    throw new Error(`${where}: ${why}`);
  };
  if (session.inputNames.length !== 1)
    await refuse(
      `takes ${session.inputNames.length} inputs (${session.inputNames.join(', ')}); expected one image [1, 3, H, W]`,
    );
  // A probe whose padded size every stride up to 64 divides, so inferred strides are exact.
  const probe = probeImage(224, 160);
  const input = rgbToInput(probe.rgb, probe.width, probe.height, transform);
  const [pw, ph] = paddedSize(probe.width, probe.height, divisibility);
  let maps: FeatureMap[];
  try {
    maps = await runSession(session, input);
  } catch (err) {
    return refuse(`probe pass on [1, 3, ${ph}, ${pw}] failed: ${(err as Error).message.split('\n')[0]}`);
  }
  const found = maps.map((m, i) => `${session.outputNames[i]} [${m.shape.join(', ')}]`).join(', ');
  if (maps.some((m) => m.shape[0] !== 1)) await refuse(`outputs must have batch 1, found ${found}`);
  const channels = maps[0].shape[1];
  if (maps.some((m) => m.shape[1] !== channels))
    await refuse(`the levels of a pyramid must have the same channels, found ${found}`);
  let strides: number[];
  if (opts.strides !== undefined) {
    if (opts.strides.length !== maps.length)
      await refuse(
        `BACKBONE_STRIDES gives ${opts.strides.length} strides for ${maps.length} outputs (${found})`,
      );
    if (!opts.strides.every(isPowerOfTwo))
      await refuse(`BACKBONE_STRIDES must be powers of two, got ${opts.strides.join(', ')}`);
    strides = [...opts.strides];
  } else {
    const inferred = maps.map((m) => inferStride([ph, pw], [m.shape[2], m.shape[3]]));
    if (inferred.some((s) => s === undefined))
      await refuse(
        `the probe input [1, 3, ${ph}, ${pw}] gives ${found}: not a power-of-two stride of the input on both axes ` +
          `(set BACKBONE_STRIDES if the model crops or pads its maps)`,
      );
    strides = inferred as number[];
  }
  for (let i = 1; i < strides.length; i++)
    if (!(strides[i] > strides[i - 1]))
      await refuse(
        `a pyramid's outputs must be finest first (increasing strides), found strides ${strides.join(', ')} for ${found}`,
      );
  if (opts.stride !== undefined && maps.length === 1 && strides[0] !== opts.stride)
    await refuse(
      `output stride ${strides[0]} (${found} from [1, 3, ${ph}, ${pw}]) differs from BACKBONE_STRIDE ${opts.stride}`,
    );

  const ort = await loadOrt();
  const name = `user:${basename(opts.modelDir)}`;
  const norm =
    `RGB / 255 in [0, 1], NCHW` +
    (opts.mean ? `, minus mean [${opts.mean.join(', ')}]` : '') +
    (opts.std ? `, over std [${opts.std.join(', ')}]` : '') +
    (divisibility > 1 ? `, zero-padded bottom/right to a multiple of ${divisibility}` : '');
  return {
    name,
    strides,
    channels,
    bytes,
    run: (image) => runSession(session, rgbToInput(image.rgb, image.width, image.height, transform)),
    describe: (backend) => {
      const layers: LayerDescription[] = maps.map((m, i) => ({
        name: session.outputNames[i],
        type: 'onnx output',
        inputs: [session.inputNames[0]],
        outputShape: [...m.shape],
        params: 0,
        multiplyAdds: 0,
        receptiveField: 0,
        totalStride: strides[i],
      }));
      return {
        name,
        ...backend,
        engine: 'onnx',
        engineReason: `${opts.engineReason}; ONNX Runtime ${ortVersion(ort)} runs ${USER_ONNX_FILE}`,
        engineCheck: null,
        inputChannels: 3,
        outputChannels: channels,
        stride: strides[0],
        receptiveField: 0,
        totalParams: 0,
        totalMultiplyAdds: 0,
        referenceInput: [ph, pw],
        inputNormalization: norm,
        layers,
        ...(strides.length > 1
          ? {
              pyramid: {
                channels,
                strides: [...strides],
                levels: layers.map((l, i) => ({
                  name: l.name,
                  level: Math.log2(strides[i]),
                  stride: strides[i],
                  outputShape: l.outputShape,
                  receptiveField: 0,
                })),
                totalParams: 0,
                totalMultiplyAdds: 0,
                layers: [],
              },
            }
          : {}),
      };
    },
    release: () => session.release(),
  };
}

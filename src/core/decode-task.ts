/**
 * The worker half of request parsing: a {@link RoiTask} carries its inputs as they were sent (base64
 * text, or a multipart file's bytes) and is decoded here, in the worker thread. Base64 decoding,
 * `.npy` parsing and the finiteness check of a feature map grow with the body: on the HTTP thread
 * they stalled every other request (`/healthz` up to 4.3 s under 70 concurrent 29 MiB bodies). The
 * errors are the ones the HTTP thread used to give, with the same fields (`image`, `features`,
 * `features.data`, `features.shape`, `boxes[k][0]`, `boxes`).
 */
import { InvalidInputError } from '../errors.js';
import { assertBoxes } from '../ops/boxes.js';
import { assertFiniteFeatures } from '../ops/features.js';
import type { FeatureMap } from '../ops/types.js';
import { decodeBase64Bytes, decodeFloat32Base64 } from '../tensors/base64.js';
import { readNpy } from '../tensors/npy.js';
import { checkFeatureMapRequest } from './prepare.js';
import {
  logicalShape,
  type DecodedRoiTask,
  type FeaturesInput,
  type RoiLimits,
  type RoiTask,
} from './task.js';

/**
 * An encoded image as sent: file bytes as they are, base64 text decoded.
 *
 * @throws InvalidInputError (field `image`) for text that is not base64
 */
export function decodeImageInput(image: Uint8Array | string): Uint8Array {
  return decodeBase64IfText(image, 'image');
}

/** File bytes as they are, base64 text decoded (errors name `field`). */
function decodeBase64IfText(image: Uint8Array | string, field: string): Uint8Array {
  return typeof image === 'string' ? decodeBase64Bytes(image, field) : image;
}

/**
 * A feature map as sent, decoded and checked: base64 through `decodeFeatures`; a `.npy` file read,
 * required 4-D, and checked finite.
 *
 * @throws InvalidInputError naming `features`, `features.shape`, `features.data` or `features.data[i]`
 */
export function decodeFeaturesInput(features: FeaturesInput, field = 'features'): FeatureMap {
  if (features.encoding === 'base64') return decodeFeatures(features, field);
  const npy = readNpy(features.bytes, field);
  if (npy.shape.length !== 4) {
    throw new InvalidInputError(
      `${field} .npy has shape [${npy.shape.join(', ')}]`,
      `${field}.shape`,
      'a 4-D float32 array [N, C, H, W] (or [N, H, W, C] with layout=NHWC)',
    );
  }
  const stored = npy.shape as [number, number, number, number];
  const fm: FeatureMap = {
    data: npy.data,
    shape: logicalShape(stored, features.layout),
    layout: features.layout,
  };
  assertFiniteFeatures(fm, field);
  return fm;
}

/**
 * Decodes a task's inputs and makes the checks that needed them: the boxes' batch indices against
 * `N`; for a `.npy` map (whose shape only its header tells), the output size against
 * `MAX_OUTPUT_VALUES` and the work budget (`MAX_WORK`). An image's are checked by the pipeline after
 * decoding, before the backbone runs.
 *
 * @param task - from `prepareRoi`
 * @param limits - the worker's limits
 * @throws InvalidInputError / TooLargeError naming the field
 */
export function decodeRoiTask(task: RoiTask, limits: RoiLimits): DecodedRoiTask {
  const image = task.image === undefined ? undefined : decodeImageInput(task.image);
  const images = task.images?.map((each, i) => decodeBase64IfText(each, `images[${i}]`));
  // A pyramid: each level decoded and checked on its own, named `features[i]` (the first is `features`).
  const levelFeatures = task.levelFeatures?.map((f, i) => decodeFeaturesInput(f, `features[${i}]`));
  const features = levelFeatures
    ? levelFeatures[0]
    : task.features === undefined
      ? undefined
      : decodeFeaturesInput(task.features);
  if (features) {
    assertBoxes(task.boxes, features.shape[0], 'boxes');
    // Checked on the HTTP thread when the shapes came with the JSON; a `.npy` shape is known only now.
    if ((task.levelFeatures ?? [task.features]).some((f) => f?.encoding === 'npy')) {
      checkFeatureMapRequest(task.boxes, features.shape, task.params, limits, {
        levelShapes: levelFeatures?.map((f) => f.shape),
        rotated: task.rotated,
      });
    }
  }
  const { levelFeatures: _sent, images: _sentImages, ...rest } = task;
  return {
    ...rest,
    image,
    ...(images ? { images } : {}),
    features,
    ...(levelFeatures ? { levelFeatures } : {}),
  };
}

/**
 * Decodes a JSON `features` object into a {@link FeatureMap}, checking length and finiteness.
 *
 * @param features - `{ shape, layout, data }` as sent in JSON; `shape` in
 *   `layout` order (see {@link logicalShape})
 * @returns the map with its logical `[N, C, H, W]` shape (what the operators and responses use)
 * @throws InvalidInputError (field `features.data`) on bad base64, wrong length, NaN or Inf
 */
export function decodeFeatures(
  features: Omit<Extract<FeaturesInput, { encoding: 'base64' }>, 'encoding'>,
  field = 'features',
): FeatureMap {
  const data = decodeFloat32Base64(features.data, `${field}.data`);
  const expected = features.shape.reduce((a, b) => a * b, 1);
  if (data.length !== expected) {
    throw new InvalidInputError(
      `${field}.data holds ${data.length} float32 values; shape [${features.shape.join(', ')}] needs ${expected}`,
      `${field}.data`,
      `${expected} little-endian float32 values (${expected * 4} bytes) in base64`,
    );
  }
  const fm: FeatureMap = {
    data,
    shape: logicalShape(features.shape, features.layout),
    layout: features.layout,
  };
  assertFiniteFeatures(fm, field);
  return fm;
}

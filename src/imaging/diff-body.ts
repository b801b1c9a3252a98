/**
 * The body of `POST /v1/diff`, rendered and encoded in a worker (`src/runtime/worker.ts`, task kind `diff`): the
 * PNG sheet, or the JSON with coverage, difference statistics and the pictures as base64 PNGs. Rendering
 * a sheet and its statistics takes hundreds of ms of CPU; on the HTTP thread it stalled every other
 * request, `/healthz` included, for that long (issue 11, item 11).
 */
import type { DiffResponse } from '../../routes/v1/schemas/diff.js';
import { checkChannel, type DiffOptions } from '../core/diff-options.js';
import type { FeatureMap, Pooled } from '../ops/types.js';
import type { RoiResult } from '../core/results.js';
import { COMPARED_OPS, DIFF_PAIRS, pairKey, type ComparedOp } from '../ops/registry.js';
import { boxRows, echoedParams, JSON_CONTENT_TYPE, type EncodedBody } from '../core/encode.js';
import { coverageSummary, diffStats, renderDiff, type PairDiff } from './render-sheet.js';
import { toPng, type Raster } from './render.js';
import type { RoiWarning } from '../warnings.js';

type Pairs = DiffResponse['differencesAll']['pairs'];

/** `{ "align-pool": stats, … }`, one entry per pair of the registry's `DIFF_PAIRS`, in its order. */
function pairsOf(list: PairDiff[]): Pairs {
  const pairs: Pairs = {};
  for (const [a, b] of DIFF_PAIRS) {
    const p = list.find((d) => d.a === a && d.b === b) as PairDiff;
    pairs[pairKey(a, b)] = { meanAbs: p.meanAbs, maxAbs: p.maxAbs, relL2: p.relL2 };
  }
  return pairs;
}

/** An encoded diff body, with what the route needs for its headers and metrics. */
export interface EncodedDiff extends EncodedBody {
  /** Rendering + PNG / JSON encoding, ms. */
  encodeMs: number;
  /** Whether the sheet has an image overlay (false for features input: the route says so in a header). */
  overlay: boolean;
  boxCount: number;
  /** The result's warnings (the route puts them in the `X-Roiserve-Warnings` header). */
  warnings: RoiWarning[];
}

/**
 * Renders the diff of a `/v1/diff` result (all three ops run, `includeImage` set) and encodes it.
 *
 * @param result - from `executeRoi` with `ops` = all three and `includeImage`
 * @param options - maxBoxes, channel and format (defaults filled in by the route's schema)
 * @param workStartedAt - `performance.now()` when the work began (for the JSON's `timings.total`)
 * @throws InvalidInputError (field `channel`) for a channel the feature map does not have
 */
export async function encodeDiff(
  result: RoiResult,
  options: DiffOptions,
  workStartedAt = performance.now(),
): Promise<EncodedDiff> {
  // Always there with includeImage.
  const features = result.features as FeatureMap;
  checkChannel(options.channel, result.featureMap.shape[1]);
  const start = performance.now();
  const pooled = result.outputs as Record<ComparedOp, Pooled>;
  const image = result.image;
  const imageSize: [number, number] = image
    ? [image.width, image.height]
    : (result.params.imageSize ?? [
        features.shape[3] / result.params.spatialScale,
        features.shape[2] / result.params.spatialScale,
      ]);
  const resizedNote =
    image && image.scale !== 1
      ? `the image was resized from ${image.originalWidth}×${image.originalHeight} to ${image.width}×${image.height} px for the backbone: pictures and coverage use the resized frame`
      : undefined;
  const shown = Math.min(result.boxes.count, options.maxBoxes);
  const rendered = await renderDiff({
    image:
      image && result.rgb
        ? { data: result.rgb, width: image.width, height: image.height, channels: 3 }
        : undefined,
    imageSize,
    features,
    spatialScale: result.params.spatialScale,
    boxes: result.opBoxes,
    coverage: result.coverage,
    // A pyramid: each box's level, drawn on the sheet (its grid and regions at its stride).
    ...(result.levels ? { levels: result.levels.map((level) => ({ level, stride: 2 ** level })) } : {}),
    pooled,
    params: result.params,
    channel: options.channel,
    maxBoxes: options.maxBoxes,
    notes: resizedNote ? [resizedNote] : [],
    // The PNG sheet shows the overlay, not the heatmap, when there is an image: do not render it.
    featureHeatmap: options.format === 'json',
  });
  const common = { overlay: image !== null, boxCount: result.boxes.count, warnings: result.warnings };

  if (options.format === 'png') {
    const body = await toPng(rendered.sheet);
    return {
      body,
      contentType: 'image/png',
      filename: 'roi-diff.png',
      encodeMs: performance.now() - start,
      ...common,
    };
  }

  const notes = [
    ...(image
      ? []
      : ['features input without an image: no image overlay; the boxes are drawn on the feature heatmap']),
    ...(resizedNote ? [resizedNote] : []),
    ...(shown < result.boxes.count
      ? [`${result.boxes.count} boxes: the first ${shown} have panels (maxBoxes); statistics cover all`]
      : []),
  ];
  const stats = diffStats(pooled);
  const [sheet, overlay, rows, featureHeatmap] = await Promise.all([
    toPng(rendered.sheet),
    rendered.overlay ? toPng(rendered.overlay) : null,
    Promise.all(rendered.rows.map(toPng)),
    // Always there: the pipeline returns the feature map with includeImage.
    toPng(rendered.featureHeatmap as Raster),
  ]);
  const { format: _format, encoding: _encoding, ...roiParams } = echoedParams(result, 'json', 'base64');
  const payload: DiffResponse = {
    params: {
      ...roiParams,
      ops: [...COMPARED_OPS],
      maxBoxes: options.maxBoxes,
      channel: options.channel,
      format: 'json',
    },
    image,
    featureMap: result.featureMap,
    boxes: boxRows(result.boxes),
    boxesShown: rendered.boxesShown,
    coverage: result.coverage,
    differences: stats.perBox.map((list, box) => ({ box, pairs: pairsOf(list) })),
    differencesAll: { pairs: pairsOf(stats.total) },
    summary: coverageSummary(result.coverage),
    images: {
      sheet: sheet.toString('base64'),
      overlay: overlay ? overlay.toString('base64') : null,
      rows: rows.map((png) => png.toString('base64')),
      featureHeatmap: featureHeatmap.toString('base64'),
    },
    notes,
    warnings: result.warnings,
    timings: { ...result.timings, encode: 0, total: 0 },
  };
  payload.timings.encode = performance.now() - start;
  payload.timings.total = performance.now() - workStartedAt;
  return {
    body: Buffer.from(JSON.stringify(payload)),
    contentType: JSON_CONTENT_TYPE,
    filename: null,
    encodeMs: performance.now() - start,
    ...common,
  };
}

/**
 * What `POST /v1/diff` asks for beyond a `/v1/roi` request, shared by the route (which validates it) and
 * the worker (which renders). Deliberately free of any rendering import: the route must not load the
 * renderer, so that no picture is ever drawn on the HTTP thread (issue 11, item 11).
 */
import { InvalidInputError } from '../errors.js';
import type { ChannelSelect } from '../imaging/render.js';

/** Most boxes one sheet shows (each adds a ~190 px row). */
export const MAX_DIFF_BOXES = 32;

/** Reductions over channels a heatmap can show instead of one channel. */
export const CHANNEL_REDUCTIONS = ['mean', 'meanabs', 'max'] as const;

/** The defaults of the diff-specific options (the route's schema and the CLI fill them in). */
export const DIFF_DEFAULTS = { maxBoxes: 8, channel: 'meanabs', format: 'png' } as const;

/** The diff-specific options, defaults filled in (by the route's body schema, or the CLI). */
export interface DiffOptions {
  /** How many boxes (the first ones) get a row of panels. */
  maxBoxes: number;
  /** What heatmaps show: a channel index or a reduction. */
  channel: ChannelSelect;
  /** `png`: the sheet; `json`: statistics and the pictures as base64 PNGs. */
  format: 'png' | 'json';
}

/**
 * Refuses a channel index the feature map does not have (400 naming `channel`). Called by the route when
 * the channel count is known before the work, and by the worker once the feature map exists.
 */
export function checkChannel(channel: ChannelSelect, channels: number): void {
  if (typeof channel === 'number' && channel >= channels) {
    throw new InvalidInputError(
      `channel ${channel} does not exist: the feature map has ${channels} channels`,
      'channel',
      `a channel index from 0 to ${channels - 1}, or one of ${CHANNEL_REDUCTIONS.join(', ')}`,
    );
  }
}

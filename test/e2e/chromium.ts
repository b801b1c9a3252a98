/**
 * Debian's headless Chromium for the browser tests (`/docs`, the playground): one place for its path and
 * flags, so both tests run the same browser the same way (no sandbox in containers, no GPU, no network
 * chatter of its own).
 */
import { existsSync } from 'node:fs';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const haveChromium = existsSync(CHROMIUM);

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A 1280×900 headless context with its profile in `profileDir`; `acceptDownloads` where a test saves files. */
export function launchChromium(profileDir: string, acceptDownloads = false): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
    acceptDownloads,
  });
}

/**
 * Makes `docs/playground.png`, the README's picture of the playground after a run: the real app on
 * 127.0.0.1 (built-in backbone), the page in headless Chromium (`/usr/bin/chromium`, as the e2e test),
 * the sample scene with its four boxes, Run, the second coverage row hovered; 1360 × 1390 px.
 *
 *   npx tsx scripts/make-playground-screenshot.ts [out=docs/playground.png]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { parseConfig } from '../src/config.js';
import { buildApp } from '../src/server.js';

async function main(): Promise<void> {
  const out = process.argv[2] ?? 'docs/playground.png';
  const app = await buildApp(parseConfig({}, { logLevel: 'silent', workers: 1 }));
  const profile = mkdtempSync(join(tmpdir(), 'roiserve-shot-'));
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    await app.readiness.settled;
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/`;
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
      viewport: { width: 1360, height: 1390 },
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      await page.goto(base);
      await page.waitForSelector('body[data-ready="true"]');
      await page.waitForFunction(() => /^\d+$/.test(document.getElementById('stride')?.textContent ?? ''));
      await page.click('#run');
      await page.waitForSelector('#results-body:not([hidden])', { timeout: 120_000 });
      await page.waitForFunction(() => {
        const img = document.getElementById('sheet') as HTMLImageElement | null;
        return img !== null && img.complete && img.naturalWidth > 0;
      });
      await page.hover('#coverage tbody tr:nth-child(2)');
      await page.screenshot({ path: out });
      console.log(`wrote ${out}`);
    } finally {
      await context.close();
    }
  } finally {
    await app.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

await main();

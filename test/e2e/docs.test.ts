/**
 * End-to-end: `/docs` (swagger-ui) in real headless Chromium against the app listening on 127.0.0.1.
 * "Try it out" → "Execute" on every operation, as it stands, gets a 2xx (the document's examples; the
 * made-up body swagger-ui used before sent both `image` and `features`, a 400); the multipart bodies
 * show file pickers for `image` / `features`.
 *
 * Chromium missing: the test FAILS under CI (`CI` set) and is skipped locally with a message.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/server.js';
import { testConfig } from '../support/fixtures.js';
import { CHROMIUM, haveChromium, launchChromium } from './chromium.js';

if (!haveChromium && process.env.CI) {
  it('has Chromium to run /docs in', () => {
    throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium (see .ci/run)`);
  });
} else if (!haveChromium) {
  console.warn(`/docs e2e skipped: ${CHROMIUM} not found (apt-get install -y chromium)`);
}

describe.skipIf(!haveChromium)('/docs in headless Chromium', () => {
  let app: FastifyInstance;
  let base: string;
  let context: BrowserContext;
  let page: Page;
  let work: string;
  const operationIds: string[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'roiserve-docs-'));
    app = await buildApp(testConfig());
    await app.listen({ host: '127.0.0.1', port: 0 });
    await app.readiness.settled;
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { operationId: string }>>;
    };
    for (const item of Object.values(doc.paths))
      for (const op of Object.values(item)) operationIds.push(op.operationId);

    context = await launchChromium(join(work, 'profile'));
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(30_000);
    await page.goto(`${base}/docs/`);
    await page.waitForSelector('.opblock');
  }, 180_000);

  afterAll(async () => {
    await context?.close();
    await app?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** The operation's block, expanded: swagger-ui ids it `operations-<tag>-<operationId>`. */
  async function expand(operationId: string) {
    const op = page.locator(`.opblock[id$="-${operationId}"]`);
    await expect(op.count()).resolves.toBe(1);
    if (!(await op.locator('.try-out__btn').isVisible())) await op.locator('.opblock-summary').click();
    return op;
  }

  /**
   * Puts the operation in "Try it out" mode unless it already is (the button then reads "Cancel"), so
   * that each test sets up the page state it needs instead of relying on the test before it.
   */
  async function tryOut(op: Awaited<ReturnType<typeof expand>>) {
    const button = op.locator('.try-out__btn');
    if ((await button.innerText()).trim() === 'Try it out') await button.click();
  }

  it('Try it out → Execute succeeds on every operation as it stands', async () => {
    expect(operationIds.length).toBeGreaterThanOrEqual(7);
    for (const id of operationIds) {
      const op = await expand(id);
      await tryOut(op);
      await op.locator('.execute').click();
      const status = op.locator('.live-responses-table tbody .response-col_status').first();
      await status.waitFor();
      const text = (await status.innerText()).trim();
      expect(text, `${id}: ${text}`).toMatch(/^2\d\d/);
    }
  }, 180_000);

  it('multipart bodies offer file pickers for image and features', async () => {
    for (const [id, files] of [
      ['roi', ['image', 'features']],
      ['diff', ['image', 'features']],
      ['features', ['image']],
    ] as const) {
      const op = await expand(id);
      // The file inputs exist only in "Try it out" mode.
      await tryOut(op);
      const body = op.locator('.opblock-section-request-body');
      await body.locator('select.content-type').selectOption('multipart/form-data');
      for (const name of files) {
        await expect(
          body.locator(`tr[data-property-name="${name}"] input[type=file]`).count(),
          `${id} ${name}`,
        ).resolves.toBe(1);
      }
    }
  }, 60_000);
});

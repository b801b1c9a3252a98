/**
 * End-to-end: the playground in real headless Chromium (Debian's `chromium`, driven by playwright-core)
 * against the real app listening on 127.0.0.1. Loads the page, uploads a generated fixture, draws a
 * box with the mouse, runs, and checks that the sheet and the coverage table show what a direct API
 * call returns; then checks the curl command and the tensor download reproduce it. Screenshots go to
 * `test-results/` (CI artifacts).
 *
 * Chromium missing: the test FAILS under CI (`CI` set) and is skipped locally with a message.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import type { BrowserContext, Page, Request } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/server.js';
import { testConfig } from '../support/fixtures.js';
import { CHROMIUM, haveChromium, launchChromium } from './chromium.js';

const RESULTS = 'test-results';
const inCi = Boolean(process.env.CI);

/** The fixture: 320×240 PNG with flat shapes and a checkerboard, made here so no binary is committed. */
const FIXTURE_WIDTH = 320;
const FIXTURE_HEIGHT = 240;
async function makeFixture(path: string): Promise<void> {
  const cells = Array.from({ length: 8 }, (_, j) =>
    Array.from({ length: 8 }, (_, i) =>
      (i + j) % 2 ? `<rect x="${180 + i * 10}" y="${60 + j * 10}" width="10" height="10" fill="#111"/>` : '',
    ).join(''),
  ).join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${FIXTURE_WIDTH}" height="${FIXTURE_HEIGHT}">
    <rect width="100%" height="100%" fill="#cfe3f5"/>
    <rect x="30" y="40" width="110" height="150" fill="#3d6fb6"/>
    <circle cx="85" cy="95" r="30" fill="#f2a33a"/>
    <rect x="180" y="60" width="80" height="80" fill="#f4f4f4"/>${cells}
  </svg>`;
  await sharp(Buffer.from(svg)).png().toFile(path);
}

/** The box the test draws, in image pixels: corners off the feature grid. */
const DRAG_FROM: [number, number] = [37, 45];
const DRAG_TO: [number, number] = [213, 171];

if (!haveChromium && inCi) {
  // A failing test (not a hook error), so that CI's "N passed, N failed" line counts it.
  it('has Chromium to run the playground in', () => {
    throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium (see .ci/run)`);
  });
} else if (!haveChromium) {
  console.warn(
    `playground e2e skipped: ${CHROMIUM} not found. Install it with \`apt-get install -y chromium\` ` +
      '(CI does, and fails this test without it).',
  );
}

describe.skipIf(!haveChromium)('playground in headless Chromium', () => {
  let app: FastifyInstance;
  let base: string;
  let context: BrowserContext;
  let page: Page;
  let work: string;
  let fixture: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'roiserve-e2e-'));
    fixture = join(work, 'fixture.png');
    await makeFixture(fixture);
    mkdirSync(RESULTS, { recursive: true });

    app = await buildApp(testConfig());
    await app.listen({ host: '127.0.0.1', port: 0 });
    await app.readiness.settled;
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/`;

    context = await launchChromium(join(work, 'profile'), true);
    page = context.pages()[0] ?? (await context.newPage());
    // Fail fast: later steps wait on earlier ones, and the run itself has its own longer wait.
    page.setDefaultTimeout(20_000);
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });
  }, 180_000);

  afterAll(async () => {
    await context?.close();
    await app?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** A multipart request to the app, as any client would send it. */
  async function api(path: string, fields: [string, string][]): Promise<Response> {
    const form = new FormData();
    form.append('image', new Blob([readFileSync(fixture)], { type: 'image/png' }), 'fixture.png');
    for (const [name, value] of fields) form.append(name, value);
    return fetch(new URL(path, base), { method: 'POST', body: form });
  }

  /** The bytes of the sheet the page shows (its `#sheet` image's blob URL). */
  async function shownSheet(): Promise<Buffer> {
    const bytes = await page.evaluate(async () => {
      const img = document.getElementById('sheet') as HTMLImageElement;
      return Array.from(new Uint8Array(await (await fetch(img.src)).arrayBuffer()));
    });
    return Buffer.from(bytes);
  }

  /** Choose `format` in the tensor menu, click Download, and return the file's suggested name and bytes. */
  async function downloadTensors(format: string): Promise<{ name: string; bytes: Buffer }> {
    await page.selectOption('#tensor-format', format);
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: 110_000 }),
      page.click('#download-tensors'),
    ]);
    const path = join(work, download.suggestedFilename());
    await download.saveAs(path);
    return { name: download.suggestedFilename(), bytes: readFileSync(path) };
  }

  /**
   * Loads the page, uploads the fixture, draws the box, sets non-default parameters and runs, once for
   * the file: every test that reads the results (or the page with an image) awaits it first, so each
   * test holds when run alone (`-t`), not only after the one before it.
   */
  let ran:
    | Promise<{
        drawn: number[];
        sent: string[];
        at: (p: [number, number]) => readonly [number, number];
      }>
    | undefined;
  const ranOnce = () => (ran ??= run());
  async function run() {
    await page.goto(base);
    await page.waitForSelector('body[data-ready="true"]');
    expect(await page.title()).toContain('roiserve');
    // The grid's stride comes from GET /v1/backbone.
    await expect.poll(() => page.locator('#stride').textContent()).toMatch(/^\d+$/);
    await page.screenshot({ path: join(RESULTS, 'playground-initial.png') });

    await page.setInputFiles('#image-file', fixture);
    await expect
      .poll(() => page.locator('#image-info').textContent())
      .toContain(`${FIXTURE_WIDTH} × ${FIXTURE_HEIGHT}`);
    // A new image starts without boxes.
    expect(JSON.parse(await page.locator('#boxes-json').inputValue())).toEqual([]);

    // Draw the box by dragging on the canvas (CSS pixels = image pixels × the display scale).
    const rect = await page.locator('#editor').boundingBox();
    if (!rect) throw new Error('canvas not visible');
    const scale = rect.width / FIXTURE_WIDTH;
    expect(rect.height / FIXTURE_HEIGHT).toBeCloseTo(scale, 2);
    const at = ([x, y]: [number, number]) => [rect.x + x * scale, rect.y + y * scale] as const;
    await page.mouse.move(...at(DRAG_FROM));
    await page.mouse.down();
    await page.mouse.move(...at(DRAG_TO), { steps: 12 });
    await page.mouse.up();

    const boxes = JSON.parse(await page.locator('#boxes-json').inputValue()) as number[][];
    expect(boxes).toHaveLength(1);
    // The page rounds to whole pixels: within one pixel of where the mouse went.
    const drawn = boxes[0];
    [...DRAG_FROM, ...DRAG_TO].forEach((v, i) => expect(Math.abs(drawn[i] - v)).toBeLessThanOrEqual(1));

    // Non-default parameters, so that the test sees them reach the API.
    await page.fill('#output-h', '5');
    await page.fill('#output-w', '4');
    await page.selectOption('#mode', 'max');

    // Every request the page sends to the server during the run (blob: and data: URLs are not requests).
    const sent: string[] = [];
    const record = (request: Request) => {
      if (request.url().startsWith(base))
        sent.push(`${request.method()} ${request.url().slice(base.length)}`);
    };
    page.on('request', record);
    await page.click('#run');
    await page.waitForSelector('#results-body:not([hidden])', { timeout: 180_000 });
    await page.waitForFunction(() => {
      const img = document.getElementById('sheet') as HTMLImageElement | null;
      return img !== null && img.complete && img.naturalWidth > 0;
    });
    page.off('request', record);
    return { drawn, sent, at };
  }

  // Generous timeouts: the whole suite shares 2 cores with this browser and the backbone.
  it(
    'uploads an image, draws a box, runs, and shows what the API returns',
    { timeout: 240_000 },
    async () => {
      const { drawn, sent, at } = await ranOnce();
      // One request per run (the backbone runs once): the JSON answer carries the sheet.
      expect(sent).toEqual(['POST v1/diff']);
      expect(await page.locator('#error').isHidden()).toBe(true);
      await page.screenshot({ path: join(RESULTS, 'playground-results.png'), fullPage: true });

      // The same request, sent directly.
      const fields: [string, string][] = [
        ['boxes', JSON.stringify([drawn])],
        ['outputSize', '[5,4]'],
        ['samplingRatio', '2'],
        ['aligned', 'true'],
        ['mode', 'max'],
        ['maxBoxes', '8'],
        ['channel', 'meanabs'],
      ];
      const [sheetRes, jsonRes] = await Promise.all([
        api('v1/diff', fields),
        api('v1/diff', [...fields, ['format', 'json']]),
      ]);
      expect(sheetRes.status).toBe(200);
      expect(jsonRes.status).toBe(200);
      const directSheet = Buffer.from(await sheetRes.arrayBuffer());
      const direct = (await jsonRes.json()) as {
        coverage: Record<'pool' | 'warp', { lostFraction: number; gainedFraction: number; iou: number }>[];
      };

      // The sheet on the page is the API's PNG, byte for byte.
      const shownSize = await page
        .locator('#sheet')
        .evaluate((img: HTMLImageElement) => [img.naturalWidth, img.naturalHeight]);
      const meta = await sharp(directSheet).metadata();
      expect(shownSize).toEqual([meta.width, meta.height]);
      expect((await shownSheet()).equals(directSheet)).toBe(true);

      // The coverage table shows the API's numbers (as the page formats them: % with 1 decimal, IoU 3).
      const rows = page.locator('#coverage tbody tr');
      expect(await rows.count()).toBe(1);
      const row = rows.first();
      const cell = (op: string, key: string) =>
        row.locator(`td[data-op="${op}"][data-key="${key}"]`).textContent();
      for (const op of ['pool', 'warp'] as const) {
        const c = direct.coverage[0][op];
        expect(await cell(op, 'lost')).toBe(`${(c.lostFraction * 100).toFixed(1)} %`);
        expect(await cell(op, 'gained')).toBe(`${(c.gainedFraction * 100).toFixed(1)} %`);
        expect(await cell(op, 'iou')).toBe(c.iou.toFixed(3));
      }
      expect(await row.locator('td').first().textContent()).toBe(drawn.join(', '));
      // The feature heatmap and the server's stage timings (of the one request) are shown.
      expect(
        await page.locator('#feature-heatmap').evaluate((img: HTMLImageElement) => img.naturalWidth),
      ).toBeGreaterThan(0);
      expect(await page.locator('#timings tbody').textContent()).toContain('backbone');

      // Hovering the box on the canvas highlights its row.
      await page.mouse.move(...at([(DRAG_FROM[0] + DRAG_TO[0]) / 2, (DRAG_FROM[1] + DRAG_TO[1]) / 2]));
      await expect.poll(() => row.getAttribute('class')).toContain('highlight');

      expect(pageErrors).toEqual([]);
    },
  );

  it('gives a curl command that reproduces the sheet exactly', { timeout: 240_000 }, async (ctx) => {
    if (!existsSync('/usr/bin/curl')) ctx.skip();
    await ranOnce();
    await page.click('#copy-curl');
    const text = await page.locator('#curl-text').inputValue();
    expect(text).toContain('-F image=@fixture.png');
    const sheetCommand = text
      .split('\n')
      .slice(1)
      .join('\n')
      .split(/\ncurl /)[0];
    // Run it where the image is, as its comment says.
    // Asynchronously: the server answering it runs in this very process.
    await promisify(execFile)('bash', ['-c', sheetCommand], { cwd: work, timeout: 110_000 });
    expect(readFileSync(join(work, 'roiserve-sheet.png')).equals(await shownSheet())).toBe(true);
  });

  it(
    'downloads the tensors as safetensors with one [K, C, PH, PW] tensor per op',
    { timeout: 240_000 },
    async () => {
      await ranOnce();
      const { name: fileName, bytes } = await downloadTensors('safetensors');
      expect(fileName).toBe('roiserve-tensors.safetensors');
      const headerLength = Number(bytes.readBigUInt64LE(0));
      const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<
        string,
        { dtype: string; shape: number[] }
      >;
      for (const op of ['pool', 'align', 'warp']) {
        const entry = Object.entries(header).find(([name]) => name.includes(op));
        expect(entry, op).toBeDefined();
        const [, tensor] = entry as [string, { dtype: string; shape: number[] }];
        expect(tensor.dtype).toBe('F32');
        expect(tensor.shape[0]).toBe(1);
        expect(tensor.shape.slice(2)).toEqual([5, 4]);
      }
      writeFileSync(join(RESULTS, 'playground-download-header.json'), JSON.stringify(header, null, 2));

      // One op as .npy: the same [K, C, PH, PW] shape in the header.
      const npy = await downloadTensors('npy:align');
      expect(npy.name).toBe('roiserve-align.npy');
      expect(npy.bytes.subarray(0, 6).toString('latin1')).toBe('\x93NUMPY');
      const npyHeader = npy.bytes.subarray(10, 10 + npy.bytes.readUInt16LE(8)).toString('latin1');
      const alignShape = Object.entries(header).find(([name]) => name.includes('align'))?.[1].shape ?? [];
      expect(npyHeader).toContain(`'shape': (${alignShape.join(', ')})`);
    },
  );

  it('is operable with the keyboard: add, move, resize and delete a box', { timeout: 240_000 }, async () => {
    await ranOnce();
    const boxes = async () => JSON.parse(await page.locator('#boxes-json').inputValue()) as number[][];
    const before = await boxes();
    await page.focus('#editor');
    await page.keyboard.press('n');
    const added = (await boxes()).at(-1) as number[];
    expect(await boxes()).toHaveLength(before.length + 1);
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('Shift+ArrowDown');
    await page.keyboard.press('Alt+ArrowLeft');
    expect((await boxes()).at(-1)).toEqual([added[0] + 1, added[1] + 10, added[2], added[3] + 10]);
    expect(await page.locator('#editor-status').textContent()).toMatch(/^Box \d+: /);
    await page.keyboard.press('Delete');
    expect(await boxes()).toEqual(before);
    // Pasting JSON onto the focused image replaces the boxes.
    await page.evaluate(() => {
      const data = new DataTransfer();
      data.setData('text/plain', '[[10, 20, 60, 80]]');
      document
        .getElementById('editor')
        ?.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true }));
    });
    expect(await boxes()).toEqual([[10, 20, 60, 80]]);
  });
});

import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startObservedPlane, waitUntil, type ObservedPlane } from './support-observability/observed-run.js';

/**
 * The /ui status page in a real browser (Debian's headless Chromium) against
 * an in-process control plane with a simulated run: it lists the run, shows
 * it running, and its charts change between polls without a reload. With
 * TANDEM_UPDATE_SCREENSHOT=1 it also writes docs/images/status-page.png.
 * Limits are generous (two shared cores); nothing asserts on speed.
 */

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = fileURLToPath(new URL('../../docs/images/status-page.png', import.meta.url));
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

// Fails here, with the install hint, rather than skipping.
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium package (apt-get install chromium; scripts/setup.sh does it)`);

describe('status page (/ui)', () => {
  let cp: ObservedPlane;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];

  beforeAll(async () => {
    // Long enough to watch it run: about a minute here, more under load;
    // afterAll cancels what is left.
    cp = await startObservedPlane({ steps: 150, k: 2, timeScale: 0.1, generators: 2 });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 120_000 });
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.setDefaultTimeout(60_000);
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
    });
  }, 180_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await cp?.stop();
  }, 90_000);

  it('answers /ui with a self-contained page and a strict CSP, and /v1/runs/{id}/stats with the run figures', async () => {
    const res = await fetch(`${cp.httpUrl}/ui`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/]+=*'/);
    const html = await res.text();
    // Nothing loaded from elsewhere.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);

    const stats = (await (await fetch(`${cp.httpUrl}/v1/runs/${cp.runId}/stats`)).json()) as Record<string, any>;
    expect(stats).toMatchObject({ runId: cp.runId, simulated: true, maxTrajectoryAgeSteps: 2, batchGroups: 8, capacityGroups: 24, maxSteps: 150 });
    expect(stats.age.buckets.at(-1)).toMatchObject({ le: null });
    expect(typeof stats.totals.tokensGenerated).toBe('number');
    expect(typeof stats.sampledAtMs).toBe('number');

    const missing = await fetch(`${cp.httpUrl}/v1/runs/no-such-run/stats`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as Record<string, any>).error.code).toBe('NOT_FOUND');
    expect((await fetch(`${cp.httpUrl}/ui`, { method: 'POST' })).status).toBe(404);
  });

  it('lists the running run and updates its charts without a reload', async () => {
    await page.goto(`${cp.httpUrl}/ui?intervalMs=500`);
    const row = page.locator(`#runs-body tr[data-run="${cp.runId}"]`);
    await row.waitFor({ timeout: 60_000 });
    await waitUntil(
      'the page to show the run Running',
      async () => ((await row.locator('.phase').textContent()) === 'Running' ? true : undefined),
      { timeoutMs: 120_000, intervalMs: 250 },
    );
    expect(await page.locator('#run-title').textContent()).toBe(cp.runId);
    expect(await page.locator('#run-sim').isVisible()).toBe(true);

    const polls = async (): Promise<number> => Number(await page.locator('body').getAttribute('data-polls'));
    const chart = (id: string): Promise<string> => page.locator(`#${id}`).evaluate((n) => n.outerHTML);
    // Rates need two samples; then every poll adds a point.
    await page.locator('#chart-throughput polyline').first().waitFor({ timeout: 60_000 });
    const before = { polls: await polls(), throughput: await chart('chart-throughput'), utilisation: await chart('chart-utilisation') };
    await waitUntil('two more polls', async () => ((await polls()) >= before.polls + 2 ? true : undefined), { timeoutMs: 60_000 });
    expect(await chart('chart-throughput')).not.toBe(before.throughput);
    expect(await chart('chart-utilisation')).not.toBe(before.utilisation);

    // The age histogram grows as steps are trained.
    // One read of both, so that a poll cannot fall between them.
    const age = (): Promise<{ html: string; served: number }> =>
      page.locator('#chart-age').evaluate((n) => ({
        html: n.outerHTML,
        served: [...n.querySelectorAll('rect')].reduce((a, r) => a + Number(r.getAttribute('data-count') ?? 0), 0),
      }));
    const ageBefore = await age();
    const ageAfter = await waitUntil('the age histogram to grow', async () => {
      const now = await age();
      return now.served > ageBefore.served ? now : undefined;
    }, { timeoutMs: 120_000 });
    expect(ageAfter.html).not.toBe(ageBefore.html);
    // Every served group is within k = 2: no bar beyond the bound has groups.
    const beyond = await page.locator('#chart-age rect').evaluateAll((rects) =>
      rects.filter((r) => r.getAttribute('fill') === '#c62828' && Number(r.getAttribute('data-count')) > 0).length,
    );
    expect(beyond).toBe(0);
    expect(await page.locator('#conn').getAttribute('class')).toBe('conn');
    expect(problems).toEqual([]);
  });

  it.runIf(process.env.TANDEM_UPDATE_SCREENSHOT === '1')('writes docs/images/status-page.png', async () => {
    // A few dozen points on the line charts first.
    const polls = async (): Promise<number> => Number(await page.locator('body').getAttribute('data-polls'));
    const start = await polls();
    await waitUntil('40 more polls', async () => ((await polls()) >= start + 40 ? true : undefined), { timeoutMs: 180_000 });
    await mkdir(fileURLToPath(new URL('../../docs/images/', import.meta.url)), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(existsSync(SCREENSHOT)).toBe(true);
  }, 240_000);
});

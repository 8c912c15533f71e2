import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requirePrometheus, promApi, promQuery, promtool, startPrometheus, type PrometheusServer } from './support-observability/prometheus-server.js';
import { startObservedPlane, waitUntil, type ObservedPlane } from './support-observability/observed-run.js';

/**
 * The metrics promise, checked with the real thing: Debian's prometheus
 * scrapes an in-process control plane (every second) while a short
 * simulated run trains, and the staleness and utilisation series are read
 * back through Prometheus's HTTP API. The same Prometheus loads the alert
 * rules and evaluates every dashboard query against the live data; promtool
 * lints the exposition and unit-tests the rules. Limits are generous (two
 * shared cores); nothing asserts on speed.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RULES = `${ROOT}deploy/prometheus/tandem-alerts.yaml`;
const RULE_TESTS = `${ROOT}deploy/prometheus/tandem-alerts.test.yaml`;
const DASHBOARD = `${ROOT}deploy/grafana/tandem-dashboard.json`;
const STEPS = 8;
const K = 1;
const BATCH_GROUPS = 8; // observedRunSpec

// Fails here, with the install hint, rather than skipping.
requirePrometheus();

describe('Prometheus scraping a control plane during a simulated run', () => {
  let cp: ObservedPlane;
  let prom: PrometheusServer;
  let runId: string;
  let metricsText: string;
  /** When Prometheus had scraped the run's last batch (Unix seconds): rate windows end here. */
  let endedAt: number;

  beforeAll(async () => {
    cp = await startObservedPlane({ steps: STEPS, k: K, timeScale: 0.15, generators: 2 });
    runId = cp.runId;
    const target = new URL(cp.httpUrl).host;
    prom = await startPrometheus(
      [
        'global:',
        '  scrape_interval: 1s',
        '  scrape_timeout: 1s',
        '  evaluation_interval: 1s',
        'rule_files:',
        `  - ${JSON.stringify(RULES)}`,
        'scrape_configs:',
        '  - job_name: tandem-control-plane',
        '    static_configs:',
        `      - targets: [${JSON.stringify(target)}]`,
        '',
      ].join('\n'),
      { readyTimeoutMs: 60_000 },
    );
    const done = await waitUntil(
      `run ${runId} to end`,
      async () => {
        const v = await cp.run();
        return ['Succeeded', 'Failed', 'Cancelled'].includes(v.status.phase) ? v : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 500 },
    );
    expect(done.status.phase, done.status.message).toBe('Succeeded');
    expect(done.status.trainerStep).toBe(STEPS);
    // Prometheus has the final figures once it scraped after the last ack.
    await waitUntil(
      'Prometheus to scrape the final age histogram',
      async () => {
        // The histogram is observed at each ack; the ledger counters are
        // polled from Redis: wait for both.
        const r = await promQuery(prom.url, `tandem_trajectory_age_steps_count{run="${runId}"}`);
        const trained = await promQuery(prom.url, `tandem_groups_total{run="${runId}", outcome="trained"}`);
        return r[0]?.value === STEPS * BATCH_GROUPS && trained[0]?.value === STEPS * BATCH_GROUPS ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, last: () => prom.log().slice(-1000) },
    );
    endedAt = Date.now() / 1000;
    metricsText = await (await fetch(`${cp.httpUrl}/metrics`)).text();
  }, 420_000);

  afterAll(async () => {
    await prom?.stop();
    await cp?.stop();
  }, 60_000);

  it('scrapes the control plane', async () => {
    const up = await promQuery(prom.url, 'up{job="tandem-control-plane"}');
    expect(up.map((s) => s.value)).toEqual([1]);
  });

  it('has the staleness histogram, every group within the bound', async () => {
    // The run may have ended between two scrapes: wait (bounded) for the
    // scrape that saw its last batch.
    let count = await promQuery(prom.url, `tandem_trajectory_age_steps_count{run="${runId}"}`);
    for (let i = 0; i < 60 && count[0]?.value !== STEPS * BATCH_GROUPS; i++) {
      await new Promise((r) => setTimeout(r, 500));
      count = await promQuery(prom.url, `tandem_trajectory_age_steps_count{run="${runId}"}`);
    }
    expect(count).toHaveLength(1);
    expect(count[0]?.value).toBe(STEPS * BATCH_GROUPS);
    const sum = (await promQuery(prom.url, `tandem_trajectory_age_steps_sum{run="${runId}"}`))[0]?.value ?? NaN;
    expect(sum).toBeGreaterThanOrEqual(0);
    expect(sum / STEPS / BATCH_GROUPS).toBeLessThanOrEqual(K);

    const buckets = (await promQuery(prom.url, `tandem_trajectory_age_steps_bucket{run="${runId}"}`))
      .map((s) => ({ le: s.metric.le === '+Inf' ? Infinity : Number(s.metric.le), n: s.value }))
      .sort((a, b) => a.le - b.le);
    expect(buckets.length).toBeGreaterThan(3);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]?.n).toBeGreaterThanOrEqual(buckets[i - 1]?.n ?? 0);
    expect(buckets.at(-1)).toEqual({ le: Infinity, n: STEPS * BATCH_GROUPS });
    // Nothing older than k: the bucket at k already holds every group.
    expect(buckets.find((b) => b.le === K)?.n).toBe(STEPS * BATCH_GROUPS);

    const k = await promQuery(prom.url, `tandem_max_trajectory_age_steps{run="${runId}"}`);
    expect(k[0]?.value).toBe(K);
    const dropped = await promQuery(prom.url, `tandem_groups_total{run="${runId}", outcome="dropped_stale"}`);
    expect(dropped.map((s) => s.value)).toEqual([0]);
    const trained = await promQuery(prom.url, `tandem_groups_total{run="${runId}", outcome="trained"}`);
    expect(trained.map((s) => s.value)).toEqual([STEPS * BATCH_GROUPS]);
  });

  it('has the utilisation series of both pools', async () => {
    const wait = await promQuery(prom.url, `tandem_trainer_wait_seconds_total{run="${runId}"}`);
    expect(wait).toHaveLength(1);
    // The trainer waits at least for its first batch, and never longer than the run lasted.
    expect(wait[0]?.value).toBeGreaterThan(0);
    expect(wait[0]?.value).toBeLessThan(600);

    const busy = await promQuery(prom.url, `tandem_generator_busy_ratio{run="${runId}"}`);
    expect(new Set(busy.map((s) => s.metric.generator)).size).toBe(2);
    for (const s of busy) {
      expect(s.value).toBeGreaterThanOrEqual(0);
      expect(s.value).toBeLessThanOrEqual(1);
    }
    const peak = await promQuery(prom.url, `max_over_time(tandem_generator_busy_ratio{run="${runId}"}[10m])`);
    expect(Math.max(...peak.map((s) => s.value))).toBeGreaterThan(0);
    const tokens = await promQuery(prom.url, `tandem_generation_tokens_total{run="${runId}"}`);
    expect(tokens[0]?.value).toBeGreaterThan(0);
  });

  it('loads the alert rules, evaluates each without error, and fires no critical alert for a healthy run', async () => {
    type Rules = { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string; type: string }> }> };
    await waitUntil(
      'every alert rule to be evaluated',
      async () => {
        const data = await promApi<Rules>(prom.url, '/api/v1/rules');
        const rules = data.groups.flatMap((g) => g.rules);
        return rules.length > 0 && rules.every((r) => r.health !== 'unknown') ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    const rules = (await promApi<Rules>(prom.url, '/api/v1/rules')).groups.flatMap((g) => g.rules);
    expect(rules.length).toBeGreaterThanOrEqual(8);
    expect(rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.lastError}`)).toEqual([]);
    const alerts = await promApi<{ alerts: Array<{ labels: Record<string, string>; state: string }> }>(prom.url, '/api/v1/alerts');
    expect(alerts.alerts.filter((a) => a.labels.severity === 'critical' && a.state === 'firing')).toEqual([]);
  });

  it('answers every dashboard query, with data for the staleness, utilisation and throughput panels', async () => {
    type Panel = { title?: string; targets?: Array<{ expr?: string }>; panels?: Panel[] };
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as { panels: Panel[] };
    const exprs: Array<{ title: string; expr: string }> = [];
    const visit = (panels: Panel[]): void => {
      for (const p of panels) {
        for (const t of p.targets ?? []) if (t.expr) exprs.push({ title: p.title ?? '', expr: t.expr });
        visit(p.panels ?? []);
      }
    };
    visit(dashboard.panels);
    expect(exprs.length).toBeGreaterThan(20);
    const results = new Map<string, number>();
    for (const { title, expr } of exprs) {
      // What Grafana substitutes: the run, a rate interval of four scrapes, the dashboard range.
      const q = expr.replaceAll('$run', runId).replaceAll('$__rate_interval', '30s').replaceAll('$__range', '10m');
      // Evaluated when the run had just ended, as a live dashboard showed it
      // (later, a 30 s rate window would hold no samples of a finished run).
      const r = await promQuery(prom.url, q, endedAt).catch((err: unknown) => {
        throw new Error(`${title}: ${(err as Error).message}`);
      });
      results.set(expr, r.length);
    }
    const withData = (fragment: string): number => [...results].filter(([e, n]) => e.includes(fragment) && n > 0).length;
    for (const fragment of ['tandem_trajectory_age_steps_bucket', 'tandem_trainer_wait_seconds_total', 'tandem_generator_busy_ratio', 'tandem_tokens_trained_total', 'tandem_weight_sync_seconds_bucket', 'tandem_rollout_queue_depth']) {
      expect(withData(fragment), `${fragment}: ${JSON.stringify([...results])}`).toBeGreaterThan(0);
    }
  });

  it('serves an exposition that promtool check metrics accepts', () => {
    expect(metricsText).toContain(`tandem_trajectory_age_steps_count{run="${runId}"}`);
    const r = promtool(['check', 'metrics'], { input: metricsText });
    expect(r.output).toBe('');
    expect(r.code).toBe(0);
  });

  it('has alert rules that promtool checks and whose unit tests pass', () => {
    const check = promtool(['check', 'rules', RULES]);
    expect(check.code, check.output).toBe(0);
    expect(check.output).toMatch(/SUCCESS: \d+ rules found/);
    const test = promtool(['test', 'rules', RULE_TESTS]);
    expect(test.code, test.output).toBe(0);
    expect(test.output).toContain('SUCCESS');
  });
});

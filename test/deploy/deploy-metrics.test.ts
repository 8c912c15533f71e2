import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
// metricsCatalog is not exported from @tandem/control-plane's index yet:
// the built file is imported directly until it is.
import { metricsCatalog } from '@tandem/control-plane';
import { allowedSeries, checkExpression, promqlRefs } from './promql-names.js';

/**
 * The Grafana dashboard and the Prometheus alert rules name only metrics the
 * control plane exports (the catalog, read from the metric definitions), with
 * labels those metrics have, so renaming a metric breaks this test rather
 * than a panel or an alert in production.
 */

const root = new URL('../../', import.meta.url);
type Json = Record<string, any>; // Grafana's JSON model and the rules YAML, read loosely

let allowed: Map<string, string[]>;
beforeAll(async () => {
  allowed = allowedSeries(await metricsCatalog());
});

describe('PromQL reader', () => {
  it('finds series names, not functions, keywords, numbers, durations or variables', () => {
    const refs = promqlRefs(
      'histogram_quantile(0.9, sum by (run, le) (rate(tandem_weight_sync_seconds_bucket{run=~"$run", phase="total"}[$__rate_interval] offset 5m))) > 1e3 ' +
        'and on (run) max by (run) (tandem_run_open) == 1 or vector(0) unless up{job="a{b}"}',
    );
    expect(refs.names).toEqual(['tandem_run_open', 'tandem_weight_sync_seconds_bucket', 'up']);
    expect(refs.groupingLabels).toEqual(['le', 'run']);
    expect(refs.selectors).toEqual([
      { name: 'tandem_weight_sync_seconds_bucket', matchers: [{ label: 'run', op: '=~', value: '$run' }, { label: 'phase', op: '=', value: 'total' }] },
      { name: 'up', matchers: [{ label: 'job', op: '=', value: 'a{b}' }] },
    ]);
  });

  it('reports unknown series, bare histogram names and labels a series does not have', () => {
    expect(checkExpression('rate(tandem_trainer_wait_seconds_total[5m])', allowed)).toEqual([]);
    expect(checkExpression('rate(tandem_trainer_wait_seconds[5m])', allowed)).toEqual(['unknown series tandem_trainer_wait_seconds']);
    expect(checkExpression('tandem_trajectory_age_steps', allowed)).toEqual(['unknown series tandem_trajectory_age_steps']);
    expect(checkExpression('tandem_trajectory_age_steps_count + tandem_trajectory_age_steps_sum', allowed)).toEqual([]);
    expect(checkExpression('tandem_groups_total{result="trained"}', allowed)).toEqual(['tandem_groups_total has no label result']);
    expect(checkExpression('sum by (le) (tandem_groups_total)', allowed)).toEqual(['no series in the expression has label le (grouping)']);
  });
});

describe('Grafana dashboard (deploy/grafana/tandem-dashboard.json)', () => {
  let dashboard: Json;
  let exprs: Array<{ panel: string; expr: string }>;
  beforeAll(async () => {
    dashboard = JSON.parse(await readFile(new URL('deploy/grafana/tandem-dashboard.json', root), 'utf8')) as Json;
    exprs = [];
    const visit = (panels: Json[]): void => {
      for (const p of panels) {
        for (const t of (p.targets ?? []) as Json[]) if (typeof t.expr === 'string') exprs.push({ panel: String(p.title), expr: t.expr });
        visit((p.panels ?? []) as Json[]);
      }
    };
    visit(dashboard.panels as Json[]);
  });

  it('queries only series of the metrics catalog, with their labels', () => {
    expect(exprs.length).toBeGreaterThanOrEqual(20);
    const problems = exprs.flatMap(({ panel, expr }) => checkExpression(expr, allowed).map((p) => `${panel}: ${p} in ${expr}`));
    expect(problems).toEqual([]);
  });

  it('filters every query by the templated run variable', () => {
    const runVar = (dashboard.templating.list as Json[]).find((v) => v.name === 'run');
    expect(runVar, 'templating variable run').toBeDefined();
    expect(runVar?.multi).toBe(true);
    const m = /^label_values\((\w+),\s*(\w+)\)$/.exec(String(runVar?.query?.query ?? runVar?.query));
    expect(m, 'run variable query label_values(metric, run)').not.toBeNull();
    expect(allowed.get(m?.[1] ?? '')).toContain(m?.[2]);
    expect(m?.[2]).toBe('run');
    for (const { panel, expr } of exprs) {
      for (const s of promqlRefs(expr).selectors) {
        expect(s.matchers, `${panel}: ${s.name}`).toContainEqual({ label: 'run', op: '=~', value: '$run' });
      }
      // Every tandem series is selected with braces, so none escapes the filter.
      for (const name of promqlRefs(expr).names) {
        expect(promqlRefs(expr).selectors.some((s) => s.name === name), `${panel}: ${name} without {run=~"$run"}`).toBe(true);
      }
    }
  });

  it('shows staleness, drops, utilisation of both pools, weight sync by phase, queue depth and throughput', () => {
    const all = exprs.map((e) => e.expr).join('\n');
    for (const needed of [
      'tandem_trajectory_age_steps_bucket',
      'tandem_max_trajectory_age_steps',
      'outcome!="trained"',
      'tandem_trainer_wait_seconds_total',
      'tandem_generator_busy_ratio',
      'sum by (phase, le) (rate(tandem_weight_sync_seconds_bucket',
      'tandem_rollout_queue_depth',
      'tandem_queue_capacity_groups',
      'rate(tandem_generation_tokens_total',
      'rate(tandem_tokens_trained_total',
      'outcome="trained"',
    ]) {
      expect(all, needed).toContain(needed);
    }
  });
});

describe('alert rules (deploy/prometheus/tandem-alerts.yaml)', () => {
  let rules: Json[];
  let operations: string;
  beforeAll(async () => {
    const doc = parseYaml(await readFile(new URL('deploy/prometheus/tandem-alerts.yaml', root), 'utf8')) as Json;
    rules = (doc.groups as Json[]).flatMap((g) => g.rules as Json[]);
    operations = await readFile(new URL('docs/operations.md', root), 'utf8');
  });

  it('name only series of the metrics catalog, with their labels', () => {
    expect(rules.length).toBeGreaterThanOrEqual(8);
    const problems = rules.flatMap((r) => checkExpression(String(r.expr), allowed).map((p) => `${r.alert}: ${p}`));
    expect(problems).toEqual([]);
  });

  it('each have a severity and a runbook that is a section of docs/operations.md', () => {
    const anchors = new Set(
      [...operations.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) =>
        (m[1] as string).trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-'),
      ),
    );
    for (const r of rules) {
      expect(['critical', 'warning', 'info'], String(r.alert)).toContain(r.labels?.severity);
      const url = String(r.annotations?.runbook_url ?? '');
      const m = /^docs\/operations\.md#(.+)$/.exec(url);
      expect(m, `${r.alert} runbook_url ${url}`).not.toBeNull();
      expect(anchors.has(m?.[1] ?? ''), `${r.alert}: no section #${m?.[1]} in docs/operations.md`).toBe(true);
      expect(m?.[1]).toBe(String(r.alert).toLowerCase());
    }
  });

  it('keep the run label on every alert about a run', () => {
    for (const r of rules) {
      const refs = promqlRefs(String(r.expr));
      if (!refs.names.some((n) => n.startsWith('tandem_'))) continue;
      // Aggregations must keep `run` (by (run, …)) so a firing alert names its run.
      const aggregations = [...String(r.expr).matchAll(/\b(sum|max|min|avg|count)\s+by\s*\(([^)]*)\)/g)];
      for (const a of aggregations) expect((a[2] as string).split(',').map((s) => s.trim()), `${r.alert}: ${a[0]}`).toContain('run');
    }
  });
});

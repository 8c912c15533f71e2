import { ControlPlaneMetrics } from './control-plane-metrics.js';

/** One metric as the catalog lists it. */
export interface CatalogEntry {
  name: string;
  type: string;
  labels: string[];
  unit: string;
  help: string;
}

/** Unit of a metric, from the naming convention (`_seconds`, `_steps`, …). */
function unitOf(name: string): string {
  const base = name.replace(/_total$/, '');
  if (base.endsWith('_seconds')) return 'seconds';
  if (base.endsWith('_steps')) return 'steps';
  if (base.endsWith('_ratio')) return 'ratio (0–1)';
  if (base.endsWith('_bytes')) return 'bytes';
  if (base.includes('tokens')) return 'tokens';
  if (base.includes('version') || base.endsWith('_step')) return 'version / step number';
  if (base.includes('groups') || base.includes('depth')) return 'prompt groups';
  return 'count';
}

/**
 * Every Tandem metric the control plane exports, read from the metric
 * definitions themselves so the catalog (docs/metrics.md) cannot drift.
 */
export async function metricsCatalog(): Promise<CatalogEntry[]> {
  const metrics = new ControlPlaneMetrics({ defaultMetrics: false });
  const json = await metrics.registry.getMetricsAsJSON();
  const entries: CatalogEntry[] = [];
  for (const m of json) {
    // prom-client keeps the label names on the metric object.
    const labels = ((metrics.registry.getSingleMetric(m.name) as unknown as { labelNames?: string[] })?.labelNames ?? []).slice();
    entries.push({ name: m.name, type: String(m.type), labels, unit: unitOf(m.name), help: m.help });
  }
  return entries.sort((a, b) => a.name.localeCompare(b.name));
}

/** The catalog as Markdown (docs/metrics.md). */
export async function metricsCatalogMarkdown(): Promise<string> {
  const rows = (await metricsCatalog()).map(
    (e) => `| \`${e.name}\` | ${e.type} | ${e.labels.map((l) => `\`${l}\``).join(', ')} | ${e.unit} | ${e.help} |`,
  );
  return [
    '# Metrics',
    '',
    'Generated from the metric definitions (`services/control-plane/src/metrics/control-plane-metrics.ts`)',
    'by `pnpm gen:metrics-doc`; a test fails when this file is out of date. All are served by the',
    'control plane at `/metrics`. Label cardinality is bounded: `run` (one per run), `generator`',
    '(one per generator of a run), and small closed sets (`outcome`, `phase`, `state`, `code`,',
    '`result`, `reserved`); nothing is labelled per prompt or per group. The process metrics of',
    'the control plane itself (`tandem_control_plane_*`, from prom-client) are not listed.',
    '',
    '| metric | type | labels | unit | meaning |',
    '|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

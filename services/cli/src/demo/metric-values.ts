import type { ControlPlaneMetrics } from '@tandem/control-plane';

/** Mean and maximum age at consumption of one run, from the age histogram. */
export async function ageStats(metrics: ControlPlaneMetrics, runId: string): Promise<{ mean: number; max: number; count: number }> {
  const h = await metrics.trajectoryAge.get();
  let sum = 0;
  let count = 0;
  const buckets: Array<{ le: number; n: number }> = [];
  for (const v of h.values) {
    // prom-client types bucket labels without `le`, which it adds.
    const labels = v.labels as Record<string, string | number | undefined>;
    if (labels.run !== runId) continue;
    if (v.metricName?.endsWith('_sum')) sum = v.value;
    else if (v.metricName?.endsWith('_count')) count = v.value;
    else if (v.metricName?.endsWith('_bucket') && labels.le !== '+Inf') buckets.push({ le: Number(labels.le), n: v.value });
  }
  buckets.sort((a, b) => a.le - b.le);
  // Ages are integers and the low buckets are one step wide, so the first
  // bucket holding every observation is the maximum.
  const max = count === 0 ? 0 : (buckets.find((b) => b.n >= count)?.le ?? Number.POSITIVE_INFINITY);
  return { mean: count === 0 ? 0 : sum / count, max, count };
}

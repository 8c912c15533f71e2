import type { Sample } from '@tandem/cli';

/** Count of a run's observations in a histogram, and how many were ≤ `le`. */
export function histogramAtMost(samples: Sample[], metric: string, run: string, le: number): { count: number; atMost: number } {
  const count = samples.find((s) => s.name === `${metric}_count` && s.labels.run === run)?.value ?? 0;
  const bucket = samples.find((s) => s.name === `${metric}_bucket` && s.labels.run === run && Number(s.labels.le) === le);
  if (!bucket) throw new Error(`${metric} has no bucket le=${le} for run ${run}`);
  return { count, atMost: bucket.value };
}

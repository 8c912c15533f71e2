/** One sample of a Prometheus text exposition. */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (enough of it for counters, gauges and histograms). */
export function parsePrometheus(text: string): PromSample[] {
  const out: PromSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    out.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return out;
}

/** Count of a run's observations in a histogram, and how many were ≤ `le`. */
export function histogramAtMost(samples: PromSample[], metric: string, run: string, le: number): { count: number; atMost: number } {
  const count = samples.find((s) => s.name === `${metric}_count` && s.labels.run === run)?.value ?? 0;
  const bucket = samples.find((s) => s.name === `${metric}_bucket` && s.labels.run === run && Number(s.labels.le) === le);
  if (!bucket) throw new Error(`${metric} has no bucket le=${le} for run ${run}`);
  return { count, atMost: bucket.value };
}

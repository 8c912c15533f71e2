/**
 * Busy time of simulated generators, sampled from their `/tandem/stats`
 * (`engine.busySeconds`: wall seconds with at least one sequence running).
 * Sampled while the run is alive; the ratio is the busy time over the time
 * between a generator's first and last sample.
 */
export class GeneratorBusySampler {
  private readonly first = new Map<string, { t: number; busy: number }>();
  private readonly last = new Map<string, { t: number; busy: number }>();

  async sample(urls: Map<string, string>, nowMs: number): Promise<void> {
    await Promise.all(
      [...urls].map(async ([id, url]) => {
        try {
          const res = await fetch(`${url}/tandem/stats`, { signal: AbortSignal.timeout(1000) });
          const body = (await res.json()) as { engine?: { busySeconds?: number } };
          const busy = body.engine?.busySeconds;
          if (typeof busy !== 'number') return;
          if (!this.first.has(id)) this.first.set(id, { t: nowMs, busy });
          this.last.set(id, { t: nowMs, busy });
        } catch {
          // A generator that is restarting or gone: skip this sample.
        }
      }),
    );
  }

  /** Mean busy ratio over generators, or undefined before two samples. */
  busyRatio(): number | undefined {
    const ratios: number[] = [];
    for (const [id, a] of this.first) {
      const b = this.last.get(id);
      if (!b || b.t <= a.t) continue;
      ratios.push(Math.min(1, Math.max(0, (b.busy - a.busy) / ((b.t - a.t) / 1000))));
    }
    return ratios.length === 0 ? undefined : ratios.reduce((x, y) => x + y, 0) / ratios.length;
  }

  /** Generators that reported at least once. */
  count(): number {
    return this.first.size;
  }
}

import type { ControlPlaneApi, GeneratorView } from './control-plane-api.js';

/** One observation of a generator's registry record. */
export interface Observation {
  atMs: number;
  state: GeneratorView['state'];
  policyVersion: number;
  url: string;
  reason?: string;
}

/**
 * Polls `GET /v1/runs/{id}/generators` in the background and keeps every
 * change of each generator's record, so a test can assert on states a
 * generator passed through (e.g. `unhealthy` with its reason) without
 * racing the moment they happened. Bounded: it stops when asked or after
 * `limitMs`.
 */
export class GeneratorWatch {
  readonly history = new Map<string, Observation[]>();
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly api: ControlPlaneApi,
    private readonly runId: string,
    options: { intervalMs?: number; limitMs?: number } = {},
  ) {
    const interval = options.intervalMs ?? 50;
    const until = Date.now() + (options.limitMs ?? 300_000);
    this.loop = (async () => {
      while (!this.stopped && Date.now() < until) {
        await this.poll().catch(() => undefined);
        await new Promise((r) => setTimeout(r, interval));
      }
    })();
  }

  /** Takes one more observation now and stops polling. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await this.poll();
  }

  /** Observations of one generator, oldest first. */
  of(id: string): Observation[] {
    return this.history.get(id) ?? [];
  }

  private async poll(): Promise<void> {
    const now = Date.now();
    for (const g of await this.api.generators(this.runId)) {
      const list = this.history.get(g.id) ?? [];
      const last = list.at(-1);
      if (!last || last.state !== g.state || last.policyVersion !== g.policyVersion || last.url !== g.url || last.reason !== g.reason) {
        list.push({ atMs: now, state: g.state, policyVersion: g.policyVersion, url: g.url, ...(g.reason === undefined ? {} : { reason: g.reason }) });
      }
      this.history.set(g.id, list);
    }
  }
}

/** The parts of the control plane's HTTP/JSON API the end-to-end tests use. */

import { parsePrometheusText, type Sample } from '@tandem/cli';

/** A generator as `GET /v1/runs/{id}/generators` shows it. */
export interface GeneratorView {
  id: string;
  url: string;
  state: 'joining' | 'ready' | 'syncing' | 'unhealthy';
  policyVersion: number;
  updatedAtMs: number;
  reason?: string;
}

/** The ledger as the Run JSON shows it (numbers may come as strings from int64 fields). */
export interface LedgerView {
  admitted: number;
  trained: number;
  droppedStale: number;
  failed: number;
  cancelled: number;
}

/** The run status fields the tests read. */
export interface RunStatusView {
  phase: string;
  message: string;
  trainerStep: number;
  policyVersion: number;
  maxSteps: number;
  queueDepth: number;
  inFlight: number;
  ledger: LedgerView;
}


/** HTTP client of one control plane. */
export class ControlPlaneApi {
  constructor(readonly baseUrl: string) {}

  async submitRun(runId: string, spec: unknown): Promise<void> {
    await this.json('POST', '/v1/runs', { runId, spec }, 201);
  }

  async registerGenerator(runId: string, id: string, url: string): Promise<GeneratorView> {
    return (await this.json('POST', `/v1/runs/${runId}/generators`, { id, url }, 201)) as GeneratorView;
  }

  async generators(runId: string): Promise<GeneratorView[]> {
    const body = (await this.json('GET', `/v1/runs/${runId}/generators`, undefined, 200)) as { generators: GeneratorView[] };
    return body.generators;
  }

  async status(runId: string): Promise<RunStatusView> {
    const body = (await this.json('GET', `/v1/runs/${runId}`, undefined, 200)) as { status: Record<string, unknown> };
    const s = body.status;
    const l = (s.ledger ?? {}) as Record<string, unknown>;
    return {
      phase: String(s.phase),
      message: String(s.message ?? ''),
      trainerStep: num(s.trainerStep),
      policyVersion: num(s.policyVersion),
      maxSteps: num(s.maxSteps),
      queueDepth: num(s.queueDepth),
      inFlight: num(s.inFlight),
      ledger: {
        admitted: num(l.admitted),
        trained: num(l.trained),
        droppedStale: num(l.droppedStale),
        failed: num(l.failed),
        cancelled: num(l.cancelled),
      },
    };
  }

  /** The run's journal, oldest first. */
  async events(runId: string): Promise<Array<{ time: string; type: string; reason: string; message: string }>> {
    const body = (await this.json('GET', `/v1/runs/${runId}/events?limit=200`, undefined, 200)) as { events: Array<{ time: string; type: string; reason: string; message: string }> };
    return body.events;
  }

  /** `GET /metrics`, parsed. */
  async metrics(): Promise<Sample[]> {
    const res = await fetch(`${this.baseUrl}/metrics`, { signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}: ${text.slice(0, 300)}`);
    return parsePrometheusText(text);
  }

  private async json(method: string, path: string, body: unknown, expected: number): Promise<unknown> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (res.status !== expected) throw new Error(`${method} ${path} answered ${res.status}: ${text.slice(0, 500)}`);
    return JSON.parse(text) as unknown;
  }
}

function num(v: unknown): number {
  if (v === undefined || v === null || v === '') return 0;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`not a number: ${JSON.stringify(v)}`);
  return n;
}

/** Sum of the samples named `name` whose labels include `labels`. */
export { sum as metricSum } from '@tandem/cli';
export type { Sample } from '@tandem/cli';

import { AGE_BUCKETS } from '../metrics/control-plane-metrics.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode, TandemError, systemClock, type Clock } from '@tandem/common';
import { queueCapacityGroups } from '@tandem/run-spec';
import type { Registry } from 'prom-client';
import type { RunManager, RunStatusView } from '../runs/run-manager.js';
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from './status-page-html.js';
import { pathSegment } from './http-errors.js';

/** Collaborators of the status page. */
export interface StatusPageDeps {
  runs: Pick<RunManager, 'get'>;
  /** The control plane's metrics registry (the same series /metrics serves). */
  registry: Registry;
  /** @default systemClock */
  clock?: Clock;
}

/** One bucket of the age histogram, not cumulative. */
export interface AgeBucket {
  /** Upper bound in steps (inclusive); null for the overflow bucket (+Inf). */
  le: number | null;
  /** Groups served with an age in (previous bound, le]. */
  count: number;
}

/**
 * A run's figures for the status page (`GET /v1/runs/{id}/stats`): its
 * status, the age histogram at consumption, and cumulative counters from
 * which a poller derives rates (tokens/s, groups/s, trainer busy).
 */
export interface RunStats {
  runId: string;
  /** spec.simulation is set: every figure comes from simulated processes. */
  simulated: boolean;
  phase: RunStatusView['phase'];
  message: string;
  trainerStep: number;
  maxSteps: number;
  policyVersion: number;
  maxTrajectoryAgeSteps: number;
  batchGroups: number;
  queueDepth: number;
  inFlight: number;
  capacityGroups: number;
  ledger: RunStatusView['ledger'];
  generators: RunStatusView['generators'];
  age: { buckets: AgeBucket[]; count: number; sum: number };
  /** Cumulative since this control plane started serving the run. */
  totals: { tokensGenerated: number; trainerWaitSeconds: number };
  /** Busy ratio (0–1) each generator reported last. */
  generatorBusy: Array<{ generator: string; ratio: number }>;
  /** When these figures were read (ms since the epoch). */
  sampledAtMs: number;
}

/** The status page's routes. */
export interface StatusPage {
  /**
   * Answers `GET /ui` and `GET /v1/runs/{id}/stats`; resolves false for any
   * other path, so the caller's routing goes on. Errors are thrown for the
   * caller's one error mapping.
   */
  handle(req: IncomingMessage, res: ServerResponse, path: string, method: string): Promise<boolean>;
  /** The figures of one run (NOT_FOUND for an unknown run). */
  runStats(runId: string): Promise<RunStats>;
}

const STATS_PATH = /^\/v1\/runs\/([^/:]+)\/stats$/;

/**
 * The built-in status page: one self-contained HTML document (inline
 * script and SVG, no external resources, so it works without network
 * access) that polls `/v1/runs` and `/v1/runs/{id}/stats`.
 */
export function createStatusPage(deps: StatusPageDeps): StatusPage {
  const clock = deps.clock ?? systemClock;

  async function runStats(runId: string): Promise<RunStats> {
    // get() also brings the run's gauges and ledger counters up to date.
    const view = await deps.runs.get(runId);
    const s = view.status;
    const [age, tokens, wait, busy] = await Promise.all([
      metricValues(deps.registry, 'tandem_trajectory_age_steps', runId),
      metricValues(deps.registry, 'tandem_generation_tokens_total', runId),
      metricValues(deps.registry, 'tandem_trainer_wait_seconds_total', runId),
      metricValues(deps.registry, 'tandem_generator_busy_ratio', runId),
    ]);
    return {
      runId: view.id,
      simulated: view.spec.simulation !== undefined,
      phase: s.phase,
      message: s.message,
      trainerStep: s.trainerStep,
      maxSteps: s.maxSteps,
      policyVersion: s.policyVersion,
      maxTrajectoryAgeSteps: view.spec.async.maxTrajectoryAgeSteps,
      batchGroups: view.spec.algorithm.batchGroups,
      queueDepth: s.queueDepth,
      inFlight: s.inFlight,
      capacityGroups: queueCapacityGroups(view.spec),
      ledger: s.ledger,
      generators: s.generators,
      age: ageHistogram(age),
      totals: { tokensGenerated: sumValues(tokens), trainerWaitSeconds: sumValues(wait) },
      generatorBusy: busy
        .map((v) => ({ generator: String(v.labels.generator ?? ''), ratio: v.value }))
        .sort((a, b) => a.generator.localeCompare(b.generator)),
      sampledAtMs: clock.now(),
    };
  }

  async function handle(_req: IncomingMessage, res: ServerResponse, path: string, method: string): Promise<boolean> {
    if (path === '/ui' || path === '/ui/') {
      if (method !== 'GET' && method !== 'HEAD') throw new TandemError(ErrorCode.NotFound, `no route for ${method} ${path}`);
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-length': Buffer.byteLength(STATUS_PAGE_HTML),
        'content-security-policy': STATUS_PAGE_CSP,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        'cache-control': 'no-store',
      });
      res.end(method === 'HEAD' ? undefined : STATUS_PAGE_HTML);
      return true;
    }
    const m = STATS_PATH.exec(path);
    if (!m) return false;
    if (method !== 'GET') throw new TandemError(ErrorCode.NotFound, `no route for ${method} ${path}`);
    const text = JSON.stringify(await runStats(pathSegment(m[1] as string, 'runId')));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    res.end(text);
    return true;
  }

  return { handle, runStats };
}

interface Value {
  labels: Record<string, string | number | undefined>;
  value: number;
  metricName?: string;
}

/** The values of one metric for one run, read from the registry by name. */
async function metricValues(registry: Registry, name: string, runId: string): Promise<Value[]> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return [];
  const { values } = await metric.get();
  // prom-client types labels per metric; the status page only reads them.
  return (values as Value[]).filter((v) => v.labels.run === runId);
}

function sumValues(values: Value[]): number {
  return values.reduce((a, v) => a + v.value, 0);
}

/** Cumulative `_bucket` values into per-bucket counts, in bound order. */
function ageHistogram(values: Value[]): RunStats['age'] {
  let count = 0;
  let sum = 0;
  const cumulative: Array<{ le: number; n: number }> = [];
  for (const v of values) {
    if (v.metricName?.endsWith('_sum')) sum = v.value;
    else if (v.metricName?.endsWith('_count')) count = v.value;
    else if (v.metricName?.endsWith('_bucket')) {
      const le = String(v.labels.le);
      cumulative.push({ le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), n: v.value });
    }
  }
  if (cumulative.length === 0) {
    // No group served yet: the same buckets, all empty, so charts keep their axes.
    for (const le of [...AGE_BUCKETS, Number.POSITIVE_INFINITY]) cumulative.push({ le, n: 0 });
  }
  cumulative.sort((a, b) => a.le - b.le);
  let below = 0;
  const buckets = cumulative.map(({ le, n }) => {
    const b: AgeBucket = { le: Number.isFinite(le) ? le : null, count: Math.max(0, n - below) };
    below = n;
    return b;
  });
  return { buckets, count, sum };
}

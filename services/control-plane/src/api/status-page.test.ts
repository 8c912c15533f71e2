import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, TandemError } from '@tandem/common';
import { parseRunSpec } from '@tandem/run-spec';
import { ControlPlaneMetrics } from '../metrics/control-plane-metrics.js';
import type { RunView } from '../runs/run-manager.js';
import { toHttpError } from './http-errors.js';
import { createStatusPage } from './status-page.js';
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from './status-page-html.js';

const spec = parseRunSpec({
  model: { name: 'm' },
  dataset: { source: 'builtin', name: 'arithmetic' },
  reward: { kind: 'numeric' },
  maxSteps: 10,
  async: { maxTrajectoryAgeSteps: 2 },
  algorithm: { batchGroups: 4 },
});

function view(id: string): RunView {
  return {
    id,
    namespace: 'default',
    spec,
    status: {
      phase: 'Running',
      message: '',
      trainerStep: 3,
      policyVersion: 3,
      maxSteps: 10,
      ledger: { admitted: 20, trained: 12, droppedStale: 0, failed: 0, cancelled: 0, tokensTrained: 1200, tokensWasted: 0 },
      queueDepth: 4,
      inFlight: 4,
      generators: { desired: 2, joining: 0, ready: 2, syncing: 0, unhealthy: 0 },
      minGeneratorVersion: 3,
      maxGeneratorVersion: 3,
      createdAt: '',
      updatedAt: '',
      finishedAt: '',
    },
  };
}

/** A fake RunManager that knows run "r1" only. */
const runs = {
  get: async (id: string): Promise<RunView> => {
    if (id !== 'r1') throw new TandemError(ErrorCode.NotFound, `run ${id} not found`);
    return view(id);
  },
};

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

describe('status page', () => {
  it('reports the age histogram per bucket, the run settings and the counters of one run only', async () => {
    const metrics = new ControlPlaneMetrics({ defaultMetrics: false });
    for (const age of [0, 1, 1, 2, 2, 2, 5]) metrics.trajectoryAge.observe({ run: 'r1' }, age);
    metrics.trajectoryAge.observe({ run: 'other' }, 1);
    metrics.generationTokens.inc({ run: 'r1' }, 1500);
    metrics.trainerWait.inc({ run: 'r1' }, 2.5);
    metrics.generatorBusyRatio.set({ run: 'r1', generator: 'gen-1' }, 0.25);
    metrics.generatorBusyRatio.set({ run: 'r1', generator: 'gen-0' }, 0.75);
    metrics.generatorBusyRatio.set({ run: 'other', generator: 'gen-0' }, 1);
    const page = createStatusPage({ runs, registry: metrics.registry, clock: { now: () => 1234, sleep: async () => undefined } });

    const stats = await page.runStats('r1');
    expect(stats.age.count).toBe(7);
    expect(stats.age.sum).toBe(13);
    const counts = Object.fromEntries(stats.age.buckets.map((b) => [String(b.le), b.count]));
    expect(counts).toMatchObject({ '0': 1, '1': 2, '2': 3, '3': 0, '4': 0, '6': 1, '64': 0, null: 0 });
    expect(stats.age.buckets.reduce((a, b) => a + b.count, 0)).toBe(7);
    expect(stats.age.buckets.at(-1)).toEqual({ le: null, count: 0 });
    expect(stats).toMatchObject({
      runId: 'r1',
      simulated: false,
      maxTrajectoryAgeSteps: 2,
      batchGroups: 4,
      capacityGroups: 12,
      totals: { tokensGenerated: 1500, trainerWaitSeconds: 2.5 },
      generatorBusy: [{ generator: 'gen-0', ratio: 0.75 }, { generator: 'gen-1', ratio: 0.25 }],
      sampledAtMs: 1234,
    });
  });

  it('serves /ui and /v1/runs/{id}/stats, leaves other paths to the caller, and maps errors through it', async () => {
    const page = createStatusPage({ runs, registry: new ControlPlaneMetrics({ defaultMetrics: false }).registry });
    server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      page
        .handle(req, res, path, req.method ?? 'GET')
        .then((handled) => {
          if (!handled) res.writeHead(418).end();
        })
        .catch((err: unknown) => {
          const { status, body } = toHttpError(err);
          res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        });
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', () => resolve()));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const ui = await fetch(`${base}/ui`);
    expect(ui.status).toBe(200);
    expect(ui.headers.get('content-security-policy')).toBe(STATUS_PAGE_CSP);
    expect(await ui.text()).toBe(STATUS_PAGE_HTML);
    expect((await fetch(`${base}/v1/runs/r1/stats`)).status).toBe(200);
    expect((await fetch(`${base}/v1/runs/nope/stats`)).status).toBe(404);
    expect((await fetch(`${base}/ui`, { method: 'POST' })).status).toBe(404);
    expect((await fetch(`${base}/v1/runs/r1/stats`, { method: 'DELETE' })).status).toBe(404);
    expect((await fetch(`${base}/v1/runs/r1`)).status).toBe(418);
    expect((await fetch(`${base}/metrics`)).status).toBe(418);
  });

  it('pins its inline script and style by hash and loads nothing from elsewhere', () => {
    const script = /<script>([\s\S]*)<\/script>/.exec(STATUS_PAGE_HTML)?.[1] ?? '';
    expect(script.length).toBeGreaterThan(1000);
    expect(STATUS_PAGE_CSP).toContain(`'sha256-`);
    expect(STATUS_PAGE_CSP).not.toContain('unsafe-inline');
    expect(STATUS_PAGE_HTML).not.toMatch(/(src|href)="(https?:)?\/\//);
    // Data is written with textContent, never parsed as HTML.
    expect(script).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    // The script is valid JavaScript.
    expect(() => new Function(script)).not.toThrow();
  });
});

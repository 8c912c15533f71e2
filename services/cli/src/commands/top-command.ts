import { parseArgs } from 'node:util';
import { ErrorCode, TandemError } from '@tandem/common';
import { columnLines } from './columns.js';
import { intOption } from './options.js';
import { parsePrometheusText, sum, type Sample } from './prometheus-text.js';

export const TOP_USAGE = `usage: tandem top [RUN_ID] [--server URL] [--interval-ms N] [--once]

A live view of all runs, or one run: progress, staleness, utilisation and
throughput, refreshed in place (plain ANSI; works over SSH). q or Ctrl-C quits.
  --server URL     control plane HTTP API (default $TANDEM_SERVER or http://127.0.0.1:8080)
  --token TOKEN    bearer token (default $TANDEM_TOKEN)
  --interval-ms N  refresh period (default 1000)
  --once           print one frame and exit (for scripts)`;

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- API JSON, documented in docs/api.md

interface Previous {
  t: number;
  tokens: Map<string, number>;
  wait: Map<string, number>;
}

/** `tandem top`. */
export async function topCommand(argv: string[], signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      server: { type: 'string', default: process.env.TANDEM_SERVER ?? 'http://127.0.0.1:8080' },
      token: { type: 'string' },
      'interval-ms': { type: 'string', default: '1000' },
      once: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const server = (values.server ?? '').replace(/\/+$/, '');
  const token = values.token ?? (process.env.TANDEM_TOKEN || undefined);
  const interval = intOption('--interval-ms', values['interval-ms'], 100, 60_000);
  const runFilter = positionals[0];
  const tty = process.stdout.isTTY && !values.once;
  let prev: Previous | undefined;
  const quit = new AbortController();
  signal.addEventListener('abort', () => quit.abort(), { once: true });
  if (tty && process.stdin.isTTY) {
    process.stdin.setRawMode(true);
    process.stdin.resume();
    process.stdin.on('data', (d: Buffer) => {
      if (d.toString() === 'q' || d[0] === 3) quit.abort();
    });
  }
  try {
    if (tty) process.stdout.write('\x1b[?25l');
    for (;;) {
      const [runsBody, metricsText] = await Promise.all([get(server, runFilter ? `/v1/runs/${encodeURIComponent(runFilter)}` : '/v1/runs', token), getText(server, '/metrics', token)]);
      const runs: Json[] = runFilter ? [runsBody] : ((runsBody.runs ?? []) as Json[]);
      const samples = parsePrometheusText(metricsText);
      const now = Date.now();
      const frame = render(runs, samples, prev, now, server);
      prev = { t: now, tokens: new Map(runs.map((r) => [r.id, sum(samples, 'tandem_generation_tokens_total', { run: r.id })])), wait: new Map(runs.map((r) => [r.id, sum(samples, 'tandem_trainer_wait_seconds_total', { run: r.id })])) };
      process.stdout.write(tty ? `\x1b[H\x1b[2J${frame}` : frame);
      if (values.once || quit.signal.aborted) return 0;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, interval);
        quit.signal.addEventListener('abort', () => {
          clearTimeout(t);
          resolve();
        }, { once: true });
      });
      if (quit.signal.aborted) return 0;
    }
  } finally {
    if (tty) process.stdout.write('\x1b[?25h');
    if (tty && process.stdin.isTTY) process.stdin.setRawMode(false);
    process.stdin.pause();
  }
}

function render(runs: Json[], samples: Sample[], prev: Previous | undefined, now: number, server: string): string {
  const lines = [`tandem top — ${server} — ${new Date(now).toISOString()} — ${runs.length} run(s)`, ''];
  const header = ['RUN', 'PHASE', 'STEP', 'VER', 'K', 'AGE mean/max', 'QUEUE', 'INFLIGHT', 'GEN ready/want', 'GEN BUSY', 'TRAINER BUSY', 'TOK/S', 'TRAINED', 'DROPPED', 'FAILED', 'CANCELLED'];
  const rows: string[][] = runs.map((r) => {
    const s = r.status ?? {};
    const l = s.ledger ?? {};
    const g = s.generators ?? {};
    const id = String(r.id);
    const ageCount = sum(samples, 'tandem_trajectory_age_steps_count', { run: id });
    const ageSum = sum(samples, 'tandem_trajectory_age_steps_sum', { run: id });
    const maxAge = maxBucket(samples, id, ageCount);
    const busy = samples.filter((x) => x.name === 'tandem_generator_busy_ratio' && x.labels.run === id);
    const genBusy = busy.length ? busy.reduce((a, b) => a + b.value, 0) / busy.length : undefined;
    const tokens = sum(samples, 'tandem_generation_tokens_total', { run: id });
    const wait = sum(samples, 'tandem_trainer_wait_seconds_total', { run: id });
    const dt = prev ? (now - prev.t) / 1000 : 0;
    const rate = prev && dt > 0 ? Math.max(0, (tokens - (prev.tokens.get(id) ?? tokens)) / dt) : undefined;
    const trainerBusy = prev && dt > 0 && s.phase === 'Running' ? Math.max(0, Math.min(1, 1 - (wait - (prev.wait.get(id) ?? wait)) / dt)) : undefined;
    return [
      id,
      s.phase ?? '',
      `${s.trainerStep ?? 0}/${s.maxSteps ?? 0}`,
      String(s.policyVersion ?? 0),
      String(r.spec?.async?.maxTrajectoryAgeSteps ?? ''),
      ageCount > 0 ? `${(ageSum / ageCount).toFixed(2)}/${maxAge}` : '-',
      String(s.queueDepth ?? 0),
      String(s.inFlight ?? 0),
      `${(g.ready ?? 0) + (g.syncing ?? 0)}/${g.desired ?? 0}`,
      pct(genBusy),
      pct(trainerBusy),
      rate === undefined ? '-' : rate >= 1000 ? `${(rate / 1000).toFixed(1)}k` : rate.toFixed(0),
      String(l.trained ?? 0),
      String(l.droppedStale ?? 0),
      String(l.failed ?? 0),
      String(l.cancelled ?? 0),
    ];
  });
  lines.push(...columnLines(header, rows));
  if (runs.length === 0) lines.push('(no runs)');
  return `${lines.join('\n')}\n`;
}

function maxBucket(samples: Sample[], run: string, count: number): string {
  if (count === 0) return '-';
  const buckets = samples
    .filter((s) => s.name === 'tandem_trajectory_age_steps_bucket' && s.labels.run === run && s.labels.le !== '+Inf')
    .map((s) => ({ le: Number(s.labels.le), n: s.value }))
    .sort((a, b) => a.le - b.le);
  const b = buckets.find((x) => x.n >= count);
  return b ? String(b.le) : '>64';
}

function pct(x: number | undefined): string {
  return x === undefined ? '-' : `${Math.round(x * 100)}%`;
}

async function get(server: string, path: string, token: string | undefined): Promise<Json> {
  const text = await getText(server, path, token);
  const body = JSON.parse(text) as Json;
  if (body.error) throw new TandemError((body.error.code as ErrorCode) ?? ErrorCode.Internal, String(body.error.message));
  return body;
}

async function getText(server: string, path: string, token: string | undefined): Promise<string> {
  try {
    const res = await fetch(`${server}${path}`, { signal: AbortSignal.timeout(5000), ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}) });
    return await res.text();
  } catch (err) {
    throw new TandemError(ErrorCode.Unavailable, `cannot reach the control plane at ${server}: ${(err as Error).message}`);
  }
}

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@tandem/testkit';
import { waitUntil } from './observed-run.js';

/** Debian's prometheus package installs both here. */
export const PROMETHEUS_BIN = '/usr/bin/prometheus';
export const PROMTOOL_BIN = '/usr/bin/promtool';

/**
 * Fails (never skips) when Debian's prometheus package is missing: these
 * tests are how the alert rules and the exposition are checked, and
 * scripts/setup.sh installs the package.
 */
export function requirePrometheus(): void {
  const missing = [PROMETHEUS_BIN, PROMTOOL_BIN].filter((p) => !existsSync(p));
  if (missing.length > 0) {
    throw new Error(`${missing.join(' and ')} not found: install Debian's prometheus package (apt-get install prometheus; scripts/setup.sh does it)`);
  }
}

/** A prometheus server on 127.0.0.1 with its storage in a temporary directory. */
export interface PrometheusServer {
  url: string;
  process: ChildProcess;
  /** Everything it wrote to stderr so far (its log). */
  log(): string;
  /** SIGTERM, then SIGKILL after 10 s; removes the storage directory. */
  stop(): Promise<void>;
}

/**
 * Starts prometheus with `configYaml` (the config file's contents) and waits,
 * at most `readyTimeoutMs`, until /-/ready answers.
 */
export async function startPrometheus(configYaml: string, options: { readyTimeoutMs: number }): Promise<PrometheusServer> {
  requirePrometheus();
  const dir = await mkdtemp(join(tmpdir(), 'tandem-prometheus-'));
  const configFile = join(dir, 'prometheus.yml');
  await writeFile(configFile, configYaml);
  const port = await freePort();
  const child = spawn(
    PROMETHEUS_BIN,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--web.console.templates=', // Debian's defaults point into /etc; none needed
      '--web.console.libraries=',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-20_000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // A crashed test run must not leave prometheus behind.
  const onExit = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', onExit);
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    process.off('exit', onExit);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitUntil(
      'prometheus to be ready',
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${stderr.slice(-2000)}`);
        const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2000) });
        return res.ok ? true : undefined;
      },
      { timeoutMs: options.readyTimeoutMs, last: () => stderr.slice(-2000) },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, process: child, log: () => stderr, stop };
}

/** One sample of an instant query. */
export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

/** Runs an instant query; throws with Prometheus's error for a bad expression. */
export async function promQuery(url: string, query: string, atSeconds?: number): Promise<PromSample[]> {
  const params = new URLSearchParams({ query });
  if (atSeconds !== undefined) params.set('time', String(atSeconds));
  const res = await fetch(`${url}/api/v1/query?${params}`, { signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
  if (body.status !== 'success' || !body.data) throw new Error(`query ${query} failed: ${body.error ?? res.status}`);
  if (body.data.resultType === 'scalar') {
    const v = body.data.result as unknown as [number, string];
    return [{ metric: {}, value: Number(v[1]) }];
  }
  return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
}

/** GET a Prometheus API path and return its `data`. */
export async function promApi<T>(url: string, path: string): Promise<T> {
  const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { status: string; error?: string; data: T };
  if (body.status !== 'success') throw new Error(`${path} failed: ${body.error ?? res.status}`);
  return body.data;
}

/** Runs promtool (bounded at 60 s) and returns its exit code and output. */
export function promtool(args: string[], options: { input?: string; cwd?: string } = {}): { code: number | null; output: string } {
  requirePrometheus();
  const r = spawnSync(PROMTOOL_BIN, args, { input: options.input, cwd: options.cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

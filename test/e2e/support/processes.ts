import { fileURLToPath } from 'node:url';
import { startService, type ServiceProcess, type StartServiceOptions } from '@tandem/testkit';

/** Built entry points of the services, from the repository root. */
const root = fileURLToPath(new URL('../../../', import.meta.url));
export const SCRIPTS = {
  controlPlane: `${root}services/control-plane/dist/main.js`,
  generator: `${root}services/simulator/dist/generator-main.js`,
  trainer: `${root}services/simulator/dist/trainer-main.js`,
  rolloutWorker: `${root}services/rollout-worker/dist/main.js`,
} as const;

/**
 * Every process a test file started, so that none outlives it: `killAll`
 * in afterAll/afterEach, and a synchronous SIGKILL of the survivors when
 * the test process itself exits (a crashed or interrupted run).
 */
export class ProcessBook {
  private readonly all = new Set<ServiceProcess>();
  private readonly onExit = (): void => {
    for (const p of this.all) if (alive(p)) p.child.kill('SIGKILL');
  };

  constructor() {
    process.once('exit', this.onExit);
  }

  async start(options: StartServiceOptions): Promise<ServiceProcess> {
    const p = await startService(options);
    this.all.add(p);
    return p;
  }

  /** SIGKILLs every process still running and waits for each exit. */
  async killAll(): Promise<void> {
    const running = [...this.all].filter(alive);
    for (const p of running) p.child.kill('SIGKILL');
    await Promise.all(running.map((p) => p.exited));
    this.all.clear();
  }

  /** For afterAll of the whole file. */
  async dispose(): Promise<void> {
    await this.killAll();
    process.off('exit', this.onExit);
  }
}

/** Whether the process has not exited yet. */
export function alive(p: ServiceProcess): boolean {
  return p.child.exitCode === null && p.child.signalCode === null;
}

/** Rejects with `what` when `promise` takes longer than `ms` (a limit, not an assertion on speed). */
export async function within<T>(promise: Promise<T>, ms: number, what: string | (() => string)): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${typeof what === 'string' ? what : what()} (limit ${ms} ms)`)), ms);
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls `probe` until it returns something other than undefined; bounded in
 * time (`timeoutMs`) and so in count. The failure names what was awaited
 * and the last value seen.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  options: { timeoutMs: number; intervalMs?: number; describe?: () => string },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  const interval = options.intervalMs ?? 100;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, interval));
  }
  const detail = options.describe?.() ?? (lastError instanceof Error ? lastError.message : '');
  throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}${detail ? `: ${detail}` : ''}`);
}

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** A service started as a real child process. */
export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  /** The first JSON line the service printed with `event: "listening"` (or the ready event asked for). */
  ready: Record<string, unknown>;
  /** Every JSON line printed on stdout so far. */
  events: Array<Record<string, unknown>>;
  /** stderr so far (logs), for failure messages. */
  logs(): string;
  /** Resolves with the exit code (or signal) when the process ends. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends a signal and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Options of {@link startService}. */
export interface StartServiceOptions {
  name: string;
  /** Node script to run (a built dist/ main). */
  script: string;
  args?: string[];
  env?: Record<string, string>;
  /** The stdout JSON event that means ready. @default 'listening' */
  readyEvent?: string | null;
  /** @default 30000 */
  timeoutMs?: number;
}

/**
 * Starts `node script` and waits until it prints its ready event as a JSON
 * line on stdout. Fails with the service's stderr when it exits first.
 */
export async function startService(options: StartServiceOptions): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [options.script, ...(options.args ?? [])], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
  });
  const events: Array<Record<string, unknown>> = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const readyEvent = options.readyEvent === undefined ? 'listening' : options.readyEvent;
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      let obj: unknown;
      try {
        obj = JSON.parse(line);
      } catch {
        return;
      }
      if (typeof obj !== 'object' || obj === null) return;
      const event = obj as Record<string, unknown>;
      events.push(event);
      if (readyEvent === null || event.event === readyEvent) resolve(event);
    });
    if (readyEvent === null) resolve({});
    exited.then(({ code, signal }) =>
      reject(new Error(`${options.name} exited (${code ?? signal}) before it was ready:\n${stderr.slice(-3000)}`)),
    );
    setTimeout(() => reject(new Error(`${options.name} not ready within ${options.timeoutMs ?? 30_000} ms:\n${stderr.slice(-3000)}`)), options.timeoutMs ?? 30_000).unref();
  });
  const readyValue = await ready.catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
  return {
    name: options.name,
    child,
    ready: readyValue,
    events,
    logs: () => stderr,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

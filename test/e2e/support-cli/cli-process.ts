import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startService, type ServiceProcess } from '@tandem/testkit';

/** Root of the repository (tests run the built dist/ mains). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The `tandem` CLI as built by `npx tsc -b`. */
export const CLI_MAIN = fileURLToPath(new URL('../../../services/cli/dist/main.js', import.meta.url));

/** Fails with a clear message when the CLI has not been built. */
export function assertCliBuilt(): void {
  if (!existsSync(CLI_MAIN)) throw new Error(`${CLI_MAIN} is missing: build first with 'npx tsc -b'`);
}

/** How a finished `tandem` command ended and what it printed. */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Options of {@link runCli}. */
export interface RunCliOptions {
  /** Upper bound on the command; it gets SIGINT, then SIGKILL 10 s later. @default 60000 */
  timeoutMs?: number;
  env?: Record<string, string>;
}

/**
 * Runs `node services/cli/dist/main.js ...args` to completion. A command
 * past `timeoutMs` is interrupted (SIGINT, so that it stops what it
 * started) and the promise rejects with its stderr.
 */
export function runCli(args: string[], options: RunCliOptions = {}): Promise<CliResult> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, TANDEM_LOG_LEVEL: 'warn', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGINT');
      killTimer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      if (timedOut) {
        reject(new Error(`tandem ${args.join(' ')} did not finish within ${timeoutMs} ms; stderr:\n${stderr.slice(-4000)}`));
        return;
      }
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A `tandem` command still running, with its output so far. */
export interface RunningCli {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when it has exited and its output is complete. */
  exited: Promise<CliResult>;
}

/** Starts `tandem ...args` without waiting for it (for commands that stream, like `runs watch`). */
export function startCli(args: string[], env: Record<string, string> = {}): RunningCli {
  const child = spawn(process.execPath, [CLI_MAIN, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, TANDEM_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** A running `tandem up` (control plane with the local runtime). */
export interface TandemUp {
  httpUrl: string;
  grpcAddress: string;
  service: ServiceProcess;
  /** Ctrl-C, as a user would stop it; resolves when it has exited. */
  stop(): Promise<void>;
}

/** Starts `tandem up` on free ports against `redisUrl` and waits for its `listening` line. */
export async function startTandemUp(redisUrl: string): Promise<TandemUp> {
  const service = await startService({
    name: 'tandem up',
    script: CLI_MAIN,
    args: ['up', '--http-port', '0', '--grpc-port', '0', '--redis-url', redisUrl],
    env: { TANDEM_LOG_LEVEL: 'warn' },
    timeoutMs: 90_000,
  });
  const { httpUrl, grpcAddress } = service.ready;
  if (typeof httpUrl !== 'string' || typeof grpcAddress !== 'string') {
    await service.stop('SIGKILL');
    throw new Error(`tandem up printed an unexpected listening line: ${JSON.stringify(service.ready)}`);
  }
  return { httpUrl, grpcAddress, service, stop: () => service.stop('SIGINT') };
}

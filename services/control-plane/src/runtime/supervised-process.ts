import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { PARENT_PIPE_ENV, type Logger } from '@tandem/common';

/** Options of a {@link SupervisedProcess}. */
export interface SupervisedProcessOptions {
  /** Role and index, e.g. `generator-2`. */
  name: string;
  script: string;
  args: string[];
  env: Record<string, string>;
  log: Logger;
  /** Called with each JSON line the process prints on stdout. */
  onEvent?: (event: Record<string, unknown>) => void;
  /** Called when the process exits by itself (not through `stop`). */
  onExit?: (code: number | null, signal: NodeJS.Signals | null) => void;
}

/**
 * One child process of the local runtime. Its stderr (pino logs) goes to
 * the control plane's log at debug level, tagged with the process name;
 * its stdout JSON lines are events.
 */
export class SupervisedProcess {
  readonly name: string;
  private child: ChildProcess | undefined;
  private stopping = false;
  private readonly options: SupervisedProcessOptions;
  private lastStderr: string[] = [];

  constructor(options: SupervisedProcessOptions) {
    this.options = options;
    this.name = options.name;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Last lines it wrote to stderr (for failure messages). */
  tail(): string {
    return this.lastStderr.join('\n');
  }

  /** Starts it; resolves with the first stdout event matching `readyEvent` (or at once). */
  start(readyEvent?: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    const { script, args, env, log } = this.options;
    this.stopping = false;
    // Own process group: a terminal's Ctrl-C reaches only the control plane,
    // which stops children in order. The stdin pipe tells the child when
    // the control plane is gone (see watchParent).
    const child = spawn(process.execPath, [script, ...args], {
      env: { ...process.env, ...env, [PARENT_PIPE_ENV]: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    this.child = child;
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
      this.lastStderr.push(line);
      if (this.lastStderr.length > 20) this.lastStderr.shift();
      log.debug({ process: this.name, line }, 'child log');
    });
    return new Promise((resolve, reject) => {
      let ready = readyEvent === undefined;
      if (ready) resolve({});
      const timer = setTimeout(() => {
        if (!ready) reject(new Error(`${this.name} did not start within ${timeoutMs} ms: ${this.tail()}`));
      }, timeoutMs);
      timer.unref();
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        let event: Record<string, unknown>;
        try {
          const parsed: unknown = JSON.parse(line);
          if (typeof parsed !== 'object' || parsed === null) return;
          event = parsed as Record<string, unknown>;
        } catch {
          return;
        }
        if (!ready && event.event === readyEvent) {
          ready = true;
          clearTimeout(timer);
          resolve(event);
        }
        this.options.onEvent?.(event);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (!ready) reject(new Error(`${this.name} exited (${code ?? signal}) before it was ready: ${this.tail()}`));
        if (!this.stopping) this.options.onExit?.(code, signal);
      });
    });
  }

  /** Stops it (SIGTERM, then SIGKILL after `graceMs`). */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Kills it at once, as a crash would (tests, chaos). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.child?.kill(signal);
  }
}

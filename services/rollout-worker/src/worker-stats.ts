import type { Redis } from 'ioredis';
import type { Logger } from '@tandem/common';

/**
 * Generation counters of one worker, flushed to the run's `stats` hash in
 * Redis once a second (one pipelined HINCRBY batch), where the control
 * plane reads them for /metrics. Keeping the source of truth in Redis lets
 * any number of workers come and go without losing counts.
 */
export class WorkerStats {
  private pending = new Map<string, number>();
  private readonly key: string;
  private readonly redis: Pick<Redis, 'pipeline'>;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;

  constructor(redis: Pick<Redis, 'pipeline'>, statsKey: string, log: Logger) {
    this.redis = redis;
    this.key = statsKey;
    this.log = log;
  }

  /** Counts one completions request. */
  request(generator: string, code: string, tokens: number, durationMs: number): void {
    this.add(`requests:${code}`, 1);
    this.add(`tokens:${generator}`, tokens);
    this.add('tokens', tokens);
    this.add(`request_ms:${generator}`, Math.round(durationMs));
  }

  private add(field: string, by: number): void {
    this.pending.set(field, (this.pending.get(field) ?? 0) + by);
  }

  start(intervalMs = 1000): void {
    this.timer ??= setInterval(() => {
      this.flush().catch((err: unknown) => this.log.warn({ err }, 'stats flush failed'));
    }, intervalMs);
    this.timer.unref();
  }

  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const p = this.redis.pipeline();
    for (const [field, by] of batch) p.hincrby(this.key, field, by);
    await p.exec();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}

import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import { tokenDigest } from './tokens-file.js';

/**
 * Per-run secrets: one random token per run, minted when the run starts.
 * The run's trainer presents it to TrainerService (`authorization: Bearer`),
 * and its rollout workers use it as the password of the run's Redis user
 * (redis-run-users.ts), so a pod of one run can act on that run only.
 *
 * Stored in one hash outside every run's hash tag, so a run's own Redis
 * user (restricted to its run's keys) cannot read any run's token.
 */
export class RunCredentials {
  private readonly redis: Pick<Redis, 'hsetnx' | 'hget' | 'hdel'>;
  private readonly key: string;
  /** Digests of tokens already read, by run (they never change while a run exists). */
  private readonly digests = new Map<string, Buffer>();

  constructor(options: { redis: Pick<Redis, 'hsetnx' | 'hget' | 'hdel'>; keyPrefix: string }) {
    this.redis = options.redis;
    this.key = `${options.keyPrefix}:auth:run-credentials`;
  }

  /** The run's token, minted on first call (idempotent: a restarted control plane gets the same one). */
  async issue(runId: string): Promise<string> {
    await this.redis.hsetnx(this.key, runId, randomBytes(32).toString('base64url'));
    return (await this.redis.hget(this.key, runId)) as string;
  }

  /** The run's token, if one was issued. */
  async get(runId: string): Promise<string | undefined> {
    return (await this.redis.hget(this.key, runId)) ?? undefined;
  }

  /** Whether `token` is the run's token (constant-time on digests). */
  async verify(runId: string, token: string): Promise<boolean> {
    let digest = this.digests.get(runId);
    if (!digest) {
      const stored = await this.get(runId);
      if (stored === undefined) return false;
      digest = tokenDigest(stored);
      this.digests.set(runId, digest);
    }
    return timingSafeEqual(digest, tokenDigest(token));
  }

  /** Forgets the run's token (its run record is being deleted). */
  async revoke(runId: string): Promise<void> {
    this.digests.delete(runId);
    await this.redis.hdel(this.key, runId);
  }
}

import type { Redis } from 'ioredis';
import { TandemError } from '@tandem/common';
import { runKeys } from './keys.js';

/**
 * Membership state of one generator in a run:
 * - `joining`: registered, has not received the current weights yet; never
 *   serves (a generator serves only once it holds the current version);
 * - `ready`: holds `policyVersion` and serves requests;
 * - `syncing`: taking part in a weight sync; in-flight requests continue
 *   when the run uses in-flight weight updates (vLLM pause mode "keep");
 * - `unhealthy`: missed a sync deadline or failed health checks; out of the
 *   weight group until it rejoins (as `joining`) at a sync boundary.
 */
export type GeneratorState = 'joining' | 'ready' | 'syncing' | 'unhealthy';

/** One generator (a vLLM server replica) of a run. */
export interface GeneratorRecord {
  id: string;
  /** Base URL of its OpenAI-compatible server, e.g. http://10.0.0.5:8000. */
  url: string;
  state: GeneratorState;
  /** Policy version its weights hold (−1 until its first sync). */
  policyVersion: number;
  /** Epoch ms of the last change. */
  updatedAtMs: number;
  /** Why it is unhealthy, when it is. */
  reason?: string;
}

/**
 * The generators of one run, in Redis (hash `generators` under the run's
 * hash tag). The weight-sync coordinator writes it; rollout workers read it
 * to choose generators. Changes publish on the run's events channel.
 */
export class GeneratorRegistry {
  private readonly redis: Redis;
  private readonly key: string;
  private readonly events: string;

  constructor(redis: Redis, runId: string, keyPrefix = 'tandem') {
    const keys = runKeys(runId, keyPrefix);
    this.redis = redis;
    this.key = `${keys.bullPrefix}:generators`;
    this.events = keys.events;
  }

  async list(): Promise<GeneratorRecord[]> {
    const all = await this.redis.hgetall(this.key);
    return Object.values(all)
      .map((v) => JSON.parse(v) as GeneratorRecord)
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  async get(id: string): Promise<GeneratorRecord | undefined> {
    const v = await this.redis.hget(this.key, id);
    return v === null ? undefined : (JSON.parse(v) as GeneratorRecord);
  }

  /** Adds a generator as `joining`, or re-adds a known one as `joining`. */
  async register(id: string, url: string, nowMs: number): Promise<GeneratorRecord> {
    if (!/^[A-Za-z0-9._-]{1,128}$/.test(id)) {
      throw TandemError.invalid('generator', [{ path: 'id', message: 'letters, digits, ".", "_" and "-", at most 128' }]);
    }
    try {
      const u = new URL(url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
    } catch {
      throw TandemError.invalid('generator', [{ path: 'url', message: `not an http(s) URL: ${url}` }]);
    }
    const record: GeneratorRecord = { id, url: url.replace(/\/+$/, ''), state: 'joining', policyVersion: -1, updatedAtMs: nowMs };
    await this.put(record);
    return record;
  }

  /** Updates fields of a generator; no-op when it is gone. */
  async update(id: string, fields: Partial<Omit<GeneratorRecord, 'id'>>): Promise<GeneratorRecord | undefined> {
    const current = await this.get(id);
    if (!current) return undefined;
    const next: GeneratorRecord = { ...current, ...fields };
    if (fields.state !== undefined && fields.state !== 'unhealthy') delete next.reason;
    await this.put(next);
    return next;
  }

  async remove(id: string): Promise<boolean> {
    const removed = (await this.redis.hdel(this.key, id)) > 0;
    if (removed) await this.redis.publish(this.events, 'generators');
    return removed;
  }

  private async put(record: GeneratorRecord): Promise<void> {
    await this.redis.hset(this.key, record.id, JSON.stringify(record));
    await this.redis.publish(this.events, 'generators');
  }
}

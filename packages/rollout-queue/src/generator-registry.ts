import type { RedisClient } from './redis-connection.js';
import { TandemError } from '@tandem/common';
import { runKeys } from './keys.js';
import { scripts, type RolloutRedis } from './lua-script.js';

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

/** `a.localeCompare(b)`, without building a collator per comparison. */
const byId = new Intl.Collator().compare;

interface PendingUpdate {
  id: string;
  fields: Partial<Omit<GeneratorRecord, 'id'>>;
  expectedUrl: string | undefined;
  resolve: (record: GeneratorRecord | undefined) => void;
  reject: (err: unknown) => void;
}

/**
 * The generators of one run, in Redis (hash `generators` under the run's
 * hash tag). The weight-sync coordinator writes it; rollout workers read it
 * to choose generators. Changes publish on the run's events channel.
 *
 * Updates issued in the same tick (a sync marks every generator `syncing`,
 * then `ready`, with one `update` each) are written together: one HMGET,
 * one HSET of all changed records and one wake-up PUBLISH, instead of
 * HGET + HSET + PUBLISH per generator, which made a sync of 1,024
 * generators spend most of its overhead in Redis round trips. Each record
 * is merged and stored exactly as a single update would store it.
 */
export class GeneratorRegistry {
  private readonly redis: RedisClient;
  private readonly key: string;
  private readonly events: string;
  private pending: PendingUpdate[] = [];

  constructor(redis: RedisClient, runId: string, keyPrefix = 'tandem') {
    const keys = runKeys(runId, keyPrefix);
    this.redis = redis;
    this.key = `${keys.bullPrefix}:generators`;
    this.events = keys.events;
  }

  async list(): Promise<GeneratorRecord[]> {
    const all = await this.redis.hgetall(this.key);
    return Object.values(all)
      .map((v) => JSON.parse(v) as GeneratorRecord)
      .sort((a, b) => byId(a.id, b.id));
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

  /**
   * Updates fields of a generator; no-op (undefined) when it is gone, when
   * `expectedUrl` is given and it has been re-registered at another URL
   * since, or when it changed concurrently (compare-and-set).
   */
  update(id: string, fields: Partial<Omit<GeneratorRecord, 'id'>>, expectedUrl?: string): Promise<GeneratorRecord | undefined> {
    return new Promise((resolve, reject) => {
      if (this.pending.length === 0) process.nextTick(() => void this.flush());
      this.pending.push({ id, fields, expectedUrl, resolve, reject });
    });
  }

  /** Writes the updates issued since the last flush, in order. */
  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    try {
      const ids = [...new Set(batch.map((u) => u.id))];
      const stored = await this.redis.hmget(this.key, ...ids);
      const current = new Map<string, GeneratorRecord>();
      const read = new Map<string, string>();
      ids.forEach((id, i) => {
        const v = stored[i];
        if (v !== null && v !== undefined) {
          current.set(id, JSON.parse(v) as GeneratorRecord);
          read.set(id, v);
        }
      });
      const results: Array<GeneratorRecord | undefined> = [];
      for (const u of batch) {
        const record = current.get(u.id);
        // An update aimed at one process of a generator does not apply to a
        // later one (re-registered with another URL).
        if (!record || (u.expectedUrl !== undefined && record.url !== u.expectedUrl)) {
          results.push(undefined);
          continue;
        }
        // Later updates of the same generator in the batch build on earlier ones.
        const next: GeneratorRecord = { ...record, ...u.fields };
        if (u.fields.state !== undefined && u.fields.state !== 'unhealthy') delete next.reason;
        current.set(u.id, next);
        results.push(next);
      }
      const changed = [...new Set(batch.filter((_, i) => results[i] !== undefined).map((u) => u.id))];
      let lost = new Set<string>();
      if (changed.length > 0) {
        const triples = changed.flatMap((id) => [id, read.get(id) as string, JSON.stringify(current.get(id))]);
        const written = Number(await scripts.casGenerators.run(this.redis as unknown as RolloutRedis, [this.key], [this.events, ...triples]));
        if (written < changed.length) {
          // Someone changed or removed a record since we read it: those
          // updates lose (the newer state wins), and say so by returning undefined.
          const after = await this.redis.hmget(this.key, ...changed);
          lost = new Set(changed.filter((id, i) => after[i] !== JSON.stringify(current.get(id))));
        }
      }
      batch.forEach((u, i) => u.resolve(lost.has(u.id) ? undefined : results[i]));
    } catch (err) {
      for (const u of batch) u.reject(err);
    }
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

import type { RedisClient } from './redis-connection.js';
import type { RunSpec } from '@tandem/run-spec';

/** Lifecycle phase of a run. */
export type RunPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Cancelled';

/** Phases a run never leaves. */
export const TERMINAL_PHASES: ReadonlySet<RunPhase> = new Set<RunPhase>(['Succeeded', 'Failed', 'Cancelled']);

/** What the control plane keeps about a run besides its queue. */
export interface RunRecord {
  id: string;
  /** The namespace the run belongs to (API authorization); absent on runs from before namespaces, which are `default`'s. */
  namespace?: string;
  spec: RunSpec;
  phase: RunPhase;
  message: string;
  createdAt: string;
  updatedAt: string;
  finishedAt: string;
}

/**
 * Run records in Redis: one hash per run under the run's hash tag, and a
 * sorted set of run ids by creation time for listing. The two live in
 * different Redis Cluster slots, so they are written by separate commands,
 * never in one MULTI (CROSSSLOT): a record is complete before its id is
 * listed, and unlisted before it is deleted.
 */
export class RunRecordStore {
  private readonly redis: RedisClient;
  private readonly prefix: string;

  constructor(redis: RedisClient, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
  }

  private key(id: string): string {
    return `${this.prefix}:{${id}}:record`;
  }

  private get index(): string {
    return `${this.prefix}:runs`;
  }

  /** Creates a record; false when the id is taken. */
  async create(record: RunRecord): Promise<boolean> {
    const created = await this.redis.hsetnx(this.key(record.id), 'id', record.id);
    if (created === 0) return false;
    await this.redis.hset(this.key(record.id), toHash(record));
    await this.redis.zadd(this.index, Date.parse(record.createdAt), record.id);
    return true;
  }

  async get(id: string): Promise<RunRecord | undefined> {
    const h = await this.redis.hgetall(this.key(id));
    if (h.id === undefined || h.spec === undefined) return undefined;
    return {
      id: h.id,
      ...(h.namespace === undefined ? {} : { namespace: h.namespace }),
      spec: JSON.parse(h.spec) as RunSpec,
      phase: (h.phase ?? 'Pending') as RunPhase,
      message: h.message ?? '',
      createdAt: h.createdAt ?? '',
      updatedAt: h.updatedAt ?? '',
      finishedAt: h.finishedAt ?? '',
    };
  }

  /** Run ids, oldest first. */
  async ids(): Promise<string[]> {
    return this.redis.zrange(this.index, 0, -1);
  }

  async update(id: string, fields: Partial<Pick<RunRecord, 'phase' | 'message' | 'updatedAt' | 'finishedAt'>>): Promise<void> {
    await this.redis.hset(this.key(id), fields);
  }

  /** Replaces the stored spec (desired state changes such as scaling). */
  async updateSpec(id: string, spec: RunSpec): Promise<void> {
    await this.redis.hset(this.key(id), 'spec', JSON.stringify(spec));
  }

  async delete(id: string): Promise<void> {
    await this.redis.zrem(this.index, id);
    await this.redis.del(this.key(id));
  }
}

function toHash(r: RunRecord): Record<string, string> {
  return {
    id: r.id,
    ...(r.namespace === undefined ? {} : { namespace: r.namespace }),
    spec: JSON.stringify(r.spec),
    phase: r.phase,
    message: r.message,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    finishedAt: r.finishedAt,
  };
}

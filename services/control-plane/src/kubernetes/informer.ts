import type { Clock, Logger } from '@tandem/common';
import { isGone, type KubeApi } from './kube-client.js';
import type { KubeObject, ResourceType, WatchEvent } from './resources.js';

/**
 * A list-then-watch cache of one kind in one namespace, with the semantics
 * of kubernetes-client/javascript's `cache.ts` and client-go's reflector:
 *
 * - list, then watch from the list's resourceVersion with bookmarks;
 * - a watch that ends (server timeout, dropped connection) resumes from the
 *   last resourceVersion seen; 410 Gone (too old) relists;
 * - errors back off exponentially (capped), through an injected clock, so
 *   tests do not sleep;
 * - a watchdog ends a watch that has delivered nothing — not even a
 *   bookmark — for `stallTimeoutMs` (a silently stalled TCP stream looks
 *   healthy to the socket), and the informer resumes.
 */

/** What changed. */
export type InformerEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** Options of an {@link Informer}. */
export interface InformerOptions<T extends KubeObject> {
  api: KubeApi;
  type: ResourceType;
  namespace: string;
  labelSelector?: string;
  clock: Clock;
  log: Logger;
  /** Called for each change after the cache is updated. */
  onEvent: (type: InformerEventType, object: T, old: T | undefined) => void;
  /** First backoff after an error. @default 500 */
  initialBackoffMs?: number;
  /** Backoff cap. @default 30000 */
  maxBackoffMs?: number;
  /** A watch silent for this long is restarted. @default 120000 */
  stallTimeoutMs?: number;
  /** How often the watchdog looks. @default stallTimeoutMs / 4 */
  watchdogIntervalMs?: number;
  /** Server-side watch timeout. @default 300 */
  watchTimeoutSeconds?: number;
}

/** Counters for tests and metrics. */
export interface InformerStats {
  lists: number;
  watches: number;
  relistsAfterGone: number;
  errors: number;
  stalls: number;
}

class StallError extends Error {
  override readonly name = 'StallError';
}

export class Informer<T extends KubeObject> {
  readonly stats: InformerStats = { lists: 0, watches: 0, relistsAfterGone: 0, errors: 0, stalls: 0 };
  private readonly o: InformerOptions<T>;
  private readonly cache = new Map<string, T>();
  private resourceVersion = '';
  private synced = false;
  private syncWaiters: Array<() => void> = [];
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(options: InformerOptions<T>) {
    this.o = options;
  }

  /** Starts listing and watching; returns at once. */
  start(): void {
    if (this.loop) return;
    this.controller = new AbortController();
    this.loop = this.run(this.controller.signal);
  }

  async stop(): Promise<void> {
    this.controller?.abort(new Error('informer stopped'));
    await this.loop;
    this.loop = undefined;
    this.controller = undefined;
  }

  /** Whether the first list has completed. */
  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves after the first list. */
  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get(namespace: string, name: string): T | undefined {
    return this.cache.get(`${namespace}/${name}`);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  private async run(signal: AbortSignal): Promise<void> {
    let needList = true;
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.relist();
          needList = false;
        }
        const started = this.o.clock.now();
        const delivered = await this.watchOnce(signal);
        // A watch the server ended normally resumes at once, unless it ends
        // at once over and over (a misbehaving proxy): then back off.
        if (delivered === 0 && this.o.clock.now() - started < 1000) failures++;
        else failures = 0;
        if (failures > 0) await this.backoff(failures, signal);
      } catch (err) {
        if (signal.aborted) break;
        if (isGone(err)) {
          this.stats.relistsAfterGone++;
          this.o.log.info({ kind: this.o.type.kind, resourceVersion: this.resourceVersion }, 'watch resourceVersion too old (410): relisting');
          needList = true;
          continue;
        }
        if (err instanceof StallError) {
          this.stats.stalls++;
          this.o.log.warn({ kind: this.o.type.kind, stallTimeoutMs: this.stallTimeoutMs }, 'watch delivered nothing for too long: restarting it');
          continue;
        }
        this.stats.errors++;
        failures++;
        this.o.log.warn({ err, kind: this.o.type.kind, failures }, 'list/watch failed; backing off');
        await this.backoff(failures, signal);
      }
    }
  }

  private get stallTimeoutMs(): number {
    return this.o.stallTimeoutMs ?? 120_000;
  }

  private async backoff(failures: number, signal: AbortSignal): Promise<void> {
    const initial = this.o.initialBackoffMs ?? 500;
    const max = this.o.maxBackoffMs ?? 30_000;
    const delay = Math.min(max, initial * 2 ** Math.min(failures - 1, 30));
    await this.o.clock.sleep(delay, signal).catch(() => undefined);
  }

  private async relist(): Promise<void> {
    const list = await this.o.api.list<T>(this.o.type, this.o.namespace, this.o.labelSelector ? { labelSelector: this.o.labelSelector } : {});
    this.stats.lists++;
    const seen = new Set<string>();
    for (const item of list.items) {
      const key = keyOf(item);
      seen.add(key);
      const old = this.cache.get(key);
      this.cache.set(key, item);
      if (!old) this.o.onEvent('ADDED', item, undefined);
      else if (old.metadata.resourceVersion !== item.metadata.resourceVersion) this.o.onEvent('MODIFIED', item, old);
    }
    for (const [key, old] of [...this.cache]) {
      if (seen.has(key)) continue;
      this.cache.delete(key);
      this.o.onEvent('DELETED', old, old);
    }
    this.resourceVersion = list.metadata.resourceVersion ?? '';
    if (!this.synced) {
      this.synced = true;
      this.syncWaiters.splice(0).forEach((w) => w());
    }
  }

  /** One watch; resolves with the number of events delivered when the server ends it. */
  private async watchOnce(outer: AbortSignal): Promise<number> {
    if (outer.aborted) throw outer.reason;
    const controller = new AbortController();
    const abort = (): void => controller.abort(outer.reason);
    outer.addEventListener('abort', abort, { once: true });
    let lastActivity = this.o.clock.now();
    let delivered = 0;
    let watching = true;
    const watchdog = (async () => {
      const every = this.o.watchdogIntervalMs ?? Math.max(1, Math.floor(this.stallTimeoutMs / 4));
      while (watching) {
        await this.o.clock.sleep(every, controller.signal).catch(() => undefined);
        if (watching && this.o.clock.now() - lastActivity >= this.stallTimeoutMs) {
          controller.abort(new StallError(`no watch event for ${this.stallTimeoutMs} ms`));
          return;
        }
      }
    })();
    this.stats.watches++;
    try {
      await this.o.api.watch<T>(
        this.o.type,
        this.o.namespace,
        {
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds: this.o.watchTimeoutSeconds ?? 300,
          ...(this.o.labelSelector ? { labelSelector: this.o.labelSelector } : {}),
        },
        (e) => {
          lastActivity = this.o.clock.now();
          delivered++;
          this.apply(e);
        },
        controller.signal,
      );
      return delivered;
    } catch (err) {
      if (controller.signal.reason instanceof StallError) throw controller.signal.reason;
      throw err;
    } finally {
      watching = false;
      outer.removeEventListener('abort', abort);
      if (!controller.signal.aborted) controller.abort(new Error('watch ended'));
      await watchdog;
    }
  }

  private apply(e: WatchEvent<T>): void {
    const rv = e.object.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
    if (e.type === 'BOOKMARK') return;
    const key = keyOf(e.object);
    const old = this.cache.get(key);
    if (e.type === 'DELETED') {
      this.cache.delete(key);
      this.o.onEvent('DELETED', e.object, old);
      return;
    }
    this.cache.set(key, e.object);
    this.o.onEvent(old ? 'MODIFIED' : 'ADDED', e.object, old);
  }
}

function keyOf(o: KubeObject): string {
  return `${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`;
}

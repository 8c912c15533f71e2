import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { silentLogger, systemClock } from '@tandem/common';
import { startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { RedisLeaderLock, leaderLockKeys } from './redis-leader-lock.js';
import { RedisLeaderElector } from './redis-leader-elector.js';

let server: RedisServerHandle;
let redis: Redis;

beforeAll(async () => {
  server = await startRedisServer();
  redis = new Redis(server.url);
});
afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

const prefix = (): string => `ha-${randomBytes(3).toString('hex')}`;
const A = { httpUrl: 'http://127.0.0.1:1001', grpcAddress: '127.0.0.1:2001' };
const B = { httpUrl: 'http://127.0.0.1:1002', grpcAddress: '127.0.0.1:2002' };

/** Polls `probe` until true; bounded (a limit, not a timing assertion). */
async function until(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('RedisLeaderLock', () => {
  it('acquires, refuses a second holder, renews only for the holder, releases, and hands out increasing tokens', async () => {
    const lock = new RedisLeaderLock(redis, prefix());
    const first = await lock.acquire('a', 60_000, A, 1);
    expect(first).toEqual({ acquired: true, token: 1 });
    expect(await lock.acquire('b', 60_000, B, 2)).toEqual({ acquired: false, holder: 'a' });
    expect(await lock.acquire('a', 60_000, A, 3)).toEqual({ acquired: true, token: 1 }); // extends, same token
    expect(await lock.renew('a', 60_000)).toBe(true);
    expect(await lock.renew('b', 60_000)).toBe(false);
    expect(await lock.leader()).toMatchObject({ holder: 'a', token: 1, ...A });
    expect(await lock.release('b')).toBe(false);
    expect(await lock.release('a')).toBe(true);
    expect(await lock.leader()).toBeUndefined();
    expect(await lock.acquire('b', 60_000, B, 4)).toEqual({ acquired: true, token: 2 });
    expect(await lock.leader()).toMatchObject({ holder: 'b', token: 2, ...B });
    expect(await lock.acquire('a', 60_000, A, 5)).toEqual({ acquired: false, holder: 'b' });
  });

  it('expires when not renewed, and then another holder steals it with a higher token', async () => {
    const p = prefix();
    const lock = new RedisLeaderLock(redis, p);
    expect(await lock.acquire('a', 150, A, 0)).toEqual({ acquired: true, token: 1 });
    await until('the lock to expire', async () => (await redis.exists(leaderLockKeys(p).holder)) === 0);
    expect(await lock.renew('a', 150)).toBe(false); // a holder whose lease ran out cannot extend the next one's
    expect(await lock.acquire('b', 60_000, B, 0)).toEqual({ acquired: true, token: 2 });
    expect(await lock.renew('a', 60_000)).toBe(false);
  });
});

describe('RedisLeaderElector', () => {
  function elector(lock: RedisLeaderLock, identity: string, events: string[]): RedisLeaderElector {
    return new RedisLeaderElector({
      lock,
      clock: systemClock,
      log: silentLogger(),
      identity,
      leaseMs: 600,
      renewPeriodMs: 100,
      onStartedLeading: (token) => events.push(`${identity} leads ${token}`),
      onStoppedLeading: () => events.push(`${identity} stops`),
    });
  }

  it('elects one leader; the standby takes over with a higher token when the leader stops renewing', async () => {
    const lock = new RedisLeaderLock(redis, prefix());
    const events: string[] = [];
    const a = elector(lock, 'a', events);
    const b = elector(lock, 'b', events);
    a.start(A);
    await until('a to lead', () => a.isLeader());
    b.start(B);
    // b campaigns several times while a renews: it must stay a standby.
    await new Promise((r) => setTimeout(r, 400));
    expect(b.isLeader()).toBe(false);
    // a "crashes": it stops renewing and does not release.
    await a.stop({ release: false });
    await until('b to take over', () => b.isLeader());
    expect(b.token()).toBeGreaterThan(a.token());
    expect(await lock.leader()).toMatchObject({ holder: 'b', token: b.token(), ...B });
    await b.stop();
    expect(await lock.leader()).toBeUndefined(); // released on a clean stop
    expect(events).toEqual(['a leads 1', 'a stops', 'b leads 2', 'b stops']);
  });

  it('steps down at once when its lock was taken over, and by the deadline when Redis stops answering', async () => {
    const p = prefix();
    const lock = new RedisLeaderLock(redis, p);
    const events: string[] = [];
    const a = elector(lock, 'a', events);
    a.start(A);
    await until('a to lead', () => a.isLeader());
    // Someone else holds the lock now (a's expired while it was paused, say).
    await redis.set(leaderLockKeys(p).holder, 'intruder', 'PX', 60_000);
    await until('a to step down', () => !a.isLeader());
    expect(events).toEqual(['a leads 1', 'a stops']);
    await a.stop();
    expect(await redis.get(leaderLockKeys(p).holder)).toBe('intruder'); // never released someone else's lock

    // A lock whose Redis hangs: renewals never return; the watchdog steps down.
    const hung = new RedisLeaderLock(redis, prefix());
    const hanging: RedisLeaderLock = Object.assign(Object.create(hung) as RedisLeaderLock, {
      renew: () => new Promise<boolean>(() => undefined),
    });
    const e2: string[] = [];
    const c = elector(hanging, 'c', e2);
    c.start(A);
    await until('c to lead', () => c.isLeader());
    await until('c to step down by its deadline', () => !c.isLeader());
    expect(e2).toEqual(['c leads 1', 'c stops']);
    void c.stop({ release: false });
  });
});

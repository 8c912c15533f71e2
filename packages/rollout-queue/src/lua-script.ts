import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** The Redis commands the rollout queue uses, and nothing else. */
export type RolloutRedis = Pick<
  Redis,
  | 'evalsha'
  | 'eval'
  | 'callBuffer'
  | 'multi'
  | 'hmgetBuffer'
  | 'hdel'
  | 'publish'
  | 'hgetall'
  | 'hget'
  | 'hmget'
  | 'zcard'
  | 'zrange'
  | 'llen'
  | 'scan'
  | 'del'
  | 'hset'
  | 'hsetnx'
  | 'lrange'
  | 'hlen'
  | 'hscan'
  | 'memory'
>;

/** Argument to a script: strings, numbers and raw bytes. */
export type ScriptArg = string | number | Buffer;

/**
 * One Lua script loaded from `lua/<name>-<numKeys>.lua`, run with EVALSHA and
 * falling back to EVAL once when the server does not have it cached (after a
 * restart or a failover), which also caches it again.
 */
export class LuaScript {
  readonly name: string;
  readonly numKeys: number;
  private readonly source: string;
  private readonly sha: string;

  /**
   * @param fileName `<name>-<numKeys>.lua`
   * @param dir the folder holding it. @default this package's lua/
   */
  constructor(fileName: string, dir: URL = new URL('../lua/', import.meta.url)) {
    const match = /^([a-z-]+)-(\d+)\.lua$/.exec(fileName);
    if (!match) throw new Error(`script file ${fileName} is not named <name>-<numKeys>.lua`);
    this.name = match[1] as string;
    this.numKeys = Number(match[2]);
    this.source = readFileSync(new URL(fileName, dir), 'utf8');
    this.sha = createHash('sha1').update(this.source).digest('hex');
  }

  /** Runs the script; string replies. */
  async run(redis: RolloutRedis, keys: string[], args: ScriptArg[]): Promise<unknown> {
    this.checkKeys(keys);
    try {
      return await redis.evalsha(this.sha, this.numKeys, ...keys, ...args);
    } catch (err) {
      if (!isNoScript(err)) throw err;
      return redis.eval(this.source, this.numKeys, ...keys, ...args);
    }
  }

  /** Runs the script; bulk replies come back as Buffers (binary payloads). */
  async runBuffer(redis: RolloutRedis, keys: string[], args: ScriptArg[]): Promise<unknown> {
    this.checkKeys(keys);
    try {
      return await redis.callBuffer('EVALSHA', this.sha, this.numKeys, ...keys, ...args);
    } catch (err) {
      if (!isNoScript(err)) throw err;
      return redis.callBuffer('EVAL', this.source, this.numKeys, ...keys, ...args);
    }
  }

  /**
   * Arguments of an EVAL of this script (source, not SHA) for use inside a
   * MULTI: an EVALSHA there that meets NOSCRIPT fails at EXEC while the
   * transaction's other commands still run, so there is no safe fallback.
   */
  evalArgs(keys: string[], args: ScriptArg[]): [string, number, ...ScriptArg[]] {
    this.checkKeys(keys);
    return [this.source, this.numKeys, ...keys, ...args];
  }

  private checkKeys(keys: string[]): void {
    if (keys.length !== this.numKeys) {
      throw new Error(`script ${this.name} takes ${this.numKeys} keys, got ${keys.length}`);
    }
  }
}

function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT');
}

/** The queue's scripts, loaded once per process. */
export const scripts = {
  admit: new LuaScript('admit-11.lua'),
  complete: new LuaScript('complete-10.lua'),
  release: new LuaScript('release-10.lua'),
  serveBatch: new LuaScript('serve-batch-12.lua'),
  ackBatch: new LuaScript('ack-batch-12.lua'),
  publishVersion: new LuaScript('publish-version-11.lua'),
  closeRun: new LuaScript('close-run-12.lua'),
  raiseFence: new LuaScript('raise-fence-2.lua'),
  casGenerators: new LuaScript('cas-generators-1.lua'),
};

import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { TandemError } from '@tandem/common';

/**
 * A connection to Tandem's Redis: one node (or a Sentinel-managed master,
 * which is one node at a time), or a Redis Cluster. Both speak the same
 * commands; what differs is routing (see {@link scanKeys}).
 */
export type RedisClient = Redis | Cluster;

/** How the URL says Redis is deployed. */
export type RedisTopology = 'standalone' | 'cluster' | 'sentinel';

/** One `host:port` of a Cluster seed list or a Sentinel list. */
export interface RedisNodeAddress {
  host: string;
  port: number;
}

/** What {@link parseRedisUrl} read from a Redis URL. */
export interface RedisUrlParts {
  topology: RedisTopology;
  /** TLS to the Redis nodes (`rediss…` schemes). */
  tls: boolean;
  /** Standalone: the one node; Cluster: seed nodes; Sentinel: the sentinels. */
  nodes: RedisNodeAddress[];
  /** Sentinel only: the monitored master's name. */
  masterName?: string;
  username?: string;
  password?: string;
  /** Standalone and Sentinel only (a Cluster has database 0 alone). */
  db?: number;
  /** Sentinel only: credentials of the sentinels themselves (query `sentinelUsername` / `sentinelPassword`). */
  sentinelUsername?: string;
  sentinelPassword?: string;
}

const SCHEMES: Record<string, { topology: RedisTopology; tls: boolean }> = {
  redis: { topology: 'standalone', tls: false },
  rediss: { topology: 'standalone', tls: true },
  'redis+cluster': { topology: 'cluster', tls: false },
  'rediss+cluster': { topology: 'cluster', tls: true },
  'redis+sentinel': { topology: 'sentinel', tls: false },
  'rediss+sentinel': { topology: 'sentinel', tls: true },
};

const DEFAULT_PORT: Record<RedisTopology, number> = { standalone: 6379, cluster: 6379, sentinel: 26379 };
const SENTINEL_QUERY = new Set(['sentinelUsername', 'sentinelPassword']);

/** The URL forms, for error messages. */
export const REDIS_URL_FORMS =
  'redis[s]://[user:password@]host:port[/db], redis[s]+cluster://[user:password@]host:port[,host:port...], ' +
  'or redis[s]+sentinel://[user:password@]host:port[,host:port...]/masterName[/db]';

/**
 * Parses a Redis URL of one of three forms (docs/operations.md):
 * - `redis://[user:password@]host:port[/db]` (`rediss://` for TLS): one node;
 * - `redis+cluster://[user:password@]h1:p1,h2:p2,...` (`rediss+cluster://`):
 *   a Redis Cluster, given by any of its nodes (seeds; the rest are discovered);
 * - `redis+sentinel://[user:password@]h1:p1,h2:p2,.../masterName[/db]`
 *   (`rediss+sentinel://`): the master that these sentinels monitor under
 *   `masterName`; the query may carry `sentinelUsername` and `sentinelPassword`.
 * Throws INVALID_ARGUMENT saying what is wrong; the message never repeats
 * the password.
 */
export function parseRedisUrl(url: string): RedisUrlParts {
  const issue = (message: string): TandemError => TandemError.invalid('Redis URL', [{ path: 'url', message }]);
  const m = /^([a-z+]+):\/\/(?:([^@/?#]*)@)?([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/.exec(url.trim());
  if (!m) throw issue(`not a Redis URL; expected ${REDIS_URL_FORMS}`);
  const [, scheme = '', userinfo, hostList = '', path = '', query = ''] = m;
  const kind = SCHEMES[scheme];
  if (!kind) throw issue(`unknown scheme "${scheme}:"; expected ${REDIS_URL_FORMS}`);
  const { topology, tls } = kind;
  const parts: RedisUrlParts = { topology, tls, nodes: [] };

  if (userinfo !== undefined && userinfo !== '') {
    const colon = userinfo.indexOf(':');
    const user = decode(colon < 0 ? userinfo : userinfo.slice(0, colon), 'user name', issue);
    const password = colon < 0 ? undefined : decode(userinfo.slice(colon + 1), 'password', issue);
    // redis://:password@host is the common form without an ACL user.
    if (colon < 0) parts.password = user;
    else {
      if (user !== '') parts.username = user;
      if (password !== undefined && password !== '') parts.password = password;
    }
  }

  const addresses = hostList.split(',');
  if (topology === 'standalone' && addresses.length > 1) {
    throw issue(`a redis${tls ? 's' : ''}:// URL names one node; use redis${tls ? 's' : ''}+cluster:// or redis${tls ? 's' : ''}+sentinel:// for several`);
  }
  for (const address of addresses) parts.nodes.push(parseAddress(address, DEFAULT_PORT[topology], issue));

  const segments = path.split('/').filter((s) => s !== '');
  if (topology === 'sentinel') {
    const [name, db, ...rest] = segments;
    if (name === undefined) throw issue('a Sentinel URL names the master after the hosts: redis+sentinel://host:port,.../masterName');
    if (rest.length > 0) throw issue(`unexpected path "${path}" after the master name and database`);
    parts.masterName = decode(name, 'master name', issue);
    if (db !== undefined) parts.db = parseDb(db, issue);
  } else if (topology === 'cluster') {
    if (segments.length > 1 || (segments[0] !== undefined && segments[0] !== '0')) {
      throw issue('a Redis Cluster has database 0 only; drop the path from the redis+cluster:// URL');
    }
  } else {
    if (segments.length > 1) throw issue(`unexpected path "${path}"; the only path is the database number`);
    if (segments[0] !== undefined) parts.db = parseDb(segments[0], issue);
  }

  for (const pair of query.split('&').filter((p) => p !== '')) {
    const eq = pair.indexOf('=');
    const key = decode(eq < 0 ? pair : pair.slice(0, eq), 'query', issue);
    const value = decode(eq < 0 ? '' : pair.slice(eq + 1), 'query', issue);
    if (topology !== 'sentinel' || !SENTINEL_QUERY.has(key)) {
      throw issue(`unknown query parameter "${key}"${topology === 'sentinel' ? '; only sentinelUsername and sentinelPassword are read' : ''}`);
    }
    if (key === 'sentinelUsername') parts.sentinelUsername = value;
    else parts.sentinelPassword = value;
  }
  return parts;
}

/** Why `url` is not an accepted Redis URL, or undefined when it is (for config schemas). */
export function redisUrlIssue(url: string): string | undefined {
  try {
    parseRedisUrl(url);
    return undefined;
  } catch (err) {
    const e = TandemError.from(err);
    return e.fieldViolations[0]?.message ?? e.message;
  }
}

/** `url` with its passwords replaced by `***`, for logs and messages. */
export function redactRedisUrl(url: string): string {
  return url
    .replace(/^([a-z+]+:\/\/[^:@/?#]*:)[^@/?#]*@/, '$1***@')
    .replace(/([?&]sentinelPassword=)[^&#]*/, '$1***');
}

/**
 * `url` (any accepted form) with its user and password replaced, e.g. to
 * hand a run's own Redis ACL user to its rollout workers. Everything else
 * (hosts, master name, database, query) is kept as written.
 */
export function withRedisCredentials(url: string, username: string, password: string): string {
  parseRedisUrl(url);
  const userinfo = `${encodeURIComponent(username)}:${encodeURIComponent(password)}@`;
  return url.trim().replace(/^([a-z+]+:\/\/)(?:[^@/?#]*@)?/, `$1${userinfo}`);
}

/** Options for {@link createRedisClient}. */
export interface RedisClientOptions {
  /** Connect on the first command or on `connect()`. @default false */
  lazyConnect?: boolean;
  /**
   * Attempts of a command across reconnects before it fails; null retries
   * forever (what BullMQ requires of a worker's connection). @default 20
   */
  maxRetriesPerRequest?: number | null;
  /** Name shown by CLIENT LIST. */
  connectionName?: string;
  /**
   * Extra ioredis options applied to every node connection (TLS settings,
   * timeouts). Address and routing options are the URL's.
   */
  redisOptions?: RedisOptions;
}

/**
 * The ioredis client for a Redis URL of any form {@link parseRedisUrl}
 * accepts: a `Redis` for one node or a Sentinel-managed master, a `Cluster`
 * for a Redis Cluster. Every Redis connection Tandem makes comes from here,
 * so a URL that works for the control plane works for its children too.
 */
export function createRedisClient(url: string, options: RedisClientOptions = {}): RedisClient {
  const parts = parseRedisUrl(url);
  const common: RedisOptions = {
    maxRetriesPerRequest: options.maxRetriesPerRequest === undefined ? 20 : options.maxRetriesPerRequest,
    ...(options.connectionName === undefined ? {} : { connectionName: options.connectionName }),
    ...(parts.username === undefined ? {} : { username: parts.username }),
    ...(parts.password === undefined ? {} : { password: parts.password }),
    ...(parts.tls ? { tls: {} } : {}),
    ...options.redisOptions,
  };
  const lazyConnect = options.lazyConnect ?? false;
  switch (parts.topology) {
    case 'standalone': {
      const node = parts.nodes[0] as RedisNodeAddress;
      return new Redis({ ...common, host: node.host, port: node.port, db: parts.db ?? 0, lazyConnect });
    }
    case 'sentinel':
      return new Redis({
        ...common,
        sentinels: parts.nodes,
        name: parts.masterName as string,
        db: parts.db ?? 0,
        lazyConnect,
        ...(parts.sentinelUsername === undefined ? {} : { sentinelUsername: parts.sentinelUsername }),
        ...(parts.sentinelPassword === undefined ? {} : { sentinelPassword: parts.sentinelPassword }),
        ...(parts.tls ? { enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
        // Move to a promoted master as soon as the sentinels announce it
        // (+switch-master), not only when the old one drops the connection:
        // the old master accepts writes until it is demoted, and those are
        // lost when it resyncs as a replica.
        failoverDetector: true,
        // Sentinel disconnects the clients of a demoted master, and ioredis
        // then asks the sentinels for the new one. A write that still reaches
        // the old master in between fails with READONLY without running:
        // reconnect (to the new master) and resend it.
        reconnectOnError: (err: Error) => (err.message.startsWith('READONLY') ? 2 : false),
      });
    case 'cluster': {
      // Options a node connection may not carry in a Cluster (routing is the Cluster's).
      const { host: _host, port: _port, path: _path, sentinels: _sentinels, retryStrategy: _retry, enableOfflineQueue: _offline, readOnly: _readOnly, db: _db, ...nodeOptions } = common;
      const clusterOptions: ClusterOptions = {
        lazyConnect,
        redisOptions: nodeOptions,
        // During a failover the slots move to the promoted replica: wait a
        // little and follow MOVED instead of failing the command.
        retryDelayOnFailover: 200,
        retryDelayOnClusterDown: 200,
        retryDelayOnTryAgain: 200,
        slotsRefreshTimeout: 2000,
      };
      return new Cluster(parts.nodes, clusterOptions);
    }
  }
}

/** Whether `redis` is a Redis Cluster client. */
export function isRedisCluster(redis: unknown): redis is Cluster {
  return redis instanceof Cluster;
}

/**
 * The keys matching `pattern`, in batches. SCAN walks one node: on a
 * Redis Cluster every master is scanned (a run's keys share one slot, but
 * which master owns it changes with failovers and resharding, and the
 * pattern may span runs).
 */
export async function* scanKeys(redis: Pick<Redis, 'scan'>, pattern: string, count = 500): AsyncGenerator<string[]> {
  const nodes: Array<Pick<Redis, 'scan'>> = isRedisCluster(redis) ? redis.nodes('master') : [redis];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', count);
      cursor = next;
      if (keys.length > 0) yield keys;
    } while (cursor !== '0');
  }
}

function parseAddress(address: string, defaultPort: number, issue: (m: string) => TandemError): RedisNodeAddress {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(address);
  if (!m) throw issue(address === '' ? 'no host' : `"${address}" is not host:port`);
  const host = (m[1] as string).replace(/^\[(.*)\]$/, '$1');
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (port < 1 || port > 65_535) throw issue(`port ${m[2]} of "${address}" is out of range`);
  return { host, port };
}

function parseDb(segment: string, issue: (m: string) => TandemError): number {
  if (!/^\d{1,5}$/.test(segment)) throw issue(`database "${segment}" is not a number`);
  return Number(segment);
}

function decode(s: string, what: string, issue: (m: string) => TandemError): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw issue(`the ${what} is not valid percent-encoding`);
  }
}
